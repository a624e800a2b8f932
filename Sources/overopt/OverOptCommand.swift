import ArgumentParser
import Foundation
import OverOpt

/// The `overopt` command: one subcommand per file in this folder.
@main
struct OverOptCommand: ParsableCommand {
    static func main() {
        limitBLASSpinWait()
        main(nil)
    }

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

/// OpenBLAS's idle worker threads spin for a long time after each call (its default
/// thread timeout), taking a core away from the engine's own threads that run between the
/// matrix products: on 2 cores a training step was 1.5× slower. The timeout is read only
/// when the library loads, so if the user has not chosen one, the process re-executes
/// itself once with OPENBLAS_THREAD_TIMEOUT=4 (the shortest spin) before doing anything.
func limitBLASSpinWait() {
    guard getenv("OPENBLAS_THREAD_TIMEOUT") == nil else { return }
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1)
    var arguments: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) } + [nil]
    execv("/proc/self/exe", &arguments)   // returns only if it failed: then run with the default
}
