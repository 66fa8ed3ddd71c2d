import ArgumentParser

/// Every `sirius-worker` subcommand, in the order `--help` lists them.
let workerSubcommands: [any ParsableCommand.Type] = [GenerateCommand.self, TokenizeCommand.self, BenchCommand.self, JoinCommand.self]
