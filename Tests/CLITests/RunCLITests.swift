// `overopt run` end to end through the command line: a tiny experiment writes a complete
// result file; a killed run leaves no file under the final name, and the next run in the
// folder removes the killed run's temporary file; bad configs exit non-zero before work.
import Foundation
import Testing
import TestSupport
import OverOptHDF5

/// A run small enough for a test (a few seconds).
let tinyRunArguments = ["--set", "base.corpus_size=300", "--set", "base.eval_sequences=20", "--set", "data.train_pairs=40",
                        "--set", "data.eval_pairs=20", "--set", "rm.epochs=1", "--set", "proxies=[\"bt\",\"grm-sft\"]",
                        "--set", "bon.prompts=4", "--set", "bon.samples_per_prompt=8", "--set", "ppo.steps=2",
                        "--set", "ppo.eval_prompts=8", "--set", "ppo.prompts_per_step=8", "--set", "ppo.minibatch_size=4", "--threads", "1"]

@Suite("overopt run", .serialized) struct RunCLITests {
    @Test func aTinyRunWritesACompleteResultFile() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let r = try runProcess(binary, ["run", "--out", folder.file("out"), "--cache", folder.file("cache"), "--seed", "3"] + tinyRunArguments)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("result file:"))
        let all = try FileManager.default.contentsOfDirectory(atPath: folder.file("out"))
        let files = all.filter { $0.hasSuffix(".h5") }
        // The result file and its metrics stream.
        #expect(Set(all) == Set(files + files.map { String($0.dropLast(3)) + ".metrics.jsonl" }), "\(all)")
        try #require(files.count == 1, "\(all)")
        #expect(files[0].hasPrefix("quickstart-seed3-"), "\(files)")
        let file = try H5File.open(folder.file("out/" + files[0]))
        #expect(try file.root.boolAttribute("complete"))
        #expect(try file.root.intAttribute("seed") == 3)
        #expect(try file.root.stringAttribute("config").contains("\"label_noise\""))
        for group in ["rm/bt", "rm/grm-sft", "bon/bt", "bon/grm-sft", "ppo/bt", "ppo/grm-sft"] {
            #expect(file.root.contains(group), "missing /\(group)")
        }
        #expect(try file.root.group("bon/bt").readDoubles("kl").values.last! > 1.0)
        // Reward statistics are measured on base-policy samples (those of best-of-n).
        #expect(try file.root.group("rm/bt").readDoubles("reward_std").values[0] > 0)   // KL of best-of-8 = log 8 − 7/8
        // The cache now holds the base policy, the data, the best-of-n samples and each
        // proxy, best-of-n curve and PPO run (with one lock file per entry).
        let cached = try FileManager.default.contentsOfDirectory(atPath: folder.file("cache"))
        #expect(Set(cached.map { String($0.prefix { $0 != "-" }) }) == ["base", "data", "bon", "rm", "ppo"], "\(cached)")
        #expect(cached.filter { $0.hasSuffix(".h5") }.count == 9 && cached.filter { $0.hasSuffix(".h5.lock") }.count == 9, "\(cached)")
    }

    /// A proxy of another size than the policy (`base = "tiny"`: plain, and a LoRA ensemble)
    /// is fine-tuned from its own cached base and scores the policy's best-of-n samples and
    /// PPO; the policy stays the `small` one.
    @Test func proxiesOfAnotherSizeTrainAndScoreThePolicy() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let args = tinyRunArguments + ["--set", "proxies=[\"bt\",\"bt-tiny\",\"ens-tiny\"]",
                                       "--set", "variants.bt-tiny.base=\"tiny\"", "--set", "variants.ens-tiny.base=\"tiny\"",
                                       "--set", "variants.ens-tiny.objective=\"ensemble\"", "--set", "variants.ens-tiny.ensemble_size=2",
                                       "--set", "variants.ens-tiny.finetune=\"lora\"", "--quiet"]
        let r = try runProcess(binary, ["run", "--out", folder.file("out"), "--cache", folder.file("cache")] + args)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.file("out")).filter { $0.hasSuffix(".h5") }
        try #require(files.count == 1)
        let file = try H5File.open(folder.file("out/" + files[0]))
        defer { file.close() }
        let policy = try file.root.group("base").intAttribute("parameters")
        #expect(try file.root.group("base").stringAttribute("preset") == "small")
        #expect(try file.root.group("rm/bt").intAttribute("base_parameters") == policy)
        #expect(try !file.root.group("rm/bt").hasAttribute("base"))
        for v in ["bt-tiny", "ens-tiny"] {
            let g = try file.root.group("rm/\(v)")
            #expect(try g.stringAttribute("base") == "tiny")
            #expect(try g.intAttribute("base_parameters") < policy / 3)
            #expect(try g.readDoubles("id_accuracy").values[0].isFinite)
            #expect(file.root.contains("bon/\(v)") && file.root.contains("ppo/\(v)"))
            // The same best-of-n samples (the policy's): the gold oracle does not depend on the proxy.
            #expect(try file.root.group("bon/\(v)").readDoubles("gold_oracle").values
                    == file.root.group("bon/bt").readDoubles("gold_oracle").values)
            #expect(try file.root.group("ppo/\(v)").readDoubles("kl").values.allSatisfy(\.isFinite))
        }
        // Two base models in the cache (small and tiny), three proxies; a rerun trains nothing.
        let cached = try FileManager.default.contentsOfDirectory(atPath: folder.file("cache")).filter { $0.hasSuffix(".h5") }
        #expect(cached.filter { $0.hasPrefix("base-") }.count == 2 && cached.filter { $0.hasPrefix("rm-") }.count == 3, "\(cached)")
        let again = try runProcess(binary, ["run", "--out", folder.file("out2"), "--cache", folder.file("cache")] + args.dropLast())
        #expect(again.status == 0 && again.stderr.contains("stage 2/13: base/tiny") && again.stderr.contains("base: loaded from cache")
                && !again.stderr.contains("base policy: tiny preset") && !again.stderr.contains("rm bt-tiny: 1 member"),
                "\(again.stderr.suffix(3000))")
    }

    /// The same seed at 1 and 2 threads gives the same result file, down to the bit, also
    /// where batches are too small to split over replicas (batches of 3 and 4 run as one
    /// pass, whose products are cut into blocks fixed by their shape).
    @Test func resultsDoNotDependOnTheThreadCountAtAnyBatchSize() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let small = tinyRunArguments.dropLast(2) + ["--set", "base.batch_size=4", "--set", "rm.batch_size=3", "--quiet"]
        var files: [String] = []
        for threads in [1, 2] {
            let out = folder.file("out-\(threads)")
            let r = try runProcess(binary, ["run", "--out", out, "--cache", folder.file("cache-\(threads)"), "--threads", "\(threads)"] + small)
            #expect(r.status == 0, "stderr: \(r.stderr)")
            files += try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".h5") }.map { out + "/" + $0 }
        }
        try #require(files.count == 2)
        // h5diff lists every dataset whose values differ; timings (seconds, per-second rates) may.
        let diff = try runProcess("/usr/bin/h5diff", files)
        #expect(diff.status <= 1, "h5diff failed: \(diff.stderr)")
        let differing = diff.stdout.split(separator: "\n").filter { $0.hasPrefix("dataset:") && !$0.contains("per_second") && !$0.contains("seconds") }
        #expect(differing.isEmpty, "datasets that differ between 1 and 2 threads: \(differing)")
        #expect(!diff.stdout.lowercased().contains("not comparable"), "\(diff.stdout.prefix(2000))")
    }

    @Test func aKilledRunLeavesNoFinalFileAndItsTemporaryIsCleanedUp() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let out = folder.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        // A leftover temporary of a killed writer (its lock file held by nobody), and a live
        // writer's (its lock held — here by this test process, as a run on another node of a
        // shared file system would hold it; its PID means nothing here).
        let stale = out + "/.quickstart-seed0-0000.h5.tmp-999999999-abc"
        FileManager.default.createFile(atPath: stale, contents: Data("partial".utf8))
        FileManager.default.createFile(atPath: stale + ".lock", contents: nil)
        let live = out + "/.quickstart-seed0-1111.h5.tmp-999999998-def"
        FileManager.default.createFile(atPath: live, contents: Data("being written".utf8))
        let liveLock = open(live + ".lock", O_RDWR | O_CREAT, 0o644)
        #expect(liveLock >= 0 && flock(liveLock, LOCK_EX) == 0)
        defer { close(liveLock) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["run", "--out", out, "--cache", folder.file("cache"), "--quiet", "--set", "base.corpus_size=200000"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        Thread.sleep(forTimeInterval: 2)
        kill(p.processIdentifier, SIGINT)           // Ctrl-C
        let deadline = Date().addingTimeInterval(20)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            Issue.record("overopt run ignored SIGINT")
        }
        p.waitUntilExit()
        #expect(p.terminationStatus == 130)
        let left = try FileManager.default.contentsOfDirectory(atPath: out)
        #expect(!left.contains { $0.hasSuffix(".h5") && !$0.hasPrefix(".") }, "final file after a kill: \(left)")
        #expect(!left.contains(".quickstart-seed0-0000.h5.tmp-999999999-abc") && !left.contains(".quickstart-seed0-0000.h5.tmp-999999999-abc.lock"),
                "stale temporary not removed: \(left)")
        #expect(left.contains(".quickstart-seed0-1111.h5.tmp-999999998-def"), "a live writer's temporary was removed: \(left)")
        #expect(!left.contains { $0.hasSuffix(".lock") && !$0.contains("1111") }, "the killed run's lock file stayed: \(left)")
    }

    @Test func badInputExitsNonZeroBeforeAnyWork() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let cases: [([String], String)] = [
            (["run", "--set", "data.label_noise=0.9"], "data.label_noise"),
            (["run", "--set", "rm.alpah=0.1"], "rm.alpah"),
            (["run", "/nonexistent/config.toml"], "/nonexistent/config.toml"),
            (["run", "--out", "/proc/overopt-cannot-write-here"], "/proc/overopt-cannot-write-here"),
            (["run", "--out", "/proc"], "the output folder /proc is not writable"),
            (["run", "--set", "name=\"../escape\""], "name"),
            (["run", "--set", "name=\"\""], "name"),
            (["run", "--set", "name=\"\(String(repeating: "n", count: 300))\""], "name"),
            (["run", "--set", "ppo.max_new_tokens=100000"], "ppo.max_new_tokens"),
        ]
        for (args, mention) in cases {
            let r = try runProcess(binary, args + ["--cache", folder.file("cache")])
            #expect(r.status != 0, "\(args) exited 0")
            #expect(r.stderr.contains(mention), "\(args): stderr \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: folder.file("cache")))   // nothing was computed
    }
}

/// A full disk, on a 64 KB tmpfs (mounted where the test may, as root in CI; skipped with a
/// message elsewhere): results on it fail with one clear line and no crash, and a cache on it
/// only costs the caching — the run writes its result elsewhere.
@Suite("full disk", .serialized) struct FullDiskCLITests {
    @Test func aFullDiskIsAClearErrorForResultsAndNoErrorForTheCache() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let disk = folder.file("disk")
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        let mount = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", disk])
        guard mount.status == 0 else {
            print("full-disk test skipped: cannot mount a tmpfs here (\(mount.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")
            return
        }
        defer { _ = try? runProcess("/bin/umount", [disk]) }
        let small = Array(tinyRunArguments.dropLast(2)) + ["--threads", "1", "--quiet"]

        let results = try runProcess(binary, ["run", "--out", disk, "--cache", folder.file("cache")] + small)
        #expect(results.status == 1, "exit \(results.status): \(results.stderr.suffix(800))")
        #expect(results.stderr.contains("is full") && results.stderr.contains(disk), "\(results.stderr.suffix(800))")
        #expect(!results.stderr.contains("Program crashed"))
        let left = try FileManager.default.contentsOfDirectory(atPath: disk)
        #expect(!left.contains { $0.hasSuffix(".h5") }, "no result file, complete or not: \(left)")

        let cache = try runProcess(binary, ["run", "--out", folder.file("out"), "--cache", disk + "/cache"]
                                   + Array(tinyRunArguments.dropLast(2)) + ["--threads", "1"])
        #expect(cache.status == 0, "exit \(cache.status): \(cache.stderr.suffix(800))")
        #expect(cache.stderr.contains("not cached") && cache.stdout.contains("result file:"), "\(cache.stderr.suffix(800))")
    }
}
