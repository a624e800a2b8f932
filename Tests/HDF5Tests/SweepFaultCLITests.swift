// Fault injection on a tiny sweep: kill -9 of the sweep, and of one of its workers, at
// points drawn from a fixed seed, then a rerun; the result files equal those of an
// uninterrupted sweep bit for bit, and no worker outlives its sweep.
import Foundation
import Testing

@Suite("sweep fault injection", .serialized) struct SweepFaultCLITests {
    /// A two-entry sweep of the tiny run (seeds 0 and 1).
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
        lines += ["[grid]", "seed = [0, 1]"]
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
        let reference = try runProcess(binary, ["sweep", sweep, "--out", folder.file("ref"), "--cache", folder.file("refcache"),
                                                "--threads", "1", "--quiet"])
        #expect(reference.status == 0, "\(reference.stderr)")
        let expected = results(folder.file("ref"))
        try #require(expected.count == 2, "\(expected)")

        let out = folder.file("out"), cache = folder.file("cache")
        let args = ["sweep", sweep, "--out", out, "--cache", cache, "--threads", "1"]
        // Kill points, in seconds after the start, from a fixed seed (the tiny sweep takes
        // about 10 s): the sweep itself twice, then one of its workers.
        var state: UInt64 = 0x5eed
        func uniform(_ low: Double, _ high: Double) -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return low + (high - low) * Double(state >> 11) / Double(1 << 53)
        }
        for (round, target) in ["sweep", "sweep", "worker"].enumerated() {
            let (p, err) = try startOveropt(args, logs: folder, label: "round\(round)")
            let delay = uniform(1.0, 5.0)
            _ = waitFor(delay) { !p.isRunning }
            if target == "sweep" {
                let workers = (0..<2).compactMap { lockHolder(out + "/logs/\($0).lock") }
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                // Its workers die with it (PR_SET_PDEATHSIG), so none computes on or holds an entry.
                for w in workers {
                    #expect(waitFor(10) { kill(w, 0) != 0 }, "round \(round): worker \(w) outlived its killed sweep")
                }
            } else {
                let running = (0..<2).compactMap { lockHolder(out + "/logs/\($0).lock") }.filter { kill($0, 0) == 0 }
                for w in running.prefix(1) { kill(w, SIGKILL) }
                p.waitUntilExit()
                #expect(p.terminationReason == .exit && [0, 1].contains(p.terminationStatus),
                        "round \(round): \(p.terminationReason) \(p.terminationStatus)\n\((try? String(contentsOfFile: err, encoding: .utf8)) ?? "")")
            }
            print("sweep fault injection: round \(round) killed the \(target) after \(String(format: "%.1f", delay)) s; \(results(out).count) result file(s) so far")
        }
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
