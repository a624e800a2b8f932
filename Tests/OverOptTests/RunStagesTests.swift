// RunStagesTests.swift — the stages of a run (RunStages.swift): their cache keys are the
// established ones (so existing caches stay valid), the driver builds a stage once, loads it
// the next time (logging the "cached" event of a unit) and writes what it records; the
// summary's peak and the reward-statistics sample picks.

import Foundation
import Testing
import OverOptEngine
import OverOptHDF5
import TestSupport
@testable import OverOpt

/// A run context on the default config, with its cache and metrics stream in `folder`.
private func context(_ folder: TemporaryFolder, config: ExperimentConfig = ExperimentConfig()) throws -> RunContext {
    try RunContext(config: config, outputPath: folder.file("run.h5"), cache: StageCache(directory: folder.file("cache")), log: { _ in })
}

/// A stage whose output is a few numbers; counts its builds.
private final class Builds: @unchecked Sendable { var count = 0 }

private struct NumbersStage: RunStage {
    static let codeVersion = 7
    let values: [Double]
    let builds: Builds
    var unit: (stage: String, variant: String)? { ("numbers", "v") }
    var stage: String { "numbers" }
    var label: String { "numbers/v" }
    func inputs(_ run: RunContext) -> [String: String] { ["values": values.map { "\($0)" }.joined(separator: ",")] }
    func build(_ run: RunContext) throws -> [Double] { builds.count += 1; return values }
    func read(_ entry: H5Group, _ run: RunContext) throws -> [Double] { try entry.readDoubles("values").values }
    func write(_ output: [Double], to entry: H5Group) throws { try entry.write("values", output) }
    func record(_ output: [Double], in root: H5Group) throws { try root.write("numbers", output) }
}

@Suite("run stages") struct RunStagesTests {
    @Test func sharedStagesKeepTheEstablishedCacheKeys() throws {
        let folder = try TemporaryFolder()
        let run = try context(folder)
        let c = run.config
        let base = StageOutput(value: BasePolicy(model: tinyBase()), key: "base-key")
        #expect(try BasePolicyStage(settings: c.base, label: "base").key(run)
                == StageCache.key(["world": run.world.fingerprint, "base": StageCache.key(c.base), "code": "base-v4"]))
        #expect(try PreferenceDataStage(base: base).key(run)
                == StageCache.key(["base": "base-key", "data": StageCache.key(c.data), "seed": "\(c.seed)", "code": "data-v3"]))
        // The samples' tag is "bon", not their cache prefix "bon-samples".
        #expect(try BestOfNSamplesStage(base: base).key(run)
                == StageCache.key(["base": "base-key", "bon": c.bon.samplesKey, "seed": "\(c.seed)", "code": "bon-v3"]))
        // Another preset is another key.
        var xl = c.base
        xl.preset = "xl"
        #expect(try BasePolicyStage(settings: xl, label: "base/xl").key(run) != BasePolicyStage(settings: c.base, label: "base").key(run))
    }

    @Test func optimizerStagesKeyTheirOwnSettings() throws {
        let folder = try TemporaryFolder()
        let run = try context(folder)
        let c = run.config
        let member = Transformer(config: tinyBase().config, heads: HeadConfig(reward: .linear))
        let proxy = RewardModelResult(proxy: ProxyRewardModel(name: "bt", members: [member]), config: RewardModelConfig(), seed: 0,
                                      trainPairs: 0, curves: [], trainSeconds: 0, pairsPerSecond: 0)
        let rm = StageOutput(value: proxy, key: "rm-key"), base = StageOutput(value: BasePolicy(model: tinyBase()), key: "base-key")
        for (optimizer, settings) in [("ppo", StageCache.key(c.ppo)), ("grpo", StageCache.key(c.grpo)), ("rloo", StageCache.key(c.rloo))] {
            let stage = PolicyOptimizerStage(optimizer: optimizer, name: "bt", proxy: rm, base: base)
            #expect(try stage.key(run) == StageCache.key(["rm": "rm-key", "base": "base-key", optimizer: settings, "seed": "\(c.seed)",
                                                          "detectors": StageCache.key(c.detectors), "code": "\(optimizer)-v3"]))
            #expect(stage.label == "\(optimizer)/bt" && stage.unit?.stage == optimizer && stage.unit?.variant == "bt")
        }
    }

    @Test func aStageIsBuiltOnceThenLoadedAndRecorded() throws {
        let folder = try TemporaryFolder()
        let builds = Builds()
        let stage = NumbersStage(values: [1.5, -2, .pi], builds: builds)
        let first = try context(folder)
        let a = try first.run(stage)
        #expect(a.value == [1.5, -2, .pi] && builds.count == 1)
        #expect(a.key == StageCache.key(["values": "1.5,-2.0,\(Double.pi)", "code": "numbers-v7"]))
        #expect(FileManager.default.fileExists(atPath: folder.file("cache/numbers-\(a.key).h5")))
        #expect(first.timings.map(\.0) == ["numbers/v"])
        // A second run loads the entry: no build, and the metrics stream says "cached".
        let second = try context(folder)
        let b = try second.run(stage)
        #expect(b.value == a.value && b.key == a.key && builds.count == 1)
        let metrics = try String(contentsOfFile: folder.file("run.metrics.jsonl"), encoding: .utf8)
        #expect(metrics.components(separatedBy: "\"event\":\"cached\"").count == 2, "\(metrics)")
        #expect(metrics.contains("\"stage\":\"numbers\",\"variant\":\"v\""))
        // What the stage records goes into the result file.
        try writeAtomically(to: folder.file("result.h5")) { try second.writeRecords(to: $0.root) }
        let f = try H5File.open(folder.file("result.h5"))
        #expect(try f.root.readDoubles("numbers").values == [1.5, -2, .pi])
    }

    @Test func rewardStatisticsSamplesSpreadOverAllPrompts() {
        #expect(ProxyStage.normalizationSampleCount == 1024)
        let many = ProxyStage.normalizationIndices(count: 4096)
        #expect(many.count == 1024 && many.first == 0 && many.last == 4092 && zip(many, many.dropFirst()).allSatisfy { $1 - $0 == 4 })
        #expect(ProxyStage.normalizationIndices(count: 100) == Array(0..<100))
        #expect(ProxyStage.normalizationIndices(count: 2047) == Array(0..<2047))
        #expect(ProxyStage.normalizationIndices(count: 0).isEmpty)
    }

    @Test func peakIsTheFirstLargestValue() {
        #expect(peakIndex([0.1, 0.7, 0.3, 0.7]) == 1)
        #expect(peakIndex([-3]) == 0)
        #expect(peakIndex([]) == nil)
        // The summary's peak is measured from the first evaluation.
        var c = PolicyCurves(settings: [])
        (c.kl, c.proxy, c.gold) = ([0, 1, 2], [1, 2, 3], [0.5, 1.25, 0.75])
        let s = OptimizerSummary(curves: c)
        #expect(s.peakGold == 0.75 && s.peakKL == 1 && s.gold == 0.25 && s.proxy == 2 && s.kl == 2)
    }

    @Test func outputFolderIsCreatedOrRefused() throws {
        let folder = try TemporaryFolder()
        let nested = folder.file("a/b")
        #expect(try prepareOutputFolder(nested) == nested)
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: nested, isDirectory: &isDirectory) && isDirectory.boolValue)
        #expect(try FileManager.default.contentsOfDirectory(atPath: nested).isEmpty)   // the write probe is gone
        // A file where the folder should be.
        _ = FileManager.default.createFile(atPath: folder.file("file"), contents: Data())
        #expect(throws: OutputFolderError.self) { try prepareOutputFolder(folder.file("file/sub")) }
    }
}
