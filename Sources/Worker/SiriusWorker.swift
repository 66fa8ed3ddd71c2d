import ArgumentParser

@main
struct SiriusWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sirius-worker",
        abstract: "Run the Sirius engine: generate, tokenize, bench, or join a coordinator.",
        subcommands: workerSubcommands)
}
