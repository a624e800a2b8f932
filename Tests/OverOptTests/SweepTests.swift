// SweepTests.swift — sweep files expand to a manifest in the documented order with the
// right overrides; a complete result file is skipped and an incomplete one rerun; the Slurm
// script has the array size and task command, and its task line calls the binary with the
// array index, and the extra directives, set-up lines and the chained collect job are
// written; remaining-time estimates; the metrics stream; one tiny entry runs end to end
// into its named file.

import Foundation
import Testing
import OverOptHDF5
@testable import OverOpt

private let gridSweep = """
    [set]
    "ppo.steps" = 7
    [grid]
    seed = [0, 1]
    "data.label_noise" = [0.0, 0.25]
    proxies = [["bt"], ["grm-sft", "ensemble"]]
    """

@Test func sweepExpandsTheGridInTheDocumentedOrder() throws {
    let spec = try SweepSpec.parse(gridSweep, source: "test.toml", directory: "")
    #expect(spec.basePath == nil)
    #expect(spec.fixed == ["ppo.steps=7"])
    #expect(spec.grid.map(\.key) == ["data.label_noise", "proxies", "seed"])   // alphabetical, seed last
    #expect(spec.count == 8)
    let entries = try spec.entries()
    #expect(entries.count == 8)
    #expect(entries[0].gridOverrides == ["data.label_noise=0.0", #"proxies=["bt"]"#, "seed=0"])
    #expect(entries[1].gridOverrides == ["data.label_noise=0.0", #"proxies=["bt"]"#, "seed=1"])
    #expect(entries[2].gridOverrides == ["data.label_noise=0.0", #"proxies=["grm-sft", "ensemble"]"#, "seed=0"])
    #expect(entries[7].gridOverrides == ["data.label_noise=0.25", #"proxies=["grm-sft", "ensemble"]"#, "seed=1"])
    #expect(entries[7].overrides.first == "ppo.steps=7")
    // The overrides reach the resolved config.
    let c = entries[7].config
    #expect(c.seed == 1 && c.data.labelNoise == 0.25 && c.proxies == ["grm-sft", "ensemble"] && c.ppo.steps == 7)
    #expect(entries[0].config.data.labelNoise == 0 && entries[0].config.proxies == ["bt"])
    // Every entry has its own file, named as `overopt run` names it.
    #expect(Set(entries.map(\.fileName)).count == 8)
    #expect(entries[3].fileName == "quickstart-seed1-\(entries[3].config.hash.prefix(8)).h5")
    // Same overrides through ExperimentConfig.load directly give the same file.
    #expect(try ExperimentConfig.load(path: nil, overrides: entries[5].overrides).hash == entries[5].config.hash)
}

@Test func sweepReadsNestedGridKeysAndResolvesBaseAgainstTheSweepFile() throws {
    let dir = try temporaryFolder("sweep-base")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try "name = \"based\"\n[ppo]\nsteps = 3\n".write(toFile: "\(dir)/exp.toml", atomically: true, encoding: .utf8)
    try "base = \"exp.toml\"\n[grid.data]\ntrain_pairs = [100, 200]\n[grid.bon]\nsave_samples = [true]\n"
        .write(toFile: "\(dir)/s.toml", atomically: true, encoding: .utf8)
    let spec = try SweepSpec.load(path: "\(dir)/s.toml")
    #expect(spec.basePath == "\(dir)/exp.toml")
    let entries = try spec.entries()
    #expect(entries.map(\.gridOverrides) == [["bon.save_samples=true", "data.train_pairs=100"], ["bon.save_samples=true", "data.train_pairs=200"]])
    #expect(entries[1].config.name == "based" && entries[1].config.ppo.steps == 3 && entries[1].config.data.trainPairs == 200)
    #expect(entries[0].config.bon.saveSamples)
}

@Test func sweepErrorsNameTheProblem() throws {
    #expect(throws: ConfigError.self) { try SweepSpec.parse("grid = 3", source: "s.toml", directory: "") }
    #expect(throws: ConfigError.self) { try SweepSpec.parse("[grid]\nseed = 3", source: "s.toml", directory: "") }
    #expect(throws: ConfigError.self) { try SweepSpec.parse("bogus = 1", source: "s.toml", directory: "") }
    // A bad value in one entry fails before any work, naming the entry.
    let spec = try SweepSpec.parse("[grid]\n\"data.label_noise\" = [0.0, 0.9]", source: "s.toml", directory: "")
    do {
        _ = try spec.entries()
        Issue.record("expected an error")
    } catch let e as ConfigError {
        #expect(e.description.contains("entry 1") && e.description.contains("label_noise"))
    }
    // The same value twice resolves to the same file.
    let twice = try SweepSpec.parse("[grid]\nseed = [1, 1]", source: "s.toml", directory: "")
    #expect(throws: ConfigError.self) { try twice.entries() }
}

@Test func tomlLiteralsRoundTripThroughOverrides() throws {
    let tree = try parseTOML(#"a = 2000; b = 0.25; c = true; d = "x \"q\""; e = [["bt"], ["grm-sft"]]; f = 0.0"#
        .replacingOccurrences(of: "; ", with: "\n"), source: "t")
    #expect(tomlLiteral(tree["a"]!) == "2000")
    #expect(tomlLiteral(tree["b"]!) == "0.25")
    #expect(tomlLiteral(tree["c"]!) == "true")
    #expect(tomlLiteral(tree["d"]!) == #""x \"q\"""#)
    #expect(tomlLiteral(tree["e"]!) == #"[["bt"], ["grm-sft"]]"#)
    #expect(parseOverrideValue(tomlLiteral(tree["d"]!)) as? String == #"x "q""#)
}

@Test func slurmScriptHasArraySizeResourcesAndTaskCommand() throws {
    var o = SlurmOptions()
    o.cpusPerTask = 4; o.time = "01:30:00"; o.memory = "8G"; o.partition = "cpu"
    let s = slurmScript(count: 12, binary: "/opt/bin/overopt", sweepFile: "/home/u/s.toml", outputFolder: "/scratch/out",
                        cache: "/scratch/cache", options: o)
    let lines = s.split(separator: "\n").map(String.init)
    #expect(lines.first == "#!/bin/bash")
    #expect(lines.contains("#SBATCH --array=0-11"))
    #expect(lines.contains("#SBATCH --output=/scratch/out/logs/%a.log"))
    #expect(lines.contains("#SBATCH --cpus-per-task=4"))
    #expect(lines.contains("#SBATCH --time=01:30:00"))
    #expect(lines.contains("#SBATCH --mem=8G"))
    #expect(lines.contains("#SBATCH --partition=cpu"))
    #expect(lines.last == #"/opt/bin/overopt sweep /home/u/s.toml --index "$SLURM_ARRAY_TASK_ID" --out /scratch/out --cache /scratch/cache --threads "${SLURM_CPUS_PER_TASK:-4}""#)
}

@Test func slurmDirectivesQuoteFoldersWithSpacesAsSbatchReadsThem() throws {
    let s = slurmScript(count: 2, binary: "/opt/bin/overopt", sweepFile: "/home/u/s.toml", outputFolder: "/scratch/my \"runs\"",
                        cache: nil, options: SlurmOptions())
    #expect(s.contains(#"#SBATCH --output="/scratch/my \"runs\"/logs/%a.log""#), "\(s)")
    #expect(sbatchQuoted("/plain/path/%a.log") == "/plain/path/%a.log")
    #expect(sbatchQuoted(#"a\b"#) == #""a\\b""#)
}

@Test func slurmTaskLinePassesTheArrayIndexToTheBinary() throws {
    // The script run locally with SLURM_ARRAY_TASK_ID set calls the binary with that index
    // (a stub binary records its arguments; the real `--index` run is the end-to-end test).
    let dir = try temporaryFolder("slurm local")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let stub = "\(dir)/fake overopt"
    try "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"\(dir)/args\"\n".write(toFile: stub, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: stub)
    let script = slurmScript(count: 3, binary: stub, sweepFile: "\(dir)/s.toml", outputFolder: "\(dir)/out",
                             cache: nil, options: SlurmOptions())
    try script.write(toFile: "\(dir)/sweep.sbatch", atomically: true, encoding: .utf8)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = ["\(dir)/sweep.sbatch"]
    p.environment = ["SLURM_ARRAY_TASK_ID": "2", "PATH": "/usr/bin:/bin"]
    try p.run()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0)
    let args = try String(contentsOfFile: "\(dir)/args", encoding: .utf8).split(separator: "\n").map(String.init)
    #expect(args == ["sweep", "\(dir)/s.toml", "--index", "2", "--out", "\(dir)/out", "--no-cache", "--threads", "2"])
}

@Test func sweepEntryRunsEndToEndAndResumes() throws {
    let dir = try temporaryFolder("sweep-e2e")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let sweep = """
        [set]
        "base.corpus_size" = 1500
        "base.eval_sequences" = 100
        "data.train_pairs" = 100
        "data.eval_pairs" = 40
        "rm.epochs" = 1
        "bon.prompts" = 4
        "bon.samples_per_prompt" = 8
        "ppo.steps" = 1
        "ppo.prompts_per_step" = 8
        "ppo.minibatch_size" = 8
        "ppo.eval_prompts" = 8
        [grid]
        proxies = [["bt"]]
        seed = [0, 3]
        """
    let spec = try SweepSpec.parse(sweep, source: "e2e.toml", directory: dir)
    let entries = try spec.entries()
    #expect(entries.count == 2)
    let entry = entries[1]
    let out = "\(dir)/out"
    let expected = "\(out)/\(entry.fileName)"
    // An incomplete file (no `complete` attribute) under the final name is rerun.
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    try writeAtomically(to: expected) { try $0.root.setAttribute("name", "half-written") }
    #expect(!isCompleteResult(expected))
    let cache = StageCache(directory: "\(dir)/cache")
    let first = try runSweepEntry(entry, outputFolder: out, cache: cache, log: { _ in })
    #expect(first.ran && first.path == expected)
    #expect(isCompleteResult(expected))
    let f = try H5File.open(expected)
    #expect(try f.root.intAttribute("seed") == 3)
    #expect(try f.root.stringAttribute("config_hash") == entry.config.hash)
    #expect(f.root.contains("rm/bt") && f.root.contains("bon/bt/picks") && f.root.contains("ppo/bt"))
    let picks = try BestOfNPicks.read(from: try f.root.group("bon/bt/picks"))
    #expect(picks.n == [1, 4, 8, 1, 4, 8, 1, 4, 8, 1, 4, 8])
    #expect(picks.response.count == 12 && picks.goldComponents.count == 5)
    f.close()
    // A complete file is skipped (and left untouched).
    let before = try FileManager.default.attributesOfItem(atPath: expected)[.modificationDate] as? Date
    let second = try runSweepEntry(entry, outputFolder: out, cache: cache, log: { _ in })
    #expect(!second.ran)
    #expect(try FileManager.default.attributesOfItem(atPath: expected)[.modificationDate] as? Date == before)
    // The readable listing shows the picks and the PPO samples.
    let text = try describeSamples(file: expected, variant: "bt")
    #expect(text.contains("best-of-n · bt") && text.contains("n=8") && text.contains("PPO · bt"))
}

@Test func slurmScriptsPassDirectivesAndSetupAndChainTheCollectJob() throws {
    var o = SlurmOptions()
    o.directives = ["--qos=short", "#SBATCH --constraint=avx2"]
    o.setup = ["module load hdf5", "export OMP_NUM_THREADS=1"]
    o.jobName = "overopt-s"
    let s = slurmScript(count: 4, binary: "/opt/bin/overopt", sweepFile: "/home/u/s.toml", outputFolder: "/scratch/out",
                        cache: "/scratch/cache", options: o).split(separator: "\n").map(String.init)
    let qos = try #require(s.firstIndex(of: "#SBATCH --qos=short"))
    #expect(s[qos + 1] == "#SBATCH --constraint=avx2")
    let strict = try #require(s.firstIndex(of: "set -euo pipefail"))
    #expect(qos < strict, "every #SBATCH line must precede the first command")
    #expect(Array(s[(strict + 1)...(strict + 2)]) == o.setup)
    #expect(s.last!.hasPrefix("/opt/bin/overopt sweep "))

    let c = slurmCollectScript(binary: "/opt/bin/overopt", outputFolder: "/scratch/out", options: o).split(separator: "\n").map(String.init)
    #expect(c.contains("#SBATCH --job-name=overopt-s-collect") && c.contains("#SBATCH --qos=short"))
    #expect(c.contains("#SBATCH --output=/scratch/out/logs/collect.log") && c.contains("module load hdf5"))
    #expect(!c.contains { $0.contains("--array") })
    #expect(c.last == "/opt/bin/overopt collect /scratch/out -o /scratch/out/summary.h5")

    let submit = slurmSubmitScript(outputFolder: "/scratch/my out")
    #expect(submit.contains("sbatch --parsable '/scratch/my out'/sweep.sbatch"))
    #expect(submit.contains("--dependency=afterok:\"$array\" '/scratch/my out'/collect.sbatch"))
}

@Test func submitScriptChainsTheCollectJobOnTheArrayJobID() throws {
    // A stand-in `sbatch` on PATH records its arguments and answers like `sbatch --parsable`
    // ("<job id>;<cluster>" on federated clusters).
    let dir = try temporaryFolder("slurm submit")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try "#!/bin/sh\necho \"$@\" >> \"\(dir)/calls\"\necho \"4242;cluster\"\n".write(toFile: "\(dir)/sbatch", atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(dir)/sbatch")
    try slurmSubmitScript(outputFolder: "\(dir)/out").write(toFile: "\(dir)/submit.sh", atomically: true, encoding: .utf8)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = ["\(dir)/submit.sh"]
    p.environment = ["PATH": "\(dir):/usr/bin:/bin"]
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0)
    let calls = try String(contentsOfFile: "\(dir)/calls", encoding: .utf8).split(separator: "\n").map(String.init)
    #expect(calls == ["--parsable \(dir)/out/sweep.sbatch", "--parsable --dependency=afterok:4242 \(dir)/out/collect.sbatch"])
}

@Test func remainingTimeEstimates() {
    #expect(remainingSeconds(elapsed: 10, done: 2, total: 10) == 40)
    #expect(remainingSeconds(elapsed: 10, done: 0, total: 10) == nil)
    #expect(etaSuffix(elapsed: 30, done: 1, total: 3) == ", ETA 1m00s")
    #expect(formatDuration(59.4) == "59s" && formatDuration(3599) == "59m59s" && formatDuration(7300) == "2h01m")
    // Sweep: entries took 100 s on average; one running for 40 s has 60 s left; four queued
    // entries on two workers add 200 s each.
    #expect(sweepRemainingSeconds(finished: [90, 110], runningElapsed: [40], queued: 4, jobs: 2) == 230.0)   // (60 + 4 · 100) / 2
    #expect(sweepRemainingSeconds(finished: [100], runningElapsed: [40, 90], queued: 0, jobs: 2) == 60.0)
    #expect(sweepRemainingSeconds(finished: [], runningElapsed: [1], queued: 3, jobs: 1) == nil)
}

@Test func metricsStreamWritesOneParsableObjectPerLine() throws {
    let dir = try temporaryFolder("metrics")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = MetricsStream.path(forResult: "\(dir)/run-seed0-abc.h5")
    #expect(path == "\(dir)/run-seed0-abc.metrics.jsonl")
    do {
        let m = try MetricsStream(path: path)
        m.emit(stage: "ppo", variant: "grm \"sft\"", step: 3, [("kl", 0.25), ("gold", .nan), ("proxy", -1.5e-7)])
        m.observer(stage: "rm", variant: "bt")(7, [("loss", 0.69)])
    }
    // Appends, never truncates.
    try MetricsStream(path: path).emit(stage: "run", fields: [("event", "start")])
    let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
    #expect(lines.count == 3)
    let objects = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    #expect(objects[0]["stage"] as? String == "ppo" && objects[0]["variant"] as? String == "grm \"sft\"")
    #expect(objects[0]["step"] as? Int == 3 && objects[0]["kl"] as? Double == 0.25 && objects[0]["gold"] is NSNull)
    #expect(objects[0]["proxy"] as? Double == -1.5e-7 && objects[0]["time"] is Double && objects[0]["elapsed"] is Double)
    #expect(objects[1]["stage"] as? String == "rm" && objects[1]["step"] as? Int == 7 && objects[1]["loss"] as? Double == 0.69)
    #expect(objects[2]["event"] as? String == "start" && objects[2]["variant"] == nil)
}
