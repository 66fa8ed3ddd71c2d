import ArgumentParser

/// Every `sirius-worker` subcommand, in the order `--help` lists them.
let workerSubcommands: [any ParsableCommand.Type] = []
