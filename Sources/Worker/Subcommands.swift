import ArgumentParser

/// Every `sirius-worker` subcommand, in the order `--help` lists them.
let workerSubcommands: [any ParsableCommand.Type] = [GenerateCommand.self, TokenizeCommand.self, BenchCommand.self, CalibrateCommand.self, JoinCommand.self]
