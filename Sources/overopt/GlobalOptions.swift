import ArgumentParser
import Foundation

/// Options shared by the commands that compute: add `@OptionGroup var global: GlobalOptions` to a command.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Threads for the engine's loops and matrix products (default: the number of cores).", valueName: "n"))
    var threads: Int?

    /// The thread count to use: `--threads` if given, else the number of active cores.
    var threadCount: Int { threads ?? ProcessInfo.processInfo.activeProcessorCount }

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1 (got \(threads)).") }
    }
}
