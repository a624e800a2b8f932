import ArgumentParser
import CProcess
import Foundation
import OverOpt
import OverOptEngine

/// `overopt sweep SWEEP.toml`: a grid of experiments, locally or as a Slurm job array.
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a grid of experiments (locally with worker processes, one entry, or as a Slurm job array).",
        discussion: """
            A sweep file has `base = "experiment.toml"` (relative to the sweep file; absent = the \
            built-in quick-start), an optional [set] table of fixed overrides and a [grid] table of \
            dotted config keys with lists of values, e.g. seed = [0, 1, 2] and \
            "data.label_noise" = [0.0, 0.25]. The manifest is the cartesian product: grid keys in \
            alphabetical order except seed, which is always last; the last key varies fastest. \
            Each entry writes <out>/<name>-seed<seed>-<hash8>.h5; entries whose file is complete \
            are skipped, and an entry killed midway resumes at its first unfinished proxy, \
            best-of-n or PPO unit, so re-running resumes. Workers and array tasks share the \
            --cache folder: each entry of it is built once (under a lock) and loaded by the \
            others, so proxies are trained once for a sweep over PPO or best-of-n settings. \
            Logs of worker processes and Slurm tasks go to <out>/logs/<index>.log. See \
            experiments/sweep-example.toml.
            """)

    @Argument(help: "The sweep file (TOML).")
    var sweepFile: String

    @Flag(help: "Print the manifest (index, overrides, output file, status) and exit.")
    var list = false

    @Option(help: "Run only this entry, in this process (the cluster array task).")
    var index: Int?

    @Option(help: "Worker processes for a local run (each gets max(1, cores/jobs) threads).")
    var jobs = 1

    @Flag(help: "Write <out>/sweep.sbatch, a Slurm job-array script with one task per entry, and exit.")
    var slurm = false

    @Option(help: "Slurm: CPUs per task (also the task's --threads).")
    var cpusPerTask = 2

    @Option(help: "Slurm: time limit per task.")
    var time = "02:00:00"

    @Option(help: "Slurm: memory per task.")
    var mem = "4G"

    @Option(help: "Slurm: partition.")
    var partition: String?

    @Option(help: "Slurm: account.")
    var account: String?

    @Option(help: "Slurm: at most this many tasks at once.")
    var maxParallel: Int?

    @Option(name: .customLong("sbatch"), help: ArgumentHelp("Slurm: an extra #SBATCH line for the scripts, e.g. --sbatch=--qos=short (repeatable).", valueName: "directive"))
    var sbatchDirectives: [String] = []

    @Option(help: ArgumentHelp("Slurm: a shell line run before each task's command, e.g. --setup 'module load hdf5' (repeatable).", valueName: "line"))
    var setup: [String] = []

    @Flag(help: "Slurm: also write collect.sbatch (overopt collect into <out>/summary.h5) and submit.sh, which submits the array and then the collect job with --dependency=afterok.")
    var collect = false

    @Option(help: "Folder for the result files (default runs/<sweep file name>).")
    var out: String?

    @Option(help: "Folder of the shared stage cache.")
    var cache = ProcessInfo.processInfo.environment["OVEROPT_CACHE"] ?? ".overopt-cache"

    @Flag(help: "Disable the stage cache.")
    var noCache = false

    @Flag(help: "Only print errors and the final line.")
    var quiet = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if jobs < 1 { throw ValidationError("--jobs must be at least 1 (got \(jobs)).") }
        if let m = maxParallel, m < 1 { throw ValidationError("--max-parallel must be at least 1 (got \(m)); leave it out for no limit.") }
        if cpusPerTask < 1 { throw ValidationError("--cpus-per-task must be at least 1 (got \(cpusPerTask)).") }
        if [list, slurm, index != nil].filter({ $0 }).count > 1 {
            throw ValidationError("--list, --slurm and --index exclude each other.")
        }
        if !slurm && (collect || !sbatchDirectives.isEmpty || !setup.isEmpty) {
            throw ValidationError("--collect, --sbatch and --setup only apply with --slurm.")
        }
        for line in sbatchDirectives + setup where line.contains("\n") {
            throw ValidationError("--sbatch and --setup take one line each (got \"\(line)\").")
        }
    }

    var outputFolder: String {
        out ?? ("runs" as NSString).appendingPathComponent(((sweepFile as NSString).lastPathComponent as NSString).deletingPathExtension)
    }

    func run() throws {
        let spec: SweepSpec
        let entries: [SweepEntry]
        (spec, entries) = try readingInput {
            let spec = try SweepSpec.load(path: sweepFile)
            return (spec, try spec.entries())
        }
        let log = ProgressLog(quiet: quiet)
        let folder = outputFolder

        if list {
            print("\(entries.count) entries; base \(spec.basePath ?? "built-in quick-start")" + (spec.fixed.isEmpty ? "" : "; fixed: \(spec.fixed.joined(separator: " "))"))
            for e in entries {
                let path = (folder as NSString).appendingPathComponent(e.fileName)
                let status = isCompleteResult(path) ? "done" : "todo"
                print(String(format: "%4d  %@  %@  %@", e.index, status, e.fileName, e.gridOverrides.joined(separator: " ")))
            }
            return
        }
        if slurm {
            try writeSlurm(count: entries.count, folder: folder)
            return
        }
        if let index {
            guard entries.indices.contains(index) else {
                throw BadInput("--index \(index) is outside the manifest 0…\(entries.count - 1)")
            }
            setEngineThreads(global.threadCount)
            let r = try writingOutput("entry \(index)") {
                try runSweepEntry(entries[index], outputFolder: folder, cache: StageCache(directory: noCache ? nil : cache),
                                         log: log.callAsFunction)
            }
            print(r.ran ? "entry \(index): wrote \(r.path)" : "entry \(index): \(r.path) already complete")
            return
        }
        try runLocally(spec: spec, entries: entries, folder: folder, log: log)
    }

    /// Writes `<out>/sweep.sbatch` and creates `<out>/logs` (Slurm does not create it).
    func writeSlurm(count: Int, folder: String) throws {
        let abs = absolutePath(folder)
        try FileManager.default.createDirectory(atPath: (abs as NSString).appendingPathComponent("logs"), withIntermediateDirectories: true)
        var options = SlurmOptions()
        options.cpusPerTask = cpusPerTask; options.time = time; options.memory = mem
        options.partition = partition; options.account = account; options.maxParallel = maxParallel
        options.jobName = "overopt-" + ((sweepFile as NSString).lastPathComponent as NSString).deletingPathExtension
        options.directives = sbatchDirectives; options.setup = setup
        let script = slurmScript(count: count, binary: currentExecutable(), sweepFile: absolutePath(sweepFile), outputFolder: abs,
                                 cache: noCache ? nil : absolutePath(cache), options: options)
        let path = (abs as NSString).appendingPathComponent("sweep.sbatch")
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        guard collect else {
            print("wrote \(path) (\(count) array tasks); submit with: sbatch \(shellQuoted(path))")
            return
        }
        try slurmCollectScript(binary: currentExecutable(), outputFolder: abs, options: options)
            .write(toFile: (abs as NSString).appendingPathComponent("collect.sbatch"), atomically: true, encoding: .utf8)
        let submit = (abs as NSString).appendingPathComponent("submit.sh")
        try slurmSubmitScript(outputFolder: abs).write(toFile: submit, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: submit)
        print("wrote \(path) (\(count) array tasks), collect.sbatch and submit.sh; submit both with: bash \(shellQuoted(submit))")
    }

    /// Runs the pending entries with `jobs` worker processes of `overopt run`.
    func runLocally(spec: SweepSpec, entries: [SweepEntry], folder: String, log: ProgressLog) throws {
        let logs = (folder as NSString).appendingPathComponent("logs")
        try prepareOutputFolder(folder)
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let pending = entries.filter { !isCompleteResult((folder as NSString).appendingPathComponent($0.fileName)) }
        let threads = global.threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / jobs)
        log("sweep \(sweepFile): \(entries.count) entries, \(entries.count - pending.count) complete, running \(pending.count) with \(jobs) worker(s) × \(threads) thread(s); logs in \(logs)")
        let binary = currentExecutable()
        let workers = WorkerRegistry()
        let stopSources = workers.forwardTerminationSignals()
        defer { stopSources.forEach { $0.cancel() } }
        var queue = pending[...]
        var running: [(entry: SweepEntry, process: Process, start: Date)] = []
        var failed: [Int] = []
        var done = 0
        var durations: [Double] = []
        while !queue.isEmpty || !running.isEmpty {
            while running.count < jobs, let e = queue.popFirst() {
                let lock = (logs as NSString).appendingPathComponent("\(e.index).lock")
                if let holder = entryLockHolder(lock) {
                    log("entry \(e.index) is running in another process (\(holder)); not started again")
                    continue
                }
                let p = Process()
                p.executableURL = URL(fileURLWithPath: binary)
                // The worker takes the entry's lock and dies with this process (see `becomeSweepWorker`).
                var environment = ProcessInfo.processInfo.environment
                environment["OVEROPT_SWEEP_PARENT"] = "\(getpid())"
                environment["OVEROPT_ENTRY_LOCK"] = lock
                p.environment = environment
                var args = ["run"] + (spec.basePath.map { [$0] } ?? [])
                for o in e.overrides { args += ["--set", o] }
                args += ["--out", folder, "--threads", "\(threads)"]
                args += noCache ? ["--no-cache"] : ["--cache", cache]
                p.arguments = args
                let logPath = (logs as NSString).appendingPathComponent("\(e.index).log")
                // A rerun appends to the entry's log: an earlier attempt's lines stay.
                if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
                handle.seekToEndOfFile()
                handle.write(Data("overopt \(args.joined(separator: " "))\n".utf8))
                p.standardOutput = handle; p.standardError = handle
                try p.run()
                running.append((e, p, Date()))
                workers.add(p)
                log("entry \(e.index) started: \(e.gridOverrides.joined(separator: " ")) (\(done) done, \(running.count) running, \(queue.count) queued)")
            }
            Thread.sleep(forTimeInterval: 0.2)
            for (i, r) in running.enumerated().reversed() where !r.process.isRunning {
                running.remove(at: i)
                workers.remove(r.process)
                done += 1
                let seconds = Date().timeIntervalSince(r.start)
                durations.append(seconds)
                let path = (folder as NSString).appendingPathComponent(r.entry.fileName)
                if r.process.terminationStatus == 0 && isCompleteResult(path) {
                    let eta = sweepRemainingSeconds(finished: durations, runningElapsed: running.map { Date().timeIntervalSince($0.start) },
                                                    queued: queue.count, jobs: jobs)
                    log(String(format: "entry %d done in %.0f s: %@ (%d/%d done, %d running", r.entry.index, seconds, path, done, pending.count, running.count)
                        + (eta.map { ", ETA " + formatDuration($0) } ?? "") + ")")
                } else {
                    failed.append(r.entry.index)
                    FileHandle.standardError.write(Data("entry \(r.entry.index) failed (exit \(r.process.terminationStatus)); see \(logs)/\(r.entry.index).log\n".utf8))
                }
            }
        }
        if failed.isEmpty {
            print("sweep complete: \(entries.count) result files in \(folder)")
        } else {
            throw WorkFailure("sweep: \(failed.count) of \(pending.count) entries failed (\(failed.sorted().map(String.init).joined(separator: ", "))); re-run to retry them")
        }
    }
}

/// The absolute path of this overopt binary.
func currentExecutable() -> String {
    if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return p }
    if let p = Bundle.main.executablePath { return absolutePath(p) }
    return absolutePath(CommandLine.arguments[0])
}

/// The worker processes of a local sweep, so that SIGINT/SIGTERM sent to the sweep stops
/// them too (each leaves only a temporary file, which the next run cleans up).
final class WorkerRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var processes: [ObjectIdentifier: Process] = [:]

    func add(_ p: Process) { lock.withLock { processes[ObjectIdentifier(p)] = p } }
    func remove(_ p: Process) { _ = lock.withLock { processes.removeValue(forKey: ObjectIdentifier(p)) } }

    /// Installs handlers that terminate every worker, then exit with 128 + signal.
    func forwardTerminationSignals() -> [DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self] in
                let all = lock.withLock { Array(processes.values) }
                for p in all where p.isRunning { kill(p.processIdentifier, sig) }
                for p in all { p.waitUntilExit() }
                FileHandle.standardError.write(Data("sweep: stopped by signal \(sig); \(all.count) worker(s) stopped; re-run to resume\n".utf8))
                exit(128 + sig)
            }
            source.resume()
            return source
        }
    }
}

/// "pid N on HOST" of the process holding the entry lock at `path`, or nil when it is free.
func entryLockHolder(_ path: String) -> String? {
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    if flock(fd, LOCK_EX | LOCK_NB) == 0 { return nil }   // closing releases it again
    let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    return holder.isEmpty ? "holder unknown" : holder
}

/// The descriptor that holds this worker's entry lock for the life of the process.
nonisolated(unsafe) private var heldEntryLock: Int32 = -1

/// In a local sweep's worker (the environment names its parent and its entry's lock):
/// dies with the parent (PR_SET_PDEATHSIG on Linux, so that a killed `overopt sweep` leaves no
/// orphan computing), and holds the entry's lock, writing "pid N on HOST" into it, so that a
/// rerun of the sweep does not start the entry beside it. Exits when the parent is already
/// gone or another process holds the lock.
func becomeSweepWorker() {
    let environment = ProcessInfo.processInfo.environment
    if let parent = environment["OVEROPT_SWEEP_PARENT"].flatMap(Int32.init) {
        _ = overopt_die_with_parent(SIGTERM)
        if getppid() != parent { exit(143) }
    }
    if let path = environment["OVEROPT_ENTRY_LOCK"] {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            FileHandle.standardError.write(Data("Error: this sweep entry is running in another process (\(entryLockHolder(path) ?? "")); not run twice\n".utf8))
            exit(1)
        }
        let me = Array("pid \(getpid()) on \(ProcessInfo.processInfo.hostName)\n".utf8)
        _ = ftruncate(fd, 0)
        _ = me.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        heldEntryLock = fd
    }
}
