// RunStages.swift — the stages of a run (Experiment.swift lists them in order).
//
// A stage is a small value that owns what makes it reusable: its inputs (the cache key,
// together with the stage's one code-version constant), how its output is built, stored in
// and read from a cache entry, and what it adds to the result file. `RunContext.run`
// does the rest for every stage alike: the "stage i/n" line, the cache lookup, the timing,
// the metrics stream's "cached" event of a resumed unit, and the result-file writer.
//
// Stages shared by runs (base policies, preference data, best-of-n samples) live in the
// stage cache; units of work of one run (each proxy, best-of-n curve and policy optimizer
// against it) too, or without a cache in a scratch folder removed at the end, so a killed
// run resumes at its first unfinished unit.
import Foundation
import OverOptEngine
import OverOptHDF5

/// One stage of a run.
protocol RunStage {
    associatedtype Output
    /// Raised whenever the stage's output changes for the same inputs (other numerics, a new
    /// sampler), so that cache entries of the earlier code are rebuilt, not reused.
    static var codeVersion: Int { get }
    /// The cache entry's name prefix (`<stage>-<key>.h5`).
    var stage: String { get }
    /// The key's `code` part is `<codeTag>-v<codeVersion>` (default: `stage`).
    var codeTag: String { get }
    /// The name in progress lines and in the result file's /timing group ("rm/bt").
    var label: String { get }
    /// The metrics stage and the proxy (or loss) of a unit of work of this run; nil for a
    /// stage shared by runs (kept in the shared cache even when units go to scratch).
    var unit: (stage: String, variant: String)? { get }
    /// Everything the output depends on besides the code.
    func inputs(_ run: RunContext) throws -> [String: String]
    func build(_ run: RunContext) throws -> Output
    func read(_ entry: H5Group, _ run: RunContext) throws -> Output
    func write(_ output: Output, to entry: H5Group) throws
    /// Adds the output to the result file's root (default: nothing).
    func record(_ output: Output, in root: H5Group) throws
}

extension RunStage {
    var codeTag: String { stage }
    var unit: (stage: String, variant: String)? { nil }
    func record(_ output: Output, in root: H5Group) throws {}

    /// The cache key: a hash of the inputs and the code version.
    func key(_ run: RunContext) throws -> String {
        StageCache.key(try inputs(run).merging(["code": "\(codeTag)-v\(Self.codeVersion)"]) { a, _ in a })
    }
}

/// A stage's output and its cache key (an input of the stages that use it).
struct StageOutput<Value> {
    let value: Value
    let key: String
}

/// What the stages of one run share: the config, world, caches, log and metrics stream,
/// and what the run has timed and will write.
final class RunContext {
    let config: ExperimentConfig
    let world: World
    let log: (String) -> Void
    let metrics: MetricsStream
    /// Stages shared by runs.
    let cache: StageCache
    /// Units of work of this run: `cache`, or a scratch folder without one.
    let units: StageCache
    private let scratch: String?
    private let stageCount: Int
    private var stageIndex = 0
    private(set) var timings: [(String, Double)] = []
    private var writers: [(H5Group) throws -> Void] = []

    init(config: ExperimentConfig, outputPath: String, cache: StageCache, log: @escaping (String) -> Void) throws {
        self.config = config
        self.log = log
        self.cache = cache
        world = try World(config: config.world)
        metrics = try MetricsStream(path: MetricsStream.path(forResult: outputPath))
        metrics.emit(stage: "run", fields: [("event", "start"), ("config_hash", config.hash), ("pid", "\(getpid())")])
        log("metrics stream: \(metrics.path ?? "none")")
        scratch = cache.directory == nil
            ? (NSTemporaryDirectory() as NSString).appendingPathComponent("overopt-units-\(getpid())-\(UUID().uuidString)") : nil
        if scratch != nil { removeScratchOfEndedProcesses() }
        units = scratch.map { StageCache(directory: $0) } ?? cache
        cache.removeAbandonedTemporaries()
        stageCount = plannedStageCount(config)
    }

    deinit { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }

    /// The stage's output, from its cache entry or built (then stored), timed; what it
    /// records is written into the result file at the end.
    func run<S: RunStage>(_ s: S) throws -> StageOutput<S.Output> {
        stageIndex += 1
        log("stage \(stageIndex)/\(stageCount): \(s.label)")
        let t0 = monotonicSeconds()
        let key = try s.key(self)
        var built = false
        let value = try (s.unit == nil ? cache : units).entry(stage: s.stage, key: key, log: log, read: { try s.read($0, self) }, build: {
            built = true
            return try s.build(self)
        }, write: { try s.write($0, to: $1) })
        timings.append((s.label, monotonicSeconds() - t0))
        if !built, let unit = s.unit { metrics.emit(stage: unit.stage, variant: unit.variant, fields: [("event", "cached")]) }
        writers.append { try s.record(value, in: $0) }
        return StageOutput(value: value, key: key)
    }

    /// Writes what every stage recorded, in the order they ran.
    func writeRecords(to root: H5Group) throws {
        for w in writers { try w(root) }
    }
}

/// The number of stages a run of `config` runs (for the "stage i/n" lines).
func plannedStageCount(_ config: ExperimentConfig) -> Int {
    let perProxy = config.stages.filter { $0 != "dpo" }.count
    return 2 + rmBasePresets(config).count + (config.stages.contains("bon") ? 1 : 0) + config.proxies.count * (1 + perProxy)
        + (config.stages.contains("dpo") ? 1 : 0)
}

/// Presets of the proxies' base models (`rm.base`) other than the policy's.
func rmBasePresets(_ config: ExperimentConfig) -> [String] {
    Set(config.proxies.compactMap { config.variants[$0]?.base }).subtracting([config.base.preset]).sorted()
}

// MARK: - Stages shared by runs

/// Pretraining a base model (the policy's, or a proxy's of another preset): one per world
/// and `[base]` settings, shared by every seed and variant.
struct BasePolicyStage: RunStage {
    static let codeVersion = 4
    let settings: BasePolicyConfig
    let label: String
    var stage: String { "base" }

    func inputs(_ run: RunContext) -> [String: String] { ["world": run.world.fingerprint, "base": StageCache.key(settings)] }

    func build(_ run: RunContext) throws -> BasePolicy {
        let b = pretrainBasePolicy(world: run.world, config: settings, log: run.log, metrics: run.metrics.observer(stage: "base"))
        guard b.evalNLL.isFinite else { throw ExperimentError("base \(settings.preset): pretraining diverged (held-out NLL \(b.evalNLL))") }
        return b
    }

    func read(_ entry: H5Group, _ run: RunContext) throws -> BasePolicy { try BasePolicy.read(from: entry) }
    func write(_ output: BasePolicy, to entry: H5Group) throws { try output.write(to: entry) }
}

/// The preference data of a seed, sampled from the base policy.
struct PreferenceDataStage: RunStage {
    static let codeVersion = 3
    let base: StageOutput<BasePolicy>
    var stage: String { "data" }
    var label: String { "data" }

    func inputs(_ run: RunContext) -> [String: String] {
        ["base": base.key, "data": StageCache.key(run.config.data), "seed": "\(run.config.seed)"]
    }

    func build(_ run: RunContext) throws -> PreferenceDataset {
        buildPreferenceData(world: run.world, basePolicy: base.value.model, config: run.config.data, seed: run.config.seed, log: run.log)
    }

    func read(_ entry: H5Group, _ run: RunContext) throws -> PreferenceDataset { try PreferenceDataset.read(from: entry, world: run.world) }
    func write(_ output: PreferenceDataset, to entry: H5Group) throws { try output.write(to: entry) }
}

/// The base policy's best-of-n samples of a seed, shared by every proxy.
struct BestOfNSamplesStage: RunStage {
    static let codeVersion = 3
    let base: StageOutput<BasePolicy>
    var stage: String { "bon-samples" }
    var codeTag: String { "bon" }
    var label: String { "bon-samples" }

    func inputs(_ run: RunContext) -> [String: String] {
        ["base": base.key, "bon": run.config.bon.samplesKey, "seed": "\(run.config.seed)"]
    }

    func build(_ run: RunContext) throws -> BestOfNSamples {
        var rng = RNG(seed: run.config.seed).split("bon")
        return try sampleBestOfN(world: run.world, policy: base.value.model, config: run.config.bon, rng: &rng, log: run.log)
    }

    func read(_ entry: H5Group, _ run: RunContext) throws -> BestOfNSamples { try BestOfNSamples.read(from: entry, world: run.world) }
    func write(_ output: BestOfNSamples, to entry: H5Group) throws { try output.write(to: entry) }
}

// MARK: - Units of work of a run

/// A proxy reward model: trained on the preference data from its base model, or loaded from
/// an earlier result file (`--load-proxy`). Its reward mean and std (`reward_mean`,
/// `reward_std` of /rm/<name>) are measured on best-of-n samples when that stage ran.
struct ProxyStage: RunStage {
    static let codeVersion = 2
    /// Base-policy samples the reward statistics are measured on: about this many of the
    /// best-of-n samples, spread over all its prompts.
    static let normalizationSampleCount = 1024
    let name: String
    let settings: RewardModelConfig
    let loadedFrom: String?
    let data: StageOutput<PreferenceDataset>
    /// The base model the proxy starts from (the policy's, or that of `rm.base`).
    let rmBase: StageOutput<BasePolicy>
    let samples: StageOutput<BestOfNSamples>?
    /// Whether /rm/<name> of the result file gets the proxy's weights (a loaded proxy always does).
    let saveCheckpoint: Bool
    var stage: String { "rm" }
    var codeTag: String { loadedFrom == nil ? "rm" : "rm-load" }
    var label: String { "rm/\(name)" }
    var unit: (stage: String, variant: String)? { ("rm", name) }

    func inputs(_ run: RunContext) throws -> [String: String] {
        if let file = loadedFrom { return ["file": absolutePath(file), "created": try resultCreated(file), "name": name] }
        var parts = ["data": data.key, "rm": StageCache.key(settings), "name": name, "seed": "\(run.config.seed)",
                     "normalization": samples?.key ?? "none"]
        if settings.base != nil { parts["rm_base"] = rmBase.key }
        return parts
    }

    /// The samples of `samples` picked by `normalizationIndices`, with their prompts.
    static func normalizationSamples(_ samples: BestOfNSamples, world: World) -> (prompts: [Prompt], responses: [[Int32]]) {
        let prompts = samples.samplePrompts(in: world)
        let picked = normalizationIndices(count: samples.responses.count)
        return (picked.map { prompts[$0] }, picked.map { samples.responses[$0] })
    }

    /// Indices of about `normalizationSampleCount` of `count` samples (prompt-major) at an
    /// even stride, so every prompt contributes; all of them when there are fewer than twice
    /// as many.
    static func normalizationIndices(count: Int) -> [Int] {
        Array(stride(from: 0, to: count, by: max(1, count / normalizationSampleCount)))
    }

    func build(_ run: RunContext) throws -> RewardModelResult {
        if let file = loadedFrom { return try loadProxyResult(from: file, variant: name, world: run.world, log: run.log) }
        let r = try trainRewardModel(config: settings, base: rmBase.value.model, world: run.world, data: data.value, seed: run.config.seed,
                                     normalizationSamples: samples.map { Self.normalizationSamples($0.value, world: run.world) },
                                     name: name, log: run.log, metrics: run.metrics.observer(stage: "rm", variant: name))
        guard r.idAccuracy.isFinite else { throw ExperimentError("rm \(name): training produced non-finite scores") }
        return r
    }

    func read(_ entry: H5Group, _ run: RunContext) throws -> RewardModelResult {
        try RewardModelResult.read(from: entry.group("rm"), proxy: ProxyRewardModel.load(from: entry.group("checkpoint")),
                                   config: loadedFrom == nil ? settings : try decodedRewardModelConfig(entry),
                                   oodSets: data.value.oodEval.map(\.name))
    }

    func write(_ output: RewardModelResult, to entry: H5Group) throws {
        try output.write(to: entry.createGroup("rm"))
        try output.proxy.save(to: entry.createGroup("checkpoint"))
        try entry.setAttribute("rm_config", String(decoding: try JSONEncoder().encode(output.config), as: UTF8.self))
    }

    func record(_ output: RewardModelResult, in root: H5Group) throws {
        let g = try root.createGroup("rm/\(name)")
        try output.write(to: g)
        if let file = loadedFrom { try g.setAttribute("loaded_from", absolutePath(file)) }
        if saveCheckpoint || loadedFrom != nil { try output.proxy.save(to: g.createGroup("checkpoint")) }
    }
}

/// Best-of-n against one proxy on the shared samples.
struct BestOfNCurvesStage: RunStage {
    static let codeVersion = 1
    let name: String
    let proxy: StageOutput<RewardModelResult>
    let samples: StageOutput<BestOfNSamples>
    var stage: String { "bon-curves" }
    var label: String { "bon/\(name)" }
    var unit: (stage: String, variant: String)? { ("bon", name) }

    func inputs(_ run: RunContext) -> [String: String] {
        ["rm": proxy.key, "samples": samples.key, "bon": StageCache.key(run.config.bon)]
    }

    func build(_ run: RunContext) throws -> BestOfNCurves {
        let c = try evaluateBestOfN(proxy: proxy.value.proxy, samples: samples.value, world: run.world, config: run.config.bon,
                                    seed: run.config.seed, log: run.log)
        for i in c.n.indices {
            run.metrics.emit(stage: "bon", variant: name, step: c.n[i], [("kl", c.kl[i]), ("proxy", c.proxy[i]), ("gold", c.gold[i]),
                             ("proxy_shifted", c.proxyShifted[i]), ("gold_shifted", c.goldShifted[i]), ("gold_oracle", c.goldOracle[i])])
        }
        return c
    }

    func read(_ entry: H5Group, _ run: RunContext) throws -> BestOfNCurves { try BestOfNCurves.read(from: entry.group("bon")) }
    func write(_ output: BestOfNCurves, to entry: H5Group) throws { try output.write(to: entry.createGroup("bon")) }
    func record(_ output: BestOfNCurves, in root: H5Group) throws { try output.write(to: root.createGroup("bon/\(name)")) }
}

/// The seed of a policy optimizer's evaluation: PPO's sampling stream for `proxyName`, so
/// that every optimizer sees the same held-out noise and their step-0 points coincide.
func evaluationRNG(seed: UInt64, proxyName: String) -> RNG {
    RNG(seed: RNG.stableHash("ppo|\(seed)|\(proxyName)")).split("ppo-eval")
}

/// A policy optimizer with a proxy as reward (PPO, GRPO or RLOO), its evaluation curves
/// and detector statistics under /<optimizer>/<proxy>.
struct PolicyOptimizerStage: RunStage {
    static let codeVersion = 3
    /// "ppo", "grpo" or "rloo".
    let optimizer: String
    let name: String
    let proxy: StageOutput<RewardModelResult>
    let base: StageOutput<BasePolicy>
    var stage: String { optimizer }
    var label: String { "\(optimizer)/\(name)" }
    var unit: (stage: String, variant: String)? { (optimizer, name) }

    func inputs(_ run: RunContext) -> [String: String] {
        let c = run.config
        let settings = optimizer == "grpo" ? StageCache.key(c.grpo) : optimizer == "rloo" ? StageCache.key(c.rloo) : StageCache.key(c.ppo)
        // The detectors (Detectors.swift) are part of the unit: their statistics are measured
        // on the evaluation's responses.
        return ["rm": proxy.key, "base": base.key, optimizer: settings, "seed": "\(c.seed)", "detectors": StageCache.key(c.detectors)]
    }

    func build(_ run: RunContext) throws -> PolicyCurves {
        let c = run.config, world = run.world, proxy = proxy.value.proxy
        let scorer: PolicyScorer = { proxy.score(world: world, prompts: $0, responses: $1) }
        let seed = RNG.stableHash("\(optimizer)|\(c.seed)|\(name)")
        let observe = (run.metrics.observer(stage: optimizer, variant: name), run.metrics.observer(stage: "\(optimizer)-eval", variant: name))
        let logLine = { (line: String) in run.log("\(optimizer) \(name): " + line) }
        let detectors = (probe: DetectorProbe(proxy: proxy, world: world), config: c.detectors)
        let curves: PolicyCurves
        switch optimizer {
        case "grpo":
            curves = try CriticFreeTrainer(config: c.grpo, world: world, basePolicy: base.value.model, scorer: scorer, seed: seed,
                                           evaluationRNG: evaluationRNG(seed: c.seed, proxyName: name), detectors: detectors)
                .run(log: logLine, metrics: observe.0, evaluations: observe.1)
        case "rloo":
            curves = try CriticFreeTrainer(config: c.rloo, world: world, basePolicy: base.value.model, scorer: scorer, seed: seed,
                                           evaluationRNG: evaluationRNG(seed: c.seed, proxyName: name), detectors: detectors)
                .run(log: logLine, metrics: observe.0, evaluations: observe.1)
        default:
            curves = try PPOTrainer(config: c.ppo, world: world, basePolicy: base.value.model, scorer: scorer, seed: seed, detectors: detectors)
                .run(log: logLine, metrics: observe.0, evaluations: observe.1)
        }
        if let bad = curves.nonFiniteStep {
            throw ExperimentError("\(optimizer) \(name): non-finite loss at step \(bad); try a lower \(optimizer).learning_rate")
        }
        return curves
    }

    func read(_ entry: H5Group, _ run: RunContext) throws -> PolicyCurves {
        let c = run.config, g = try entry.group(optimizer)
        switch optimizer {
        case "grpo": return try PolicyCurves.read(from: g, settings: c.grpo.attributes, omitted: ["value_loss"], detectors: c.detectors)
        case "rloo":
            return try PolicyCurves.read(from: g, settings: c.rloo.attributes, omitted: ["value_loss", "clip_fraction"], detectors: c.detectors)
        default: return try PPOCurves.read(from: g, config: c.ppo, detectors: c.detectors)
        }
    }

    func write(_ output: PolicyCurves, to entry: H5Group) throws { try output.write(to: entry.createGroup(optimizer)) }
    func record(_ output: PolicyCurves, in root: H5Group) throws { try output.write(to: root.createGroup("\(optimizer)/\(name)")) }
}

/// Direct alignment (DPO or IPO) on the preference data: no proxy in the loss; the first
/// proxy's score is reported as `proxy`, for comparison with the RL optimizers.
struct DirectAlignmentStage: RunStage {
    static let codeVersion = 2
    let data: StageOutput<PreferenceDataset>
    let base: StageOutput<BasePolicy>
    /// The first proxy, whose score is reported.
    let scorer: (name: String, proxy: StageOutput<RewardModelResult>)?
    /// "dpo" or "ipo" (`dpo.loss`).
    let loss: String
    var stage: String { "dpo" }
    var label: String { "dpo/\(loss)" }
    var unit: (stage: String, variant: String)? { ("dpo", loss) }

    func inputs(_ run: RunContext) -> [String: String] {
        ["data": data.key, "base": base.key, "dpo": StageCache.key(run.config.dpo), "seed": "\(run.config.seed)",
         "scorer": scorer?.proxy.key ?? "none"]
    }

    func build(_ run: RunContext) throws -> PolicyCurves {
        let c = run.config, world = run.world
        let score: PolicyScorer = scorer.map { s in { s.proxy.value.proxy.score(world: world, prompts: $0, responses: $1) } }
            ?? { prompts, _ in prompts.map { _ in Double.nan } }
        let curves = try DPOTrainer(config: c.dpo, world: world, basePolicy: base.value.model, pairs: data.value.train, scorer: score,
                                    seed: RNG.stableHash("dpo|\(c.seed)|\(loss)"),
                                    evaluationRNG: evaluationRNG(seed: c.seed, proxyName: scorer?.name ?? ""))
            .run(log: { run.log("dpo \(loss): " + $0) }, metrics: run.metrics.observer(stage: "dpo", variant: loss),
                 evaluations: run.metrics.observer(stage: "dpo-eval", variant: loss))
        if let bad = curves.nonFiniteStep { throw ExperimentError("dpo \(loss): non-finite loss at step \(bad); try a lower dpo.learning_rate") }
        return curves
    }

    func read(_ entry: H5Group, _ run: RunContext) throws -> PolicyCurves {
        try PolicyCurves.read(from: entry.group("dpo"), settings: run.config.dpo.attributes,
                              omitted: ["value_loss", "train_kl", "clip_fraction", "approx_kl", "kl_coef"])
    }

    func write(_ output: PolicyCurves, to entry: H5Group) throws { try output.write(to: entry.createGroup("dpo")) }
    func record(_ output: PolicyCurves, in root: H5Group) throws { try output.write(to: root.createGroup("dpo/\(loss)")) }
}
