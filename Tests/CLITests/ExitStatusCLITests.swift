// One exit-status convention for every subcommand (Sources/overopt/ExitStatus.swift): 2 for
// bad input (config, flags, missing or invalid files), 1 for a failure during the work,
// 130/143 for SIGINT/SIGTERM; each error is one line "Error: …" on stderr.
import Foundation
import Testing
import TestSupport

@Suite("exit statuses", .serialized) struct ExitStatusCLITests {

    /// Checks status, a single "Error: " line naming `mention`, and no backtrace.
    func expectError(_ arguments: [String], status: Int32, mentioning mention: String) throws {
        let r = try runProcess(try overoptBinary(), arguments)
        let lines = r.stderr.split(separator: "\n")
        #expect(r.status == status, "\(arguments): exit \(r.status), expected \(status): \(r.stderr.prefix(600))")
        #expect(lines.count == 1 && lines[0].hasPrefix("Error: ") && lines[0].contains(mention),
                "\(arguments): expected one line naming '\(mention)', got:\n\(r.stderr.prefix(1500))")
    }

    @Test func badInputIsTwoForEveryCommand() throws {
        let folder = try TemporaryFolder()
        let notHDF5 = folder.file("notes.h5")
        try "not HDF5".write(toFile: notHDF5, atomically: true, encoding: .utf8)
        let badSweep = folder.file("sweep.toml")
        try "[grid]\nseed = [0, nan]\n".write(toFile: badSweep, atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["run", "--bogus"], "--bogus"),
            (["run", "--set", "rm.alpah=0.1"], "rm.alpah"),
            (["run", "--set", "seed=-1"], "seed"),
            (["run", "--threads", "0"], "--threads"),
            (["run", folder.file("absent.toml")], "absent.toml"),
            (["sweep", folder.file("absent.toml")], "absent.toml"),
            (["sweep", badSweep], "seed"),
            (["sweep", badSweep, "--slurm", "--max-parallel", "0"], "--max-parallel"),
            (["sweep", badSweep, "--jobs", "0"], "--jobs"),
            (["collect", folder.file("absent")], "absent"),
            (["collect", folder.path, "--kl-points", "1"], "--kl-points"),
            (["collect", folder.path, "--kl-points", "1000000000"], "--kl-points"),
            (["collect", folder.path, "--kl-points", "1e9"], "--kl-points"),
            (["compare", folder.file("absent")], "absent"),
            (["report", folder.file("absent")], "absent"),
            (["plot", notHDF5, "-o", folder.file("f.svg")], "notes.h5"),
            (["plot", notHDF5, "-o", folder.file("f.png")], "SVG only"),
            (["inspect", folder.file("absent.h5")], "absent.h5"),
            (["inspect", notHDF5], "notes.h5"),
            (["inspect", "--samples", notHDF5], "notes.h5"),
            (["world", "--base", notHDF5], "notes.h5"),
            (["bench", "--repeats", "0"], "--repeats"),
            (["no-such-command"], "no-such-command"),
        ]
        for (arguments, mention) in cases { try expectError(arguments, status: 2, mentioning: mention) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() == ["notes.h5", "sweep.toml"])
    }

    @Test func aFailureDuringTheWorkIsOne() throws {
        let runs = packageRoot.appendingPathComponent("results/runs/fig2").path
        let summary = packageRoot.appendingPathComponent("results/fig2-bon-ppo-clean-summary.h5").path
        let folder = try TemporaryFolder()
        let nowhere = folder.file("absent-folder")
        try expectError(["compare", runs, "-o", nowhere + "/c.h5"], status: 1, mentioning: "absent-folder")
        try expectError(["collect", runs, "-o", nowhere + "/s.h5", "--quiet"], status: 1, mentioning: "absent-folder")
        try expectError(["plot", summary, "-o", nowhere + "/f.svg"], status: 1, mentioning: "absent-folder")
        try expectError(["report", runs, "-o", nowhere + "/r.html"], status: 1, mentioning: "absent-folder")
    }

    /// A killed collect leaves a temporary (and its lock) beside the summary; the next
    /// collect into that folder removes it — and keeps one whose lock a live writer holds.
    @Test func collectRemovesTheTemporariesOfKilledCollects() throws {
        let runs = packageRoot.appendingPathComponent("results/runs/fig2").path
        let folder = try TemporaryFolder()
        let stale = folder.file(".summary.h5.tmp-999999999-abc"), live = folder.file(".other.h5.tmp-999999998-def")
        for path in [stale, stale + ".lock", live] { FileManager.default.createFile(atPath: path, contents: Data("partial".utf8)) }
        let liveLock = open(live + ".lock", O_RDWR | O_CREAT, 0o644)
        #expect(liveLock >= 0 && flock(liveLock, LOCK_EX) == 0)
        defer { close(liveLock) }
        let r = try runProcess(try overoptBinary(), ["collect", runs, "-o", folder.file("summary.h5"), "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        let left = try folder.contents()
        #expect(left.contains("summary.h5") && !left.contains { $0.hasPrefix(".summary.h5.tmp-") }, "\(left)")
        #expect(left.contains(".other.h5.tmp-999999998-def"), "a live writer's temporary was removed: \(left)")
    }

    @Test func sigtermIs143AndSigintIs130() throws {
        let folder = try TemporaryFolder()
        let sweep = folder.file("sweep.toml")
        try "[set]\n\"base.corpus_size\" = 200000\n[grid]\nseed = [0]\n".write(toFile: sweep, atomically: true, encoding: .utf8)
        // Each with the log that shows its work has started (a sweep's worker logs to its file).
        let commands: [([String], String?, Int32, Int32)] = [
            (["run", "--out", folder.file("run"), "--cache", folder.file("cache"), "--set", "base.corpus_size=200000"], nil, SIGTERM, 143),
            (["sweep", sweep, "--out", folder.file("sweep"), "--cache", folder.file("cache2")], folder.file("sweep/logs/0.log"), SIGINT, 130),
        ]
        for (arguments, log, sig, status) in commands {
            let (p, err) = try startOveropt(arguments + ["--threads", "1"], logs: folder, label: "\(sig)")
            // Until the base policy's pretraining has started.
            #expect(waitFor(60) { ((try? String(contentsOfFile: log ?? err, encoding: .utf8)) ?? "").contains("stage 1/") || !p.isRunning })
            kill(p.processIdentifier, sig)
            #expect(waitFor(20) { !p.isRunning })
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            #expect(p.terminationReason == .exit && p.terminationStatus == status, "\(arguments[0]): \(p.terminationReason) \(p.terminationStatus)")
        }
    }
}
