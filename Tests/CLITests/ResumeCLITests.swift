// Sweeps that scale, end to end through `overopt run`: trained proxies come from the cache
// (bitwise the same downstream results, no retraining when only PPO settings change),
// `--load-proxy` reuses a checkpoint of an earlier result file, a run killed with SIGKILL
// (up to in the PPO run of its third proxy) resumes at its first unfinished unit without
// retraining a finished proxy and ends with the datasets of an uninterrupted run,
// two processes sharing one cache build each entry once, a killed lock holder does not
// block the cache, and every run streams its metrics as JSON Lines.
import Foundation
import Testing
import TestSupport
import OverOptHDF5

/// Every dataset of a result file, path → its values (numbers by bit pattern, so equality
/// is bitwise), except the wall-clock ones (`train_seconds`, `pairs_per_second`).
func datasetValues(_ path: String) throws -> [String: [String]] {
    let file = try H5File.open(path)
    defer { file.close() }
    var out: [String: [String]] = [:]
    func walk(_ g: H5Group) throws {
        for name in try g.children() {
            if g.isGroup(name) { try walk(try g.group(name)); continue }
            if ["train_seconds", "pairs_per_second"].contains(name) { continue }
            let key = (g.path == "/" ? "" : g.path) + "/" + name
            switch try g.datasetInfo(name).typeDescription {
            case "string": out[key] = try g.readStrings(name)
            case let t where t.hasPrefix("int"): out[key] = try g.readInt64s(name).values.map { "\($0)" }
            default: out[key] = try g.readDoubles(name).values.map { "\($0.bitPattern)" }
            }
        }
    }
    try walk(file.root)
    return out
}

/// The dataset paths whose values differ between two files (or that only one has).
func differingDatasets(_ a: String, _ b: String) throws -> [String] {
    let x = try datasetValues(a), y = try datasetValues(b)
    return Set(x.keys).union(y.keys).sorted().filter { x[$0] != y[$0] }
}

/// The single result file in `folder`.
func resultFile(in folder: String) throws -> String {
    let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".h5") && !$0.hasPrefix(".") }
    guard files.count == 1 else { throw TestFailure("expected one result file in \(folder), found \(files)") }
    return folder + "/" + files[0]
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Starts `overopt` with stdout and stderr to files; returns the process and the stderr path.
func startOveropt(_ arguments: [String], logs folder: TemporaryFolder, label: String) throws -> (Process, String) {
    let binary = try overoptBinary()
    let err = folder.file("\(label).stderr")
    _ = FileManager.default.createFile(atPath: err, contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary)
    p.arguments = arguments
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle(forWritingAtPath: err)
    try p.run()
    return (p, err)
}

/// Waits until `condition` holds (polling every 5 ms) or `seconds` pass.
func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.005)
    }
    return condition()
}

/// Cache entries of `stage` (files `<stage>-<key>.h5`) in `cache`.
func cacheEntries(_ cache: String, _ stage: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? [])
        .filter { $0.hasPrefix(stage + "-") && $0.hasSuffix(".h5") }
}

@Suite("sweeps that scale", .serialized) struct ResumeCLITests {
    @Test func cachedProxiesAreReusedBitwiseAndPPOOnlyChangesTrainNoProxy() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let cache = folder.file("cache")
        let first = try runProcess(binary, ["run", "--out", folder.file("a"), "--cache", cache] + tinyRunArguments)
        #expect(first.status == 0, "stderr: \(first.stderr)")
        #expect(first.stderr.contains("rm bt: 1 member(s)") && first.stderr.contains("rm grm-sft: 1 member(s)"))
        #expect(first.stderr.contains("stage 1/9: base") && first.stderr.contains("stage 9/9: ppo/grm-sft"))
        let reference = try resultFile(in: folder.file("a"))

        // Only a PPO setting changes: both proxies (and their best-of-n curves) come from the cache.
        let second = try runProcess(binary, ["run", "--out", folder.file("b"), "--cache", cache] + tinyRunArguments + ["--set", "ppo.steps=3"])
        #expect(second.status == 0, "stderr: \(second.stderr)")
        #expect(!second.stderr.contains("rm bt: 1 member(s)") && !second.stderr.contains("rm grm-sft: 1 member(s)"),
                "a proxy was trained again:\n\(second.stderr)")
        #expect(second.stderr.components(separatedBy: "rm: loaded from cache").count - 1 == 2)
        #expect(second.stderr.components(separatedBy: "bon-curves: loaded from cache").count - 1 == 2)
        #expect(second.stderr.contains("ppo step 3/3"))
        let changed = try differingDatasets(reference, try resultFile(in: folder.file("b")))
        #expect(!changed.isEmpty && changed.allSatisfy { $0.hasPrefix("/ppo/") }, "\(changed)")

        // Downstream stages recomputed against the proxies loaded from the cache give the
        // same datasets, bit for bit, as against the proxies just trained.
        for stage in ["bon-curves", "ppo"] {
            for e in cacheEntries(cache, stage) { try FileManager.default.removeItem(atPath: cache + "/" + e) }
        }
        let third = try runProcess(binary, ["run", "--out", folder.file("c"), "--cache", cache] + tinyRunArguments)
        #expect(third.status == 0, "stderr: \(third.stderr)")
        #expect(!third.stderr.contains("rm bt: 1 member(s)") && !third.stderr.contains("rm grm-sft: 1 member(s)"))
        #expect(third.stderr.contains("best-of-n scoring 'bt'") && third.stderr.contains("ppo step 2/2"))
        #expect(try differingDatasets(reference, try resultFile(in: folder.file("c"))) == [])

        // Without the cache everything is recomputed, to the same datasets.
        let uncached = try runProcess(binary, ["run", "--out", folder.file("d"), "--no-cache"] + tinyRunArguments)
        #expect(uncached.status == 0, "stderr: \(uncached.stderr)")
        #expect(uncached.stderr.contains("rm bt: 1 member(s)"))
        #expect(try differingDatasets(reference, try resultFile(in: folder.file("d"))) == [])
    }

    @Test func loadProxyUsesTheCheckpointOfAnEarlierResultFile() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let first = try runProcess(binary, ["run", "--out", folder.file("a"), "--cache", folder.file("cache1")] + tinyRunArguments
                                   + ["--set", "save_checkpoints=true"])
        #expect(first.status == 0, "stderr: \(first.stderr)")
        let earlier = try resultFile(in: folder.file("a"))
        // A fresh cache: nothing to find there, so the proxy can only come from the file.
        let second = try runProcess(binary, ["run", "--out", folder.file("b"), "--cache", folder.file("cache2"),
                                             "--load-proxy", "bt=\(earlier)"] + tinyRunArguments + ["--set", "save_checkpoints=true"])
        #expect(second.status == 0, "stderr: \(second.stderr)")
        #expect(!second.stderr.contains("rm bt: 1 member(s)") && second.stderr.contains("rm grm-sft: 1 member(s)"))
        let later = try resultFile(in: folder.file("b"))
        #expect(later != earlier.replacingOccurrences(of: "/a/", with: "/b/"), "a loaded proxy must change the result file name")
        let a = try datasetValues(earlier), b = try datasetValues(later)
        for key in a.keys where key.hasPrefix("/rm/bt/") || key.hasPrefix("/bon/bt/") || key.hasPrefix("/ppo/bt/") {
            #expect(a[key] == b[key], "\(key) differs")
        }
        let f = try H5File.open(later)
        #expect(try f.root.group("rm/bt").stringAttribute("loaded_from") == earlier)
        #expect(try f.root.stringArrayAttribute("loaded_proxies") == ["bt=\(earlier)"])
        f.close()
        // A file without that proxy's checkpoint is refused with a clear message.
        let bad = try runProcess(binary, ["run", "--out", folder.file("c"), "--no-cache", "--load-proxy", "ensemble=\(earlier)"]
                                 + tinyRunArguments + ["--set", "proxies=[\"ensemble\"]"])
        #expect(bad.status != 0 && bad.stderr.contains("no /rm/ensemble/checkpoint"), "\(bad.stderr)")
    }

    @Test func aRunKilledAtSeveralPointsResumesToTheSameDatasets() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let threeProxies = tinyRunArguments + ["--set", "proxies=[\"bt\",\"grm-sft\",\"margin\"]", "--set", "ppo.steps=4"]
        let reference = try runProcess(binary, ["run", "--out", folder.file("ref"), "--cache", folder.file("refcache")] + threeProxies)
        #expect(reference.status == 0, "stderr: \(reference.stderr)")
        let cache = folder.file("cache"), out = folder.file("out")
        let args = ["run", "--out", out, "--cache", cache] + threeProxies
        let stream = MetricsPath.of(out + "/" + (try FileManager.default.contentsOfDirectory(atPath: folder.file("ref")).first { $0.hasSuffix(".h5") } ?? ""))
        func streamHas(_ text: String) -> Bool { ((try? String(contentsOfFile: stream, encoding: .utf8)) ?? "").contains(text) }
        // SIGKILL as soon as the first proxy is stored; then as soon as the second proxy's
        // best-of-n curves are stored; then in the middle of the third proxy's PPO run (its
        // first iteration streamed).
        let points: [(String, () -> Bool)] = [
            ("the first proxy stored", { cacheEntries(cache, "rm").count >= 1 }),
            ("the second best-of-n curves stored", { cacheEntries(cache, "bon-curves").count >= 2 }),
            ("PPO of the third proxy", { streamHas("{\"stage\":\"ppo\",\"variant\":\"margin\",\"step\":1,") }),
        ]
        for (label, condition) in points {
            let (p, err) = try startOveropt(args, logs: folder, label: label)
            let reached = waitFor(60) { condition() || !p.isRunning }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            #expect(reached && p.terminationReason == .uncaughtSignal,
                    "the run ended before the kill point (\(label)):\n\((try? String(contentsOfFile: err, encoding: .utf8)) ?? "")")
            #expect(!((try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []).contains { $0.hasSuffix(".h5") && !$0.hasPrefix(".") })
        }
        #expect(cacheEntries(cache, "ppo").count == 2, "the third proxy's PPO run was not interrupted")
        let resumed = try runProcess(binary, args)
        #expect(resumed.status == 0, "stderr: \(resumed.stderr)")
        #expect(resumed.stderr.components(separatedBy: "rm: loaded from cache").count - 1 == 3)
        #expect(!resumed.stderr.contains("member(s), "), "a proxy was trained again:\n\(resumed.stderr)")
        #expect(resumed.stderr.components(separatedBy: "ppo: loaded from cache").count - 1 == 2)
        #expect(resumed.stderr.contains("ppo margin: ppo step 4/4"))
        let file = try resultFile(in: out)
        let differing = try differingDatasets(try resultFile(in: folder.file("ref")), file)
        #expect(differing == [], "datasets that differ from the uninterrupted run: \(differing)")
        let f = try H5File.open(file)
        #expect(try f.root.boolAttribute("complete"))
        f.close()
        // The metrics stream kept the killed runs' records and the resumed run's.
        let lines = try String(contentsOfFile: stream, encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0.contains("\"event\":\"start\"") }.count == 4)
        #expect(lines.filter { $0.contains("\"event\":\"end\"") }.count == 1)
        #expect(lines.contains { $0.hasPrefix("{\"stage\":\"ppo\",\"variant\":\"bt\",") && $0.contains("\"event\":\"cached\"") })
        #expect(lines.contains { $0.hasPrefix("{\"stage\":\"ppo-eval\",\"variant\":\"margin\",\"step\":4,") && $0.contains("\"gold\":") })
    }

    @Test func twoProcessesSharingACacheBuildEachEntryOnce() throws {
        let folder = try TemporaryFolder()
        let cache = folder.file("cache")
        let (a, errA) = try startOveropt(["run", "--out", folder.file("a"), "--cache", cache] + tinyRunArguments, logs: folder, label: "a")
        let (b, errB) = try startOveropt(["run", "--out", folder.file("b"), "--cache", cache] + tinyRunArguments, logs: folder, label: "b")
        a.waitUntilExit(); b.waitUntilExit()
        let logA = try String(contentsOfFile: errA, encoding: .utf8), logB = try String(contentsOfFile: errB, encoding: .utf8)
        #expect(a.terminationStatus == 0 && b.terminationStatus == 0, "\(logA)\n---\n\(logB)")
        let entries = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".h5") }
        #expect(entries.count == 9)   // base, data, bon-samples, and per proxy rm, bon-curves, ppo
        let built = (logA + logB).components(separatedBy: ": cached in ").count - 1
        #expect(built == entries.count, "entries built \(built) times for \(entries.count) entries:\n\(logA)\n---\n\(logB)")
        #expect((logA + logB).components(separatedBy: "base policy: held-out NLL").count - 1 == 1, "the base policy was pretrained twice")
        let differing = try differingDatasets(try resultFile(in: folder.file("a")), try resultFile(in: folder.file("b")))
        #expect(differing == [], "datasets that differ between the two processes: \(differing)")
    }

    @Test func aKilledLockHolderDoesNotBlockTheCache() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        // Learn the base policy's entry name, then hold its lock from another process.
        let probe = try runProcess(binary, ["run", "--out", folder.file("probe"), "--cache", folder.file("probecache")] + tinyRunArguments
                                   + ["--set", "stages=[]", "--set", "proxies=[\"bt\"]", "--set", "rm.epochs=1"])
        #expect(probe.status == 0, "stderr: \(probe.stderr)")
        guard let baseEntry = cacheEntries(folder.file("probecache"), "base").first else { Issue.record("no base entry"); return }
        let cache = folder.file("cache")
        try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        guard FileManager.default.isExecutableFile(atPath: systemPython) else { Issue.record("\(systemPython) is needed to hold a lock"); return }
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: systemPython)
        holder.arguments = ["-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); open(sys.argv[2], 'w').close(); time.sleep(120)",
                            cache + "/" + baseEntry + ".lock", folder.file("locked")]
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
        #expect(waitFor(20) { FileManager.default.fileExists(atPath: folder.file("locked")) })
        let (run, err) = try startOveropt(["run", "--out", folder.file("out"), "--cache", cache] + tinyRunArguments
                                          + ["--set", "stages=[]", "--set", "proxies=[\"bt\"]"], logs: folder, label: "waiter")
        #expect(waitFor(30) { ((try? String(contentsOfFile: err, encoding: .utf8)) ?? "").contains("waiting for another process") })
        #expect(run.isRunning, "the run did not wait for the lock")
        kill(holder.processIdentifier, SIGKILL)     // the kernel releases a killed process's flock
        holder.waitUntilExit()
        run.waitUntilExit()
        let log = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        #expect(run.terminationStatus == 0, "\(log)")
        #expect(log.contains("base policy: held-out NLL") && log.contains("base: cached in"))
    }
}

enum MetricsPath {
    static func of(_ result: String) -> String { String(result.dropLast(3)) + ".metrics.jsonl" }
}
