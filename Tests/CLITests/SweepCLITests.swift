// `overopt sweep` running entries locally: its workers die with it, and a rerun does not
// start an entry that is still running.
import Foundation
import Testing
import TestSupport

@Suite("overopt sweep, local workers", .serialized) struct SweepCLITests {
    /// A one-entry sweep whose run takes several seconds (a larger pretraining corpus).
    func writeSweep(in folder: TemporaryFolder) throws -> String {
        let path = folder.file("sweep.toml")
        try """
            [set]
            "base.corpus_size" = 20000
            "base.eval_sequences" = 20
            "data.train_pairs" = 40
            "data.eval_pairs" = 20
            proxies = ["bt"]
            stages = []

            [grid]
            seed = [5]
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The pid a worker wrote into its entry's lock file, once it has.
    func workerPID(_ lock: String, timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: lock, encoding: .utf8), text.hasPrefix("pid "),
               let pid = Int32(text.dropFirst(4).prefix { $0.isNumber }) { return pid }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return nil
    }

    @Test func killingTheSweepKillsItsWorkerAndARerunDoesNotStartARunningEntry() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let sweep = try writeSweep(in: folder)
        let out = folder.file("out")
        let args = ["sweep", sweep, "--out", out, "--cache", folder.file("cache"), "--jobs", "1", "--threads", "1"]

        // 1. A worker holds its entry: a second sweep in the same folder does not start it.
        let (first, _) = try startOveropt(args, logs: folder, label: "first")
        guard let worker = workerPID(out + "/logs/0.lock", timeout: 20) else {
            first.terminate()
            throw TestFailure("the worker never took its entry lock")
        }
        let second = try runProcess(binary, args)
        #expect(second.stderr.contains("entry 0 is running in another process (pid \(worker)"), "\(second.stderr)")

        // 2. kill -9 of the sweep: its worker stops too (it would otherwise compute on, orphaned).
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let deadline = Date().addingTimeInterval(10)
        while kill(worker, 0) == 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(kill(worker, 0) != 0, "worker \(worker) outlived its killed sweep")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".h5") }.isEmpty)
    }
}
