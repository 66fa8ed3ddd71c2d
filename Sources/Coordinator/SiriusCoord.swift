import ArgumentParser

@main
struct SiriusCoord: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sirius-coord",
        abstract: "Shard benchmark prompts over worker processes and report accuracy and AAL.",
        subcommands: coordinatorSubcommands)
}
