import ArgumentParser
import CPUID
import Foundation
import OverOpt
import OverOptEngine
import OverOptHDF5

/// The `overopt` command: one subcommand per file in this folder.
@main
struct OverOptCommand: ParsableCommand {
    static func main() {
        refuseACPUWithoutTheBuildsInstructions()
        configureOpenBLAS()
        stopOnInterrupt()
        // A corrupt input file that crashes or hangs the HDF5 library ends as bad input (exit
        // 2, one line naming it); OVEROPT_HDF5_WATCHDOG sets the seconds one HDF5 call on a
        // file open for reading may take (default 120).
        installReadGuard(watchdogSeconds: ProcessInfo.processInfo.environment["OVEROPT_HDF5_WATCHDOG"].flatMap(UInt32.init) ?? 120)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exitByConvention(error)   // one line and the status of the convention (ExitStatus.swift)
        }
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
            Compare.self,
            Report.self,
            Plot.self,
            Inspect.self,
            WorldCommand.self,
            Bench.self,
        ]
    )
}

/// The engine's x86-64 build targets AVX2 + FMA (Package.swift); on an older CPU its first
/// instruction would stop the process with SIGILL, so the command says so first. This runs
/// before any engine code, through the CPUID module, which is compiled for the baseline.
func refuseACPUWithoutTheBuildsInstructions() {
    #if arch(x86_64)
    if overopt_runs_avx2_fma() == 0 {
        FileHandle.standardError.write(Data("""
            Error: this overopt build runs on x86-64 CPUs with AVX2 and FMA (2013 on); this CPU lacks \
            them. Build for it by removing the -target-cpu flags of Package.swift (slower kernels).

            """.utf8))
        exit(1)
    }
    #endif
}

/// Sets OpenBLAS up before any work. The library reads its environment only when it loads,
/// so when something must change the process re-executes itself once with:
/// - OPENBLAS_NUM_THREADS=1 (unless the user set it): the engine runs OpenBLAS on one thread
///   and spreads products over its own threads (BLAS.swift), so the library's worker pool
///   would only spin idle next to them;
/// - OPENBLAS_CORETYPE when the library fell back to kernels below the CPU's instruction
///   level (`chooseOpenBLASCore`; a user's setting is kept unless this CPU cannot run it,
///   which is then replaced with a warning on stderr). OVEROPT_OPENBLAS_CORE records that
///   OverOpt chose it, for the run header and result files.
/// Then it checks a few products against a Double reference and refuses to run on a core
/// that computes them wrongly.
func configureOpenBLAS() {
    var changed = false
    if getenv("OPENBLAS_NUM_THREADS") == nil {
        setenv("OPENBLAS_NUM_THREADS", "1", 1)
        changed = true
    }
    let choice = chooseOpenBLASCore(cpu: .host, libraryCore: openBLASCoreName(),
                                    userSetting: getenv("OPENBLAS_CORETYPE").map { String(cString: $0) })
    if let warning = choice.warning {
        FileHandle.standardError.write(Data((warning + "\n").utf8))
    }
    if let core = choice.core {
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("OVEROPT_OPENBLAS_CORE", core, 1)
        changed = true
    }
    if changed {
        var arguments: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &arguments)   // returns only if it failed: then run as loaded
    }
    let error = gemmSelfCheckError()
    if !(error < 1e-5) {
        FileHandle.standardError.write(Data("""
            Error: OpenBLAS's \(openBLASCoreName()) kernels computed a wrong matrix product on this CPU \
            (relative error \(error)); choose another core with OPENBLAS_CORETYPE (e.g. Haswell).

            """.utf8))
        exit(1)
    }
}
