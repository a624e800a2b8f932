// The fuzz harness through the command line (its in-process part, with thousands of cases,
// is Tests/OverOptTests/FuzzTests.swift): a fixed seed, a bounded number of cases, each
// run as a subprocess of the built binary. Every case must end with exit status 0, 1 or 2
// — never a signal — with, when it fails, exactly one line "Error: …" on stderr (no crash
// report, no backtrace) and no output file under its final name.
//
// - HDF5 files: a committed run file and a collect summary with bits flipped, blocks of
//   zeros or 0xFF written, or cut short, read by `inspect` (tree, values, samples), `plot`,
//   `compare` and `collect`. libhdf5 itself may crash or loop on such a file; the read
//   guard then names the file and exits 2 (its watchdog is shortened here to 5 s).
// - Configs: `--set` overrides and mutated sweep files through `run` and `sweep --list`.
// - Cache entries: bytes overwritten in each entry of a tiny run's cache, then the run again.
import Foundation
import Testing
import TestSupport

@Suite("fuzz, command line", .serialized) struct FuzzCLITests {
    /// Runs the binary with a short read-guard watchdog.
    func overopt(_ arguments: [String], in folder: TemporaryFolder) throws -> (reason: Process.TerminationReason, status: Int32, stderr: String) {
        let err = folder.file("case.stderr")
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try overoptBinary())
        p.arguments = arguments
        p.environment = ProcessInfo.processInfo.environment.merging(["OVEROPT_HDF5_WATCHDOG": "5"]) { _, b in b }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: err)
        p.currentDirectoryURL = URL(fileURLWithPath: folder.path)
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return (p.terminationReason, p.terminationStatus, (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// Records an issue unless the case ended by the convention; `outputs` must not exist after a failure.
    func check(_ label: String, _ r: (reason: Process.TerminationReason, status: Int32, stderr: String), outputs: [String] = [],
               progress: Bool = false) {
        let crashMarkers = ["Program crashed", "Backtrac", "Fatal error", "Assertion", "Segmentation"]
        if r.reason != .exit || ![0, 1, 2].contains(r.status) || crashMarkers.contains(where: r.stderr.contains) {
            Issue.record("\(label): ended by \(r.reason) with \(r.status):\n\(r.stderr.prefix(1500))")
            return
        }
        guard r.status != 0 else { return }
        // Besides the error, only "skipping …" lines (compare) or progress lines (run) may appear.
        let errors = r.stderr.split(separator: "\n").filter { !$0.hasPrefix("skipping ") && !(progress && $0.hasPrefix("[")) }
        if errors.count != 1 || !errors[0].hasPrefix("Error: ") {
            Issue.record("\(label): exit \(r.status) without exactly one error line:\n\(r.stderr.prefix(1500))")
        }
        for o in outputs where FileManager.default.fileExists(atPath: o) {
            Issue.record("\(label): exit \(r.status) left \(o)")
        }
    }

    /// `data` with 1–8 bits flipped, a block of zeros or 0xFF written, or cut short.
    func corrupted(_ data: Data, _ r: inout SplitMix64) -> (Data, String) {
        var d = data
        switch r.below(4) {
        case 0, 1:
            let flips = 1 + r.below(8)
            for _ in 0..<flips { let k = r.below(d.count); d[k] ^= UInt8(1) << UInt8(r.below(8)) }
            return (d, "\(flips) bits flipped")
        case 2:
            let at = r.below(d.count), n = min(1 + r.below(4096), d.count - at), byte: UInt8 = r.pick([0, 0xFF])
            d.replaceSubrange(at..<(at + n), with: [UInt8](repeating: byte, count: n))
            return (d, "\(n) bytes of \(byte) at \(at)")
        default:
            let n = r.below(d.count)
            return (d.prefix(n), "cut to \(n) bytes")
        }
    }

    @Test func corruptFilesConfigsAndCacheEntriesEndByTheConvention() throws {
        let folder = try TemporaryFolder()
        let runs = packageRoot.appendingPathComponent("results/runs/fig2").path
        let runFiles = try FileManager.default.contentsOfDirectory(atPath: runs).filter { $0.hasSuffix(".h5") }.sorted().map { runs + "/" + $0 }
        let runData = try Data(contentsOf: URL(fileURLWithPath: runFiles[0]))
        let summaryData = try Data(contentsOf: packageRoot.appendingPathComponent("results/fig2-bon-ppo-clean-summary.h5"))
        var r = SplitMix64(state: 2100)
        var cases = 0, byStatus: [Int32: Int] = [:]
        func record(_ label: String, _ result: (reason: Process.TerminationReason, status: Int32, stderr: String),
                    outputs: [String] = [], progress: Bool = false) {
            cases += 1
            byStatus[result.status, default: 0] += 1
            check(label, result, outputs: outputs, progress: progress)
        }

        // 1. Corrupt HDF5 files.
        let runFolder = folder.file("runs")
        try FileManager.default.createDirectory(atPath: runFolder, withIntermediateDirectories: true)
        for (j, file) in runFiles.enumerated() where j > 0 {
            try FileManager.default.copyItem(atPath: file, toPath: runFolder + "/seed\(j).h5")
        }
        for i in 0..<160 {
            let isSummary = i % 5 == 4
            let (data, what) = corrupted(isSummary ? summaryData : runData, &r)
            let path = isSummary ? folder.file("summary-case.h5") : runFolder + "/seed0.h5"
            try data.write(to: URL(fileURLWithPath: path))
            let svg = folder.file("case.svg"), collected = folder.file("collected.h5")
            let commands: [([String], [String])] = isSummary
                ? [(["inspect", "--values", path], []), (["plot", path, "-o", svg], [svg]), (["plot", path, "--scaling", "-o", svg], [svg])]
                : [(["inspect", path], []), (["inspect", "--values", path], []), (["inspect", "--samples", path], []),
                   (["plot", path, "-o", svg], [svg]), (["compare", path], []), (["collect", runFolder, "-o", collected, "--quiet"], [collected])]
            let (arguments, outputs) = r.pick(commands)
            record("case \(i) (\(what)): \(arguments.joined(separator: " "))", try overopt(arguments, in: folder), outputs: outputs)
            // OVEROPT_FUZZ_KEEP=<folder> keeps every case's file there, to replay a failure.
            if let keep = ProcessInfo.processInfo.environment["OVEROPT_FUZZ_KEEP"] {
                try? FileManager.default.copyItem(atPath: path, toPath: keep + "/case-\(i).h5")
            }
            for o in [svg, collected] { try? FileManager.default.removeItem(atPath: o) }
            let left = try FileManager.default.contentsOfDirectory(atPath: folder.path) + FileManager.default.contentsOfDirectory(atPath: runFolder)
            if left.contains(where: { $0.contains(".tmp-") }) { Issue.record("case \(i): a temporary was left: \(left)") }
        }

        // 2. Configs: --set overrides through run (stopped before any work by an output folder
        // that cannot be created), mutated sweep files through sweep --list.
        let values = ["nan", "inf", "-1", "1e12", "9223372036854775807", "\"é😀\"", "[]", "{a = 1}", "\"\"", "[[[", "0.5", "true"]
        let keys = ["seed", "name", "proxies", "stages", "base.corpus_size", "rm.alpha", "rm.combiner", "bon.samples_per_prompt",
                    "ppo.minibatch_size", "ppo.max_new_tokens", "grpo.group_size", "data.label_noise", "world.lexicon", "nope.key", "😀"]
        for i in 0..<30 {
            let set = "\(r.pick(keys))=\(r.pick(values))"
            record("config case \(i): --set \(set)", try overopt(["run", "--set", set, "--out", "/proc/overopt-fuzz", "--no-cache"], in: folder))
        }
        let sweep = folder.file("sweep.toml")
        for i in 0..<20 {
            let text = "[set]\n\"\(r.pick(keys))\" = \(r.pick(values))\n[grid]\nseed = [0, \(r.pick(values))]\n\(r.pick(keys)) = [\(r.pick(values))]\n"
            try text.write(toFile: sweep, atomically: true, encoding: .utf8)
            record("sweep case \(i): \(text)", try overopt(["sweep", sweep, "--list", "--out", folder.file("sweep-out")], in: folder))
        }

        // 3. Cache entries of a tiny run, each overwritten in one place, then the run again:
        // the checksum finds the change and the entry is rebuilt (or libhdf5 trips on it and
        // the guard names it).
        let small = tinyRunArguments + ["--set", "stages=[]", "--set", "proxies=[\"bt\"]", "--quiet"]
        let cache = folder.file("cache")
        let first = try overopt(["run", "--out", folder.file("out"), "--cache", cache] + small, in: folder)
        #expect(first.status == 0, "\(first.stderr)")
        for (i, entry) in try FileManager.default.contentsOfDirectory(atPath: cache).filter({ $0.hasSuffix(".h5") }).sorted().enumerated() {
            let path = cache + "/" + entry
            let (data, what) = corrupted(try Data(contentsOf: URL(fileURLWithPath: path)), &r)
            try data.write(to: URL(fileURLWithPath: path))
            let rerun = try overopt(["run", "--out", folder.file("out"), "--cache", cache] + small, in: folder)
            record("cache case \(i) (\(entry), \(what))", rerun, progress: true)
            // After a guarded crash the bad entry stays: remove it as the message says.
            if rerun.status == 2 { try? FileManager.default.removeItem(atPath: path) }
        }
        print("fuzz command line: \(cases) cases, exit statuses \(byStatus.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")), no signal")
        #expect(cases >= 210)
    }
}
