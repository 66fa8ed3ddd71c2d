import ArgumentParser

/// Every `sirius-coord` subcommand, in the order `--help` lists them.
let coordinatorSubcommands: [any ParsableCommand.Type] = [TaskCommand.self]
