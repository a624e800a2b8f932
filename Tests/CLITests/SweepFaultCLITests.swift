// Fault injection on a tiny sweep: kill -9 of the sweep, and of one of its workers, at
// points drawn from a fixed seed, then a rerun; the result files equal those of an
// uninterrupted sweep bit for bit, and no worker outlives its sweep.
import Foundation
import Testing
import TestSupport

@Suite("sweep fault injection", .serialized) struct SweepFaultCLITests {
    /// A three-entry sweep of the tiny run, each entry with its own base policy (`base.seed`),
    /// so that every entry has work of its own.
    func writeSweep(_ path: String) throws {
        var lines = ["[set]"]
        var i = 0
        while i < tinyRunArguments.count {
            if tinyRunArguments[i] == "--set", let eq = tinyRunArguments[i + 1].firstIndex(of: "=") {
                let key = tinyRunArguments[i + 1][..<eq], value = tinyRunArguments[i + 1][tinyRunArguments[i + 1].index(after: eq)...]
                lines.append("\"\(key)\" = \(value)")
            }
            i += 1
        }
        lines[1] = "\"base.corpus_size\" = 1500"
        lines += ["[grid]", "\"base.seed\" = [1, 2, 3]"]
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    func results(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".h5") && !$0.hasPrefix(".") }.sorted()
    }

    /// The pid in a worker's entry lock file ("pid N on HOST"), if it wrote one.
    func lockHolder(_ path: String) -> Int32? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), text.hasPrefix("pid ") else { return nil }
        return Int32(text.dropFirst(4).prefix { $0.isNumber })
    }

    @Test func killedSweepsAndWorkersResumeToTheResultsOfAnUninterruptedSweep() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let sweep = folder.file("tiny.toml")
        try writeSweep(sweep)
        let t0 = Date()
        let reference = try runProcess(binary, ["sweep", sweep, "--out", folder.file("ref"), "--cache", folder.file("refcache"),
                                                "--threads", "1", "--quiet"])
        let duration = Date().timeIntervalSince(t0)
        #expect(reference.status == 0, "\(reference.stderr)")
        let expected = results(folder.file("ref"))
        try #require(expected.count == 3, "\(expected)")

        let out = folder.file("out"), cache = folder.file("cache")
        let args = ["sweep", sweep, "--out", out, "--cache", cache, "--threads", "1"]
        // Kill points drawn from a fixed seed, as fractions of the uninterrupted sweep's
        // duration, counted from when a worker holds its entry: the sweep, one of its workers,
        // the sweep again.
        var state: UInt64 = 0x5eed
        func uniform(_ low: Double, _ high: Double) -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return low + (high - low) * Double(state >> 11) / Double(1 << 53)
        }
        // Rounds 0 and 1 always find work left (at most one entry is done after round 0), so
        // their kills must hit a running sweep; round 2 resumes whatever is left and may find
        // that the last entry, mostly cached by then, finishes before its kill point.
        var hit: [Bool] = []
        for (round, target) in ["sweep", "worker", "sweep"].enumerated() {
            let (p, err) = try startOveropt(args, logs: folder, label: "round\(round)")
            // Once a worker holds its entry, a seeded delay.
            _ = waitFor(20) { (0..<3).contains { lockHolder(out + "/logs/\($0).lock").map { kill($0, 0) == 0 } ?? false } || !p.isRunning }
            let delay = uniform(0.05, 0.25) * duration
            _ = waitFor(delay) { !p.isRunning }
            if target == "sweep" {
                let workers = (0..<3).compactMap { lockHolder(out + "/logs/\($0).lock") }.filter { kill($0, 0) == 0 }
                hit.append(p.isRunning)
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                // Its workers die with it (PR_SET_PDEATHSIG), so none computes on or holds an entry.
                for w in workers {
                    #expect(waitFor(10) { kill(w, 0) != 0 }, "round \(round): worker \(w) outlived its killed sweep")
                }
            } else {
                let running = (0..<3).compactMap { lockHolder(out + "/logs/\($0).lock") }.filter { kill($0, 0) == 0 }
                if let w = running.first, p.isRunning {
                    kill(w, SIGKILL)
                    hit.append(true)
                } else {
                    hit.append(false)
                }
                p.waitUntilExit()
                #expect(p.terminationReason == .exit && [0, 1].contains(p.terminationStatus),
                        "round \(round): \(p.terminationReason) \(p.terminationStatus)\n\((try? String(contentsOfFile: err, encoding: .utf8)) ?? "")")
            }
            let at = String(format: "%.1f", delay)
            let outcome = hit[round] ? "killed the \(target) after \(at) s" : "the sweep finished before its kill point at \(at) s"
            print("sweep fault injection: round \(round): \(outcome) "
                  + "(the uninterrupted sweep took \(String(format: "%.1f", duration)) s); \(results(out).count) of 3 result files so far")
        }
        #expect(hit[0] && hit[1], "the kills of rounds 0 (sweep) and 1 (worker) must hit a running sweep: \(hit)")
        let resumed = try runProcess(binary, args + ["--quiet"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(results(out) == expected)
        for name in expected {
            let differing = try differingDatasets(folder.file("ref") + "/" + name, out + "/" + name)
            #expect(differing == [], "\(name): datasets that differ from the uninterrupted sweep: \(differing)")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: out)
        #expect(!left.contains { $0.contains(".tmp-") }, "temporaries left: \(left)")
    }
}
