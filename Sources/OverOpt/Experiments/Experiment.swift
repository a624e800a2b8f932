// Experiment.swift — one run of the pipeline, top to bottom, into one HDF5 file.
//
//   world ──► base policy ──► preference data ──► proxy reward models ──┬─► best-of-n
//             (cached)         (cached per seed)   (one per variant)     └─► PPO
//
// Each stage is a call into its folder; this file only orders them, caches what is
// reusable, times them and writes the result file atomically at the end (an interrupted
// run leaves no file under the final name). The schema is documented in README.md.
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
    public var ppoKL = Double.nan, ppoProxy = Double.nan, ppoGold = Double.nan
    public var ppoPeakGold = Double.nan, ppoPeakKL = Double.nan
}

/// What a run produced.
public struct RunSummary: Sendable {
    public var path: String
    public var seconds: Double
    public var variants: [VariantSummary]
    public var baseGold = Double.nan

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
        let base = baseGold.isNaN ? "" : String(format: "; base policy gold %.2f", baseGold)   // known when best-of-n ran
        lines.append("BoN/PPO columns: value at the largest KL (nats), peak gold and the KL of the peak\(base)")
        lines.append(String(format: "result file: %@ (%.0f s)", path, seconds))
        return lines.joined(separator: "\n")
    }
}


/// Runs one experiment config into `outputPath`.
public func runExperiment(_ config: ExperimentConfig, outputPath: String, cache: StageCache,
                          log: @escaping (String) -> Void) throws -> RunSummary {
    let start = monotonicSeconds()
    try checkWritableFolder(of: outputPath)
    let world = try World(config: config.world)
    var timings: [(String, Double)] = []
    func timed<T>(_ stage: String, _ body: () throws -> T) rethrows -> T {
        let t0 = monotonicSeconds()
        let v = try body()
        timings.append((stage, monotonicSeconds() - t0))
        return v
    }

    // 1. Base policy (cached across seeds and variants).
    let baseKey = StageCache.key(["world": world.fingerprint, "base": StageCache.key(config.base), "code": "base-v3"])
    let base: BasePolicy = try timed("base") {
        if let b = cache.load(stage: "base", key: baseKey, log: log, { try BasePolicy.read(from: $0) }) { return b }
        let b = pretrainBasePolicy(world: world, config: config.base, log: log)
        guard b.evalNLL.isFinite else { throw ExperimentError("base policy: pretraining diverged (held-out NLL \(b.evalNLL))") }
        try cache.store(stage: "base", key: baseKey, log: log) { try b.write(to: $0) }
        return b
    }

    // 2. Preference data (cached per seed).
    // The "code" parts change when a stage's output changes for the same inputs (v2 of data
    // and bon-samples: the grouped KV-cache decoder draws with vectorized exponentials; v3:
    // its matrix products run on packed weights, which rounds differently; v2 of base:
    // pretraining steps run in two halves on replicas; v3: the training forward's products
    // run on packed weights).
    let dataKey = StageCache.key(["base": baseKey, "data": StageCache.key(config.data), "seed": "\(config.seed)", "code": "data-v3"])
    let data: PreferenceDataset = try timed("data") {
        if let d = cache.load(stage: "data", key: dataKey, log: log, { try PreferenceDataset.read(from: $0, world: world) }) { return d }
        let d = buildPreferenceData(world: world, basePolicy: base.model, config: config.data, seed: config.seed, log: log)
        try cache.store(stage: "data", key: dataKey, log: log) { try d.write(to: $0) }
        return d
    }

    // 3. Best-of-n samples of the base policy (shared by every proxy; cached per seed).
    var bonSamples: BestOfNSamples?
    if config.stages.contains("bon") {
        let key = StageCache.key(["base": baseKey, "bon": config.bon.samplesKey, "seed": "\(config.seed)", "code": "bon-v3"])
        bonSamples = try timed("bon-samples") {
            if let s = cache.load(stage: "bon-samples", key: key, log: log, { try BestOfNSamples.read(from: $0) }) { return s }
            var rng = RNG(seed: config.seed).split("bon")
            let s = try sampleBestOfN(world: world, policy: base.model, config: config.bon, rng: &rng, log: log)
            try cache.store(stage: "bon-samples", key: key, log: log) { try s.write(to: $0) }
            return s
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

    // 4. Proxies, then best-of-n and PPO against each.
    var writers: [(H5Group) throws -> Void] = []
    var summaries: [VariantSummary] = []
    for name in config.proxies {
        guard let rmConfig = config.variants[name] else { throw ExperimentError("no settings resolved for proxy '\(name)'") }
        var summary = VariantSummary(name: name)
        let rm = try timed("rm/\(name)") {
            try trainRewardModel(config: rmConfig, base: base.model, world: world, data: data, seed: config.seed,
                                 normalizationSamples: normalizationSamples, name: name, log: log)
        }
        guard rm.idAccuracy.isFinite else { throw ExperimentError("rm \(name): training produced non-finite scores") }
        summary.idAccuracy = rm.idAccuracy
        summary.oodAccuracy = rm.oodAccuracyMean
        let saveCheckpoint = config.saveCheckpoints
        writers.append { root in
            let g = try root.createGroup("rm/\(name)")
            try rm.write(to: g)
            if saveCheckpoint { try rm.proxy.save(to: g.createGroup("checkpoint")) }
        }

        if let samples = bonSamples {
            let curves = try timed("bon/\(name)") {
                try evaluateBestOfN(proxy: rm.proxy, samples: samples, world: world, config: config.bon, log: log)
            }
            summary.bonKL = curves.kl.last ?? .nan
            summary.bonProxy = curves.proxyShifted.last ?? .nan
            summary.bonGold = curves.goldShifted.last ?? .nan
            if let i = curves.goldShifted.indices.max(by: { curves.goldShifted[$0] < curves.goldShifted[$1] }) {
                summary.bonPeakGold = curves.goldShifted[i]; summary.bonPeakKL = curves.kl[i]
            }
            writers.append { try curves.write(to: $0.createGroup("bon/\(name)")) }
        }

        if config.stages.contains("ppo") {
            let curves = try timed("ppo/\(name)") { () throws -> PPOCurves in
                let proxy = rm.proxy
                let trainer = try PPOTrainer(config: config.ppo, world: world, basePolicy: base.model,
                                             scorer: { proxy.score(world: world, prompts: $0, responses: $1) },
                                             seed: RNG.stableHash("ppo|\(config.seed)|\(name)"))
                let c = trainer.run { log("ppo \(name): " + $0) }
                return c
            }
            if let bad = curves.nonFiniteStep {
                throw ExperimentError("ppo \(name): non-finite loss at step \(bad); try a lower ppo.learning_rate")
            }
            let g0 = curves.gold.first ?? 0, p0 = curves.proxy.first ?? 0
            summary.ppoKL = curves.kl.last ?? .nan
            summary.ppoProxy = (curves.proxy.last ?? .nan) - p0
            summary.ppoGold = (curves.gold.last ?? .nan) - g0
            if let i = curves.gold.indices.max(by: { curves.gold[$0] < curves.gold[$1] }) {
                summary.ppoPeakGold = curves.gold[i] - g0; summary.ppoPeakKL = curves.kl[i]
            }
            writers.append { try curves.write(to: $0.createGroup("ppo/\(name)")) }
        }
        summaries.append(summary)
    }

    // 5. The result file, written atomically.
    let seconds = monotonicSeconds() - start
    try writeAtomically(to: outputPath) { file in
        let root = file.root
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
        try root.setAttribute("proxies", config.proxies.joined(separator: ","))
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
        try root.setAttribute("complete", Int64(1))
    }
    return RunSummary(path: outputPath, seconds: seconds, variants: summaries, baseGold: baseGold)
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
    try g.setAttribute("ood_sets", d.oodEval.map(\.name).joined(separator: ","))
    try g.write("train_gold_margin", d.train.map(\.goldMargin), compress: true)
}
