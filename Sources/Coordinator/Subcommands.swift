import ArgumentParser

/// Every `sirius-coord` subcommand, in the order `--help` lists them.
let coordinatorSubcommands: [any ParsableCommand.Type] = [
    StartCommand.self, StatusCommand.self, ReportCommand.self, ResumeCommand.self, CancelCommand.self,
    TaskCommand.self,
]
