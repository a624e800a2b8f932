import ArgumentParser
import OverOpt

/// The `overopt` command: one subcommand per file in this folder.
@main
struct OverOptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overopt",
        abstract: "A CPU laboratory for reward over-optimization in RLHF.",
        discussion: """
            Simulates reward-model over-optimization (best-of-n and PPO against proxy reward \
            models, scored by a gold reward) at small scale on CPU, writing HDF5 result files.
            """,
        version: overOptVersion,
        // Adding a command: write `<Name>.swift` in this folder and list it here.
        subcommands: [
            Run.self,
            Sweep.self,
            Collect.self,
            Plot.self,
            Inspect.self,
            WorldCommand.self,
            Bench.self,
        ]
    )
}
