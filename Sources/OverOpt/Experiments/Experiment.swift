// Experiment.swift — one run of the pipeline, top to bottom, into one HDF5 file.
//
//   world ──► base policy ──► preference data ──► proxy reward models ──┬─► best-of-n
//             (cached)         (cached per seed)   (one per variant)     └─► PPO
//
// A proxy with `rm.base` set is fine-tuned from a base model of that preset (pretrained
// with the same `[base]` settings, cached alike) instead of the policy's; best-of-n and
// PPO always sample the policy.
//
// Each stage is a call into its folder; this file only orders them, caches what is
// reusable (including each finished proxy, best-of-n curve and PPO run, so a killed run
// resumes), times them, streams metrics (MetricsStream.swift) and writes the result file
// atomically at the end (an interrupted run leaves no file under the final name). The
// schema is documented in README.md.
import Foundation
import OverOptEngine
import OverOptHDF5

/// A stage failed in a way the user must hear about (non-finite loss, bad output folder…).
public struct ExperimentError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The numbers of one proxy variant that end up in the run's summary table.
public struct VariantSummary: Sendable {
    public var name: String
    public var idAccuracy = Double.nan
    public var oodAccuracy = Double.nan
    public var bonKL = Double.nan, bonProxy = Double.nan, bonGold = Double.nan
    public var bonPeakGold = Double.nan, bonPeakKL = Double.nan
    /// Per policy optimizer ("ppo", "grpo", "rloo") that ran.
    public var optimizers: [String: OptimizerSummary] = [:]
    public var ppoKL: Double { optimizers["ppo"]?.kl ?? .nan }
    public var ppoProxy: Double { optimizers["ppo"]?.proxy ?? .nan }
    public var ppoGold: Double { optimizers["ppo"]?.gold ?? .nan }
    public var ppoPeakGold: Double { optimizers["ppo"]?.peakGold ?? .nan }
    public var ppoPeakKL: Double { optimizers["ppo"]?.peakKL ?? .nan }
}

/// A policy optimizer's curve in the summary table: KL, proxy and gold (changes from the
/// initial policy) at the last evaluation, the peak gold and its KL.
public struct OptimizerSummary: Sendable {
    public var kl = Double.nan, proxy = Double.nan, gold = Double.nan, peakGold = Double.nan, peakKL = Double.nan

    public init() {}

    /// From an optimizer's evaluation curves.
    public init(curves: PolicyCurves) {
        let g0 = curves.gold.first ?? 0, p0 = curves.proxy.first ?? 0
        kl = curves.kl.last ?? .nan
        proxy = (curves.proxy.last ?? .nan) - p0
        gold = (curves.gold.last ?? .nan) - g0
        if let i = curves.gold.indices.max(by: { curves.gold[$0] < curves.gold[$1] }) {
            peakGold = curves.gold[i] - g0; peakKL = curves.kl[i]
        }
    }
}

/// What a run produced.
public struct RunSummary: Sendable {
    public var path: String
    public var seconds: Double
    public var variants: [VariantSummary]
    public var baseGold = Double.nan
    /// Direct alignment's curve ("dpo/<loss>"), when it ran.
    public var direct: (name: String, summary: OptimizerSummary)?

    /// The summary table printed at the end of `overopt run`.
    public var table: String {
        func f(_ x: Double, _ w: Int = 6, _ p: Int = 2) -> String {
            x.isNaN ? String(repeating: " ", count: w - 1) + "–" : String(format: "%\(w).\(p)f", x)
        }
        var lines = ["variant          ID acc  OOD acc │ BoN  KL   proxy   gold  peak@KL      │ PPO  KL   proxy   gold  peak@KL"]
        for v in variants {
            let name = v.name.padding(toLength: 15, withPad: " ", startingAt: 0)
            lines.append("\(name) \(f(v.idAccuracy, 7, 3))  \(f(v.oodAccuracy, 7, 3)) │ \(f(v.bonKL, 6, 2)) \(f(v.bonProxy, 7)) \(f(v.bonGold)) \(f(v.bonPeakGold)) @\(f(v.bonPeakKL, 5, 2)) │ \(f(v.ppoKL, 6, 2)) \(f(v.ppoProxy, 7)) \(f(v.ppoGold)) \(f(v.ppoPeakGold)) @\(f(v.ppoPeakKL, 5, 2))")
        }
        for stage in policyOptimizerStages where stage != "ppo" && variants.contains(where: { $0.optimizers[stage] != nil }) {
            let title = stage.uppercased().padding(toLength: 4, withPad: " ", startingAt: 0)
            lines.append("                                   │ \(title) KL   proxy   gold  peak@KL")
            for v in variants {
                guard let o = v.optimizers[stage] else { continue }
                let name = v.name.padding(toLength: 15, withPad: " ", startingAt: 0)
                lines.append("\(name)                    │ \(f(o.kl, 6, 2)) \(f(o.proxy, 7)) \(f(o.gold)) \(f(o.peakGold)) @\(f(o.peakKL, 5, 2))")
            }
        }
        if let (name, o) = direct {
            lines.append("                                   │ DPO  KL   proxy   gold  peak@KL")
            lines.append("\(name.padding(toLength: 15, withPad: " ", startingAt: 0))                    │ \(f(o.kl, 6, 2)) \(f(o.proxy, 7)) \(f(o.gold)) \(f(o.peakGold)) @\(f(o.peakKL, 5, 2))")
        }
        let base = baseGold.isNaN ? "" : String(format: "; base policy gold %.2f", baseGold)   // known when best-of-n ran
        lines.append("BoN/PPO columns: value at the largest KL (nats), peak gold and the KL of the peak\(base)")
        lines.append(String(format: "result file: %@ (%.0f s)", path, seconds))
        return lines.joined(separator: "\n")
    }
}


/// Runs one experiment config into `outputPath`. `loadProxies` maps proxy names of the
/// config to earlier result files whose `/rm/<name>/checkpoint` replaces training.
public func runExperiment(_ config: ExperimentConfig, outputPath: String, cache: StageCache,
                          loadProxies: [String: String] = [:], log: @escaping (String) -> Void) throws -> RunSummary {
    let start = monotonicSeconds()
    try checkWritableFolder(of: outputPath)
    for name in loadProxies.keys.sorted() where !config.proxies.contains(name) {
        throw ExperimentError("--load-proxy \(name)=…: '\(name)' is not among this run's proxies (\(config.proxies.joined(separator: ", ")))")
    }
    let world = try World(config: config.world)
    let metrics = try MetricsStream(path: MetricsStream.path(forResult: outputPath))
    metrics.emit(stage: "run", fields: [("event", "start"), ("config_hash", config.hash), ("pid", "\(getpid())")])
    log("metrics stream: \(metrics.path ?? "none")")
    // Finished units of work (each proxy, its best-of-n curves, its PPO run) are cache
    // entries, so a killed run resumes at the first unfinished one; without a cache they go
    // to a scratch folder removed at the end.
    let scratch = cache.directory == nil
        ? (NSTemporaryDirectory() as NSString).appendingPathComponent("overopt-units-\(getpid())-\(UUID().uuidString)") : nil
    if scratch != nil { removeScratchOfEndedProcesses() }
    defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
    let units = scratch.map { StageCache(directory: $0) } ?? cache
    cache.removeAbandonedTemporaries()

    var timings: [(String, Double)] = []
    // Base models of other sizes than the policy's, one per `rm.base` preset the proxies name.
    let rmPresets = Set(config.proxies.compactMap { config.variants[$0]?.base }).subtracting([config.base.preset]).sorted()
    let perProxy = config.stages.filter { $0 != "dpo" }.count
    let stageCount = 2 + rmPresets.count + (config.stages.contains("bon") ? 1 : 0) + config.proxies.count * (1 + perProxy)
        + (config.stages.contains("dpo") ? 1 : 0)
    var stageIndex = 0
    func timed<T>(_ stage: String, _ body: () throws -> T) rethrows -> T {
        stageIndex += 1
        log("stage \(stageIndex)/\(stageCount): \(stage)")
        let t0 = monotonicSeconds()
        let v = try body()
        timings.append((stage, monotonicSeconds() - t0))
        return v
    }

    // 1. Base policy (cached across seeds and variants), and the base models of proxies of
    // other sizes (`rm.base`): the same `[base]` settings at their own preset, cached alike.
    func pretrained(_ bc: BasePolicyConfig) throws -> (policy: BasePolicy, key: String) {
        let key = StageCache.key(["world": world.fingerprint, "base": StageCache.key(bc), "code": "base-v3"])
        let b = try cache.entry(stage: "base", key: key, log: log, read: { try BasePolicy.read(from: $0) }, build: {
            let b = pretrainBasePolicy(world: world, config: bc, log: log, metrics: metrics.observer(stage: "base"))
            guard b.evalNLL.isFinite else { throw ExperimentError("base \(bc.preset): pretraining diverged (held-out NLL \(b.evalNLL))") }
            return b
        }, write: { try $0.write(to: $1) })
        return (b, key)
    }
    let (base, baseKey) = try timed("base") { try pretrained(config.base) }
    var rmBases = [config.base.preset: (model: base.model, key: baseKey)]
    for preset in rmPresets {
        var bc = config.base
        bc.preset = preset
        let b = try timed("base/\(preset)") { try pretrained(bc) }
        rmBases[preset] = (b.policy.model, b.key)
    }

    // 2. Preference data (cached per seed).
    // The "code" parts change when a stage's output changes for the same inputs (v2 of data
    // and bon-samples: the grouped KV-cache decoder draws with vectorized exponentials; v3:
    // its matrix products run on packed weights, which rounds differently; v2 of base:
    // pretraining steps run in two halves on replicas; v3: the training forward's products
    // run on packed weights).
    let dataKey = StageCache.key(["base": baseKey, "data": StageCache.key(config.data), "seed": "\(config.seed)", "code": "data-v3"])
    let data: PreferenceDataset = try timed("data") {
        try cache.entry(stage: "data", key: dataKey, log: log, read: { try PreferenceDataset.read(from: $0, world: world) },
                        build: { buildPreferenceData(world: world, basePolicy: base.model, config: config.data, seed: config.seed, log: log) },
                        write: { try $0.write(to: $1) })
    }

    // 3. Best-of-n samples of the base policy (shared by every proxy; cached per seed).
    var bonSamples: BestOfNSamples?
    var samplesKey = "none"
    if config.stages.contains("bon") {
        let key = StageCache.key(["base": baseKey, "bon": config.bon.samplesKey, "seed": "\(config.seed)", "code": "bon-v3"])
        samplesKey = key
        bonSamples = try timed("bon-samples") {
            try cache.entry(stage: "bon-samples", key: key, log: log, read: { try BestOfNSamples.read(from: $0, world: world) }, build: {
                var rng = RNG(seed: config.seed).split("bon")
                return try sampleBestOfN(world: world, policy: base.model, config: config.bon, rng: &rng, log: log)
            }, write: { try $0.write(to: $1) })
        }
    }
    let baseGold = bonSamples.map { $0.gold.reduce(0, +) / Double(max(1, $0.gold.count)) } ?? .nan
    // Base-policy samples on which each proxy's reward mean and std are measured: about 1024
    // of the best-of-n samples, spread over all its prompts (no extra sampling; absent
    // without the best-of-n stage).
    let normalizationSamples = bonSamples.map { s -> (prompts: [Prompt], responses: [[Int32]]) in
        let prompts = s.samplePrompts(in: world)
        let picked = Array(stride(from: 0, to: s.responses.count, by: max(1, s.responses.count / 1024)))
        return (picked.map { prompts[$0] }, picked.map { s.responses[$0] })
    }

    // 4. Proxies, then best-of-n and PPO against each: each one unit of work kept in its
    // own cache entry as soon as it is done (layouts: `rm` and `checkpoint`; `bon`; `ppo`).
    var writers: [(H5Group) throws -> Void] = []
    var firstProxy: (proxy: ProxyRewardModel, key: String, name: String)?
    var summaries: [VariantSummary] = []
    let oodSets = data.oodEval.map(\.name)
    for name in config.proxies {
        guard let rmConfig = config.variants[name] else { throw ExperimentError("no settings resolved for proxy '\(name)'") }
        var summary = VariantSummary(name: name)
        let loadedFrom = loadProxies[name]
        let rmKey: String
        if let file = loadedFrom {
            rmKey = StageCache.key(["file": absolutePath(file), "created": try resultCreated(file), "name": name, "code": "rm-load-v1"])
        } else {
            var parts = ["data": dataKey, "rm": StageCache.key(rmConfig), "name": name, "seed": "\(config.seed)",
                         "normalization": samplesKey, "code": "rm-v1"]
            if let preset = rmConfig.base { parts["rm_base"] = rmBases[preset]!.key }
            rmKey = StageCache.key(parts)
        }
        var built = false
        let rm = try timed("rm/\(name)") {
            try units.entry(stage: "rm", key: rmKey, log: log, read: { g in
                try RewardModelResult.read(from: g.group("rm"), proxy: ProxyRewardModel.load(from: g.group("checkpoint")),
                                           config: loadedFrom == nil ? rmConfig : try decodedRewardModelConfig(g),
                                           oodSets: oodSets)
            }, build: {
                built = true
                if let file = loadedFrom { return try loadProxyResult(from: file, variant: name, world: world, log: log) }
                let r = try trainRewardModel(config: rmConfig, base: rmBases[rmConfig.base ?? config.base.preset]!.model, world: world, data: data, seed: config.seed,
                                             normalizationSamples: normalizationSamples, name: name, log: log,
                                             metrics: metrics.observer(stage: "rm", variant: name))
                guard r.idAccuracy.isFinite else { throw ExperimentError("rm \(name): training produced non-finite scores") }
                return r
            }, write: { r, g in
                try r.write(to: g.createGroup("rm"))
                try r.proxy.save(to: g.createGroup("checkpoint"))
                try g.setAttribute("rm_config", String(decoding: try JSONEncoder().encode(r.config), as: UTF8.self))
            })
        }
        if !built { metrics.emit(stage: "rm", variant: name, fields: [("event", "cached")]) }
        if firstProxy == nil { firstProxy = (rm.proxy, rmKey, name) }
        summary.idAccuracy = rm.idAccuracy
        summary.oodAccuracy = rm.oodAccuracyMean
        let saveCheckpoint = config.saveCheckpoints || loadedFrom != nil
        writers.append { root in
            let g = try root.createGroup("rm/\(name)")
            try rm.write(to: g)
            if let file = loadedFrom { try g.setAttribute("loaded_from", absolutePath(file)) }
            if saveCheckpoint { try rm.proxy.save(to: g.createGroup("checkpoint")) }
        }

        if let samples = bonSamples {
            let key = StageCache.key(["rm": rmKey, "samples": samplesKey, "bon": StageCache.key(config.bon), "code": "bon-curves-v1"])
            built = false
            let curves = try timed("bon/\(name)") {
                try units.entry(stage: "bon-curves", key: key, log: log, read: { try BestOfNCurves.read(from: $0.group("bon")) }, build: {
                    built = true
                    let c = try evaluateBestOfN(proxy: rm.proxy, samples: samples, world: world, config: config.bon, seed: config.seed, log: log)
                    for i in c.n.indices {
                        metrics.emit(stage: "bon", variant: name, step: c.n[i], [("kl", c.kl[i]), ("proxy", c.proxy[i]), ("gold", c.gold[i]),
                                     ("proxy_shifted", c.proxyShifted[i]), ("gold_shifted", c.goldShifted[i]), ("gold_oracle", c.goldOracle[i])])
                    }
                    return c
                }, write: { try $0.write(to: $1.createGroup("bon")) })
            }
            if !built { metrics.emit(stage: "bon", variant: name, fields: [("event", "cached")]) }
            summary.bonKL = curves.kl.last ?? .nan
            summary.bonProxy = curves.proxyShifted.last ?? .nan
            summary.bonGold = curves.goldShifted.last ?? .nan
            if let i = curves.goldShifted.indices.max(by: { curves.goldShifted[$0] < curves.goldShifted[$1] }) {
                summary.bonPeakGold = curves.goldShifted[i]; summary.bonPeakKL = curves.kl[i]
            }
            writers.append { try curves.write(to: $0.createGroup("bon/\(name)")) }
        }

        // Policy optimizers (PPO, GRPO, RLOO): each one unit of work per proxy, the same
        // evaluation datasets under /<optimizer>/<variant>.
        for stage in proxyOptimizerStages where config.stages.contains(stage) {
            let settingsKey: String
            let readSettings: (H5Group) throws -> PolicyCurves
            switch stage {
            case "grpo":
                settingsKey = StageCache.key(config.grpo)
                readSettings = { try PolicyCurves.read(from: $0, settings: config.grpo.attributes, omitted: ["value_loss"],
                                                       detectors: config.detectors) }
            case "rloo":
                settingsKey = StageCache.key(config.rloo)
                readSettings = { try PolicyCurves.read(from: $0, settings: config.rloo.attributes, omitted: ["value_loss", "clip_fraction"],
                                                       detectors: config.detectors) }
            default:
                settingsKey = StageCache.key(config.ppo)
                readSettings = { try PPOCurves.read(from: $0, config: config.ppo, detectors: config.detectors) }
            }
            // The detectors (Detectors.swift) are part of the unit: their statistics are
            // measured on the evaluation's responses.
            let key = StageCache.key(["rm": rmKey, "base": baseKey, stage: settingsKey, "seed": "\(config.seed)",
                                      "detectors": StageCache.key(config.detectors), "code": "\(stage)-v1"])
            built = false
            let curves = try timed("\(stage)/\(name)") {
                try units.entry(stage: stage, key: key, log: log, read: { try readSettings($0.group(stage)) }, build: {
                    built = true
                    let proxy = rm.proxy
                    let scorer: PolicyScorer = { proxy.score(world: world, prompts: $0, responses: $1) }
                    let seed = RNG.stableHash("\(stage)|\(config.seed)|\(name)")
                    // Every optimizer is evaluated with PPO's sampling stream for this proxy (the
                    // same held-out noise, so their step-0 points coincide).
                    let ppoRNG = RNG(seed: RNG.stableHash("ppo|\(config.seed)|\(name)"))
                    let evaluationRNG = ppoRNG.split("ppo-eval")
                    let observe = (metrics.observer(stage: stage, variant: name), metrics.observer(stage: "\(stage)-eval", variant: name))
                    let logLine = { (line: String) in log("\(stage) \(name): " + line) }
                    let detectors = (probe: DetectorProbe(proxy: proxy, world: world), config: config.detectors)
                    let c: PolicyCurves
                    switch stage {
                    case "grpo":
                        c = try CriticFreeTrainer(config: config.grpo, world: world, basePolicy: base.model, scorer: scorer, seed: seed,
                                                  evaluationRNG: evaluationRNG, detectors: detectors)
                            .run(log: logLine, metrics: observe.0, evaluations: observe.1)
                    case "rloo":
                        c = try CriticFreeTrainer(config: config.rloo, world: world, basePolicy: base.model, scorer: scorer, seed: seed,
                                                  evaluationRNG: evaluationRNG, detectors: detectors)
                            .run(log: logLine, metrics: observe.0, evaluations: observe.1)
                    default:
                        c = try PPOTrainer(config: config.ppo, world: world, basePolicy: base.model, scorer: scorer, seed: seed,
                                           detectors: detectors)
                            .run(log: logLine, metrics: observe.0, evaluations: observe.1)
                    }
                    if let bad = c.nonFiniteStep {
                        throw ExperimentError("\(stage) \(name): non-finite loss at step \(bad); try a lower \(stage).learning_rate")
                    }
                    return c
                }, write: { try $0.write(to: $1.createGroup(stage)) })
            }
            if !built { metrics.emit(stage: stage, variant: name, fields: [("event", "cached")]) }
            summary.optimizers[stage] = OptimizerSummary(curves: curves)
            writers.append { try curves.write(to: $0.createGroup("\(stage)/\(name)")) }
        }
        summaries.append(summary)
    }

    // 5. Direct alignment on the preference data (no proxy; the first proxy's score is
    // reported as `proxy` for comparison with the RL optimizers).
    var directSummary: (String, OptimizerSummary)?
    if config.stages.contains("dpo") {
        let loss = config.dpo.loss.rawValue
        let proxy = firstProxy
        let key = StageCache.key(["data": dataKey, "base": baseKey, "dpo": StageCache.key(config.dpo), "seed": "\(config.seed)",
                                  "scorer": proxy?.key ?? "none", "code": "dpo-v1"])
        var built = false
        let curves = try timed("dpo/\(loss)") {
            try units.entry(stage: "dpo", key: key, log: log, read: {
                try PolicyCurves.read(from: $0.group("dpo"), settings: config.dpo.attributes,
                                      omitted: ["value_loss", "train_kl", "clip_fraction", "approx_kl", "kl_coef"])
            }, build: {
                built = true
                let scorer: PolicyScorer = proxy.map { p in { p.proxy.score(world: world, prompts: $0, responses: $1) } }
                    ?? { prompts, _ in prompts.map { _ in Double.nan } }
                // PPO's evaluation stream against the first proxy (the same held-out noise).
                let ppoRNG = RNG(seed: RNG.stableHash("ppo|\(config.seed)|\(proxy?.name ?? "")"))
                let c = try DPOTrainer(config: config.dpo, world: world, basePolicy: base.model, pairs: data.train, scorer: scorer,
                                       seed: RNG.stableHash("dpo|\(config.seed)|\(loss)"), evaluationRNG: ppoRNG.split("ppo-eval"))
                    .run(log: { log("dpo \(loss): " + $0) }, metrics: metrics.observer(stage: "dpo", variant: loss),
                         evaluations: metrics.observer(stage: "dpo-eval", variant: loss))
                if let bad = c.nonFiniteStep { throw ExperimentError("dpo \(loss): non-finite loss at step \(bad); try a lower dpo.learning_rate") }
                return c
            }, write: { try $0.write(to: $1.createGroup("dpo")) })
        }
        if !built { metrics.emit(stage: "dpo", variant: loss, fields: [("event", "cached")]) }
        directSummary = ("dpo/\(loss)", OptimizerSummary(curves: curves))
        writers.append { try curves.write(to: $0.createGroup("dpo/\(loss)")) }
    }

    // 5. The result file, written atomically.
    let seconds = monotonicSeconds() - start
    try writeAtomically(to: outputPath) { file in
        let root = file.root
        try root.setAttribute("schema_version", resultSchemaVersion)
        try root.setAttribute("overopt_version", overOptVersion)
        try root.setAttribute("name", config.name)
        try root.setAttribute("seed", Int64(config.seed))
        try root.setAttribute("config", config.json())
        try root.setAttribute("config_hash", config.hash)
        try root.setAttribute("world_fingerprint", world.fingerprint)
        try root.setAttribute("threads", Int64(engineThreadCount()))
        let compute = ComputeEnvironment.current
        try root.setAttribute("cpu", compute.cpu)
        try root.setAttribute("blas_core", compute.blasCore)
        try root.setAttribute("kernels", compute.kernels)
        try root.setAttribute("proxies", config.proxies)
        if !loadProxies.isEmpty {
            try root.setAttribute("loaded_proxies", loadProxies.keys.sorted().map { "\($0)=\(loadProxies[$0]!)" })
        }
        try root.setAttribute("created", ISO8601DateFormatter().string(from: Date()))
        try root.setAttribute("seconds", seconds)
        let timing = try root.createGroup("timing")
        for (stage, s) in timings { try timing.setAttribute(stage.replacingOccurrences(of: "/", with: "_"), s) }
        let b = try root.createGroup("base")
        try b.write("curve_step", base.curveStep)
        try b.write("curve_loss", base.curveLoss)
        try b.setAttribute("eval_nll", base.evalNLL)
        try b.setAttribute("parameters", Int64(base.model.parameterCount))
        try b.setAttribute("preset", config.base.preset)
        try b.setAttribute("gold_mean", baseGold)
        try writeDataSummary(data, to: root.createGroup("data"))
        for w in writers { try w(root) }
        try annotateRunFile(root)
        try root.setAttribute("complete", true)
    }
    metrics.emit(stage: "run", [("seconds", seconds)], fields: [("event", "end"), ("result", outputPath)])
    return RunSummary(path: outputPath, seconds: seconds, variants: summaries, baseGold: baseGold, direct: directSummary)
}

/// Removes the scratch folders (`overopt-units-<pid>-…` in the temporary folder) of
/// uncached runs whose process no longer exists (killed ones).
func removeScratchOfEndedProcesses() {
    let tmp = NSTemporaryDirectory()
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: tmp) else { return }
    for name in names where name.hasPrefix("overopt-units-") {
        guard let pid = Int32(name.dropFirst("overopt-units-".count).prefix { $0.isNumber }) else { continue }
        if kill(pid, 0) != 0 && errno == ESRCH { try? FileManager.default.removeItem(atPath: (tmp as NSString).appendingPathComponent(name)) }
    }
}

/// The proxy `variant` of an earlier result file (`/rm/<variant>` with its checkpoint,
/// written with `save_checkpoints = true`), as `overopt run --load-proxy` uses it.
func loadProxyResult(from path: String, variant: String, world: World, log: (String) -> Void) throws -> RewardModelResult {
    let f: H5File
    do { f = try H5File.open(path) } catch {
        throw ExperimentError("--load-proxy \(variant)=\(path): cannot open the file (\(error))")
    }
    defer { f.close() }
    guard f.root.contains("rm/\(variant)/checkpoint") else {
        throw ExperimentError("--load-proxy \(variant)=\(path): the file has no /rm/\(variant)/checkpoint (write it with save_checkpoints = true)")
    }
    if let fp = try? f.root.stringAttribute("world_fingerprint"), fp != world.fingerprint {
        throw ExperimentError("--load-proxy \(variant)=\(path): the proxy was trained in another world (fingerprint \(fp), this run's \(world.fingerprint))")
    }
    do {
        let g = try f.root.group("rm/\(variant)")
        let oodSets = g.contains("ood_accuracy") ? try g.group("ood_accuracy").children() : []
        let r = try RewardModelResult.read(from: g, proxy: ProxyRewardModel.load(from: g.group("checkpoint")),
                                           config: loadedProxyConfig(f.root, name: variant, path: path), oodSets: oodSets)
        log("rm \(variant): loaded from \(path)")
        return r
    } catch let e as ExperimentError {
        throw e
    } catch {
        throw ExperimentError("--load-proxy \(variant)=\(path): cannot read /rm/\(variant) (\(error))")
    }
}

/// The settings a loaded proxy was trained with: `variants.<name>` of the resolved config
/// in the `config` attribute of a result file's root `g`. Only `variants` is read, so that
/// files written before a section of the config existed (e.g. `[detectors]`) still load.
func loadedProxyConfig(_ g: H5Group, name: String, path: String) throws -> RewardModelConfig {
    struct Variants: Decodable { var variants: [String: RewardModelConfig] }
    guard let text = try? g.stringAttribute("config"),
          let config = try? JSONDecoder().decode(Variants.self, from: Data(text.utf8)), let rm = config.variants[name] else {
        throw ExperimentError("--load-proxy \(name)=\(path): the file's 'config' attribute names no settings for the proxy '\(name)'")
    }
    return rm
}

/// The proxy settings a cache entry of the `rm` stage stores as JSON (`@rm_config`).
func decodedRewardModelConfig(_ g: H5Group) throws -> RewardModelConfig {
    try JSONDecoder().decode(RewardModelConfig.self, from: Data(try g.stringAttribute("rm_config").utf8))
}

/// The `created` attribute of a result file (part of a loaded proxy's cache key, so a
/// rewritten file is not mistaken for the old one).
func resultCreated(_ path: String) throws -> String {
    guard let f = try? H5File.open(path) else { throw ExperimentError("--load-proxy: cannot open \(path) as an HDF5 file") }
    defer { f.close() }
    return (try? f.root.stringAttribute("created")) ?? ""
}

/// Fails early, before any work, when results could not be written to `path`'s folder.
public func checkWritableFolder(of path: String) throws {
    let dir = (path as NSString).deletingLastPathComponent
    let folder = dir.isEmpty ? "." : dir
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
        throw ExperimentError("output folder \(folder) does not exist")
    }
    guard FileManager.default.isWritableFile(atPath: folder) else {
        throw ExperimentError("output folder \(folder) is not writable")
    }
}

/// Sizes, noise and a few example pairs of the preference data.
func writeDataSummary(_ d: PreferenceDataset, to g: H5Group) throws {
    try g.setAttribute("train_pairs", Int64(d.train.count))
    try g.setAttribute("flipped_pairs", Int64(d.train.filter(\.flipped).count))
    try g.setAttribute("id_pairs", Int64(d.idEval.count))
    try g.setAttribute("ood_sets", d.oodEval.map(\.name))
    try g.write("train_gold_margin", d.train.map(\.goldMargin), compress: true)
}
