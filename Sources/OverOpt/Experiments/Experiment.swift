// Experiment.swift — one run of the pipeline, top to bottom, into one HDF5 file.
//
//   world ──► base policy ──► preference data ──► proxy reward models ──┬─► best-of-n
//             (cached)         (cached per seed)   (one per variant)     └─► PPO
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
    let stageCount = 2 + (config.stages.contains("bon") ? 1 : 0) + config.proxies.count * (1 + config.stages.count)
    var stageIndex = 0
    func timed<T>(_ stage: String, _ body: () throws -> T) rethrows -> T {
        stageIndex += 1
        log("stage \(stageIndex)/\(stageCount): \(stage)")
        let t0 = monotonicSeconds()
        let v = try body()
        timings.append((stage, monotonicSeconds() - t0))
        return v
    }

    // 1. Base policy (cached across seeds and variants).
    let baseKey = StageCache.key(["world": world.fingerprint, "base": StageCache.key(config.base), "code": "base-v3"])
    let base: BasePolicy = try timed("base") {
        try cache.entry(stage: "base", key: baseKey, log: log, read: { try BasePolicy.read(from: $0) }, build: {
            let b = pretrainBasePolicy(world: world, config: config.base, log: log, metrics: metrics.observer(stage: "base"))
            guard b.evalNLL.isFinite else { throw ExperimentError("base policy: pretraining diverged (held-out NLL \(b.evalNLL))") }
            return b
        }, write: { try $0.write(to: $1) })
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
            try cache.entry(stage: "bon-samples", key: key, log: log, read: { try BestOfNSamples.read(from: $0) }, build: {
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

    // 4. Proxies, then best-of-n and PPO against each: each one unit of work whose result
    // file groups are kept in its own cache entry (layout: `rm` + `checkpoint`, `bon`, `ppo`)
    // and copied into the result file at the end.
    var writers: [(H5Group) throws -> Void] = []
    var summaries: [VariantSummary] = []
    func unitPath(_ stage: String, _ key: String) throws -> String {
        guard let p = units.path(stage: stage, key: key), FileManager.default.fileExists(atPath: p) else {
            throw ExperimentError("\(stage): the finished unit's cache entry \(units.path(stage: stage, key: key) ?? key) disappeared before the result file was written")
        }
        return p
    }
    for name in config.proxies {
        guard let rmConfig = config.variants[name] else { throw ExperimentError("no settings resolved for proxy '\(name)'") }
        var summary = VariantSummary(name: name)
        let rmKey: String
        if let file = loadProxies[name] {
            rmKey = StageCache.key(["file": absolutePath(file), "created": try resultCreated(file), "name": name, "code": "rm-load-v1"])
        } else {
            rmKey = StageCache.key(["data": dataKey, "rm": StageCache.key(rmConfig), "name": name, "seed": "\(config.seed)",
                                    "normalization": samplesKey, "code": "rm-v1"])
        }
        let unit = try timed("rm/\(name)") {
            try units.entry(stage: "rm", key: rmKey, log: log, read: { try ProxyUnit.read(from: $0) }, build: {
                if let file = loadProxies[name] { return try ProxyUnit.loaded(from: file, variant: name, world: world, log: log) }
                let rm = try trainRewardModel(config: rmConfig, base: base.model, world: world, data: data, seed: config.seed,
                                              normalizationSamples: normalizationSamples, name: name, log: log,
                                              metrics: metrics.observer(stage: "rm", variant: name))
                guard rm.idAccuracy.isFinite else { throw ExperimentError("rm \(name): training produced non-finite scores") }
                return ProxyUnit(proxy: rm.proxy, idAccuracy: rm.idAccuracy, oodAccuracyMean: rm.oodAccuracyMean, origin: .trained(rm))
            }, write: { try $0.write(to: $1) })
        }
        if unit.origin == nil { metrics.emit(stage: "rm", variant: name, fields: [("event", "cached")]) }
        summary.idAccuracy = unit.idAccuracy
        summary.oodAccuracy = unit.oodAccuracyMean
        let rmPath = try unitPath("rm", rmKey)
        let saveCheckpoint = config.saveCheckpoints
        writers.append { root in
            let unitFile = try H5File.open(rmPath)
            defer { unitFile.close() }
            try root.copy("rm", from: unitFile.root, to: "rm/\(name)")
            if saveCheckpoint && !unitFile.root.contains("rm/checkpoint") {
                try root.copy("checkpoint", from: unitFile.root, to: "rm/\(name)/checkpoint")
            }
        }
        let proxy = unit.proxy

        if let samples = bonSamples {
            let key = StageCache.key(["rm": rmKey, "samples": samplesKey, "bon": StageCache.key(config.bon), "code": "bon-curves-v1"])
            let ends = try timed("bon/\(name)") {
                try units.entry(stage: "bon-curves", key: key, log: log, read: { try CurveEnds(bestOfN: $0.group("bon")) }, build: {
                    let c = try evaluateBestOfN(proxy: proxy, samples: samples, world: world, config: config.bon, log: log)
                    for i in c.n.indices {
                        metrics.emit(stage: "bon", variant: name, step: c.n[i], [("kl", c.kl[i]), ("proxy", c.proxy[i]), ("gold", c.gold[i]),
                                     ("proxy_shifted", c.proxyShifted[i]), ("gold_shifted", c.goldShifted[i]), ("gold_oracle", c.goldOracle[i])])
                    }
                    return CurveEnds(kl: c.kl, proxy: c.proxyShifted, gold: c.goldShifted, write: { try c.write(to: $0) })
                }, write: { try $0.write?($1.createGroup("bon")) })
            }
            if ends.write == nil { metrics.emit(stage: "bon", variant: name, fields: [("event", "cached")]) }
            summary.bonKL = ends.kl.last ?? .nan
            summary.bonProxy = ends.proxy.last ?? .nan
            summary.bonGold = ends.gold.last ?? .nan
            if let i = ends.gold.indices.max(by: { ends.gold[$0] < ends.gold[$1] }) {
                summary.bonPeakGold = ends.gold[i]; summary.bonPeakKL = ends.kl[i]
            }
            let path = try unitPath("bon-curves", key)
            writers.append { root in
                let unitFile = try H5File.open(path)
                defer { unitFile.close() }
                try root.copy("bon", from: unitFile.root, to: "bon/\(name)")
            }
        }

        if config.stages.contains("ppo") {
            let key = StageCache.key(["rm": rmKey, "base": baseKey, "ppo": StageCache.key(config.ppo), "seed": "\(config.seed)", "code": "ppo-v1"])
            let ends = try timed("ppo/\(name)") {
                try units.entry(stage: "ppo", key: key, log: log, read: { try CurveEnds(ppo: $0.group("ppo")) }, build: {
                    let trainer = try PPOTrainer(config: config.ppo, world: world, basePolicy: base.model,
                                                 scorer: { proxy.score(world: world, prompts: $0, responses: $1) },
                                                 seed: RNG.stableHash("ppo|\(config.seed)|\(name)"))
                    let c = trainer.run(log: { log("ppo \(name): " + $0) }, metrics: metrics.observer(stage: "ppo", variant: name),
                                        evaluations: metrics.observer(stage: "ppo-eval", variant: name))
                    if let bad = c.nonFiniteStep {
                        throw ExperimentError("ppo \(name): non-finite loss at step \(bad); try a lower ppo.learning_rate")
                    }
                    return CurveEnds(kl: c.kl, proxy: c.proxy, gold: c.gold, write: { try c.write(to: $0) })
                }, write: { try $0.write?($1.createGroup("ppo")) })
            }
            if ends.write == nil { metrics.emit(stage: "ppo", variant: name, fields: [("event", "cached")]) }
            let g0 = ends.gold.first ?? 0, p0 = ends.proxy.first ?? 0
            summary.ppoKL = ends.kl.last ?? .nan
            summary.ppoProxy = (ends.proxy.last ?? .nan) - p0
            summary.ppoGold = (ends.gold.last ?? .nan) - g0
            if let i = ends.gold.indices.max(by: { ends.gold[$0] < ends.gold[$1] }) {
                summary.ppoPeakGold = ends.gold[i] - g0; summary.ppoPeakKL = ends.kl[i]
            }
            let path = try unitPath("ppo", key)
            writers.append { root in
                let unitFile = try H5File.open(path)
                defer { unitFile.close() }
                try root.copy("ppo", from: unitFile.root, to: "ppo/\(name)")
            }
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
        if !loadProxies.isEmpty {
            try root.setAttribute("loaded_proxies", loadProxies.keys.sorted().map { "\($0)=\(absolutePath(loadProxies[$0]!))" }.joined(separator: ","))
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
        try root.setAttribute("complete", Int64(1))
    }
    metrics.emit(stage: "run", [("seconds", seconds)], fields: [("event", "end"), ("result", outputPath)])
    return RunSummary(path: outputPath, seconds: seconds, variants: summaries, baseGold: baseGold)
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

/// A trained (or loaded) proxy as a unit of work. Its cache entry holds `rm` (the result
/// file's `/rm/<variant>` group) and `checkpoint` (the proxy's weights, always kept so a
/// resumed run can score with it).
struct ProxyUnit {
    enum Origin { case trained(RewardModelResult), file(path: String, variant: String) }
    let proxy: ProxyRewardModel
    let idAccuracy: Double
    let oodAccuracyMean: Double
    /// How to write the entry; nil when read from the cache.
    let origin: Origin?

    /// Reads an entry (the proxy from its checkpoint: bitwise the trained weights; a loaded
    /// proxy's checkpoint is inside its copied `rm` group).
    static func read(from g: H5Group) throws -> ProxyUnit {
        try read(rm: g.group("rm"), checkpoint: g.group(g.contains("checkpoint") ? "checkpoint" : "rm/checkpoint"))
    }

    /// The proxy of `checkpoint` with the accuracies of the `/rm/<variant>` group `rm`.
    private static func read(rm: H5Group, checkpoint: H5Group) throws -> ProxyUnit {
        ProxyUnit(proxy: try ProxyRewardModel.load(from: checkpoint),
                  idAccuracy: try rm.readDoubles("id_accuracy").values.first ?? .nan,
                  oodAccuracyMean: try rm.readDoubles("ood_accuracy_mean").values.first ?? .nan, origin: nil)
    }

    /// The proxy stored under `/rm/<variant>/checkpoint` of the result file `path`.
    static func loaded(from path: String, variant: String, world: World, log: (String) -> Void) throws -> ProxyUnit {
        let f: H5File
        do { f = try H5File.open(path) } catch {
            throw ExperimentError("--load-proxy \(variant)=\(path): cannot open the file (\(error))")
        }
        defer { f.close() }
        guard f.root.contains("rm/\(variant)/checkpoint") else {
            throw ExperimentError("--load-proxy \(variant)=\(path): the file has no /rm/\(variant)/checkpoint (write it with save_checkpoints = true)")
        }
        if f.root.hasAttribute("world_fingerprint"), let fp = try? f.root.stringAttribute("world_fingerprint"), fp != world.fingerprint {
            throw ExperimentError("--load-proxy \(variant)=\(path): the proxy was trained in another world (fingerprint \(fp), this run's \(world.fingerprint))")
        }
        let unit: ProxyUnit
        do { unit = try read(rm: f.root.group("rm/\(variant)"), checkpoint: f.root.group("rm/\(variant)/checkpoint")) } catch {
            throw ExperimentError("--load-proxy \(variant)=\(path): cannot read /rm/\(variant) (\(error))")
        }
        log("rm \(variant): loaded from \(path)")
        return ProxyUnit(proxy: unit.proxy, idAccuracy: unit.idAccuracy, oodAccuracyMean: unit.oodAccuracyMean,
                         origin: .file(path: path, variant: variant))
    }

    /// Writes the entry's layout.
    func write(to g: H5Group) throws {
        switch origin {
        case .trained(let rm)?:
            try rm.write(to: g.createGroup("rm"))
            try rm.proxy.save(to: g.createGroup("checkpoint"))
        case .file(let path, let variant)?:
            let f = try H5File.open(path)
            defer { f.close() }
            try g.copy("rm/\(variant)", from: f.root, to: "rm")
            try g.group("rm").setAttribute("loaded_from", absolutePath(path))
        case nil:
            throw ExperimentError("internal: a proxy read from the cache is never stored again")
        }
    }
}

/// The ends of a unit's curves that the summary table needs (best-of-n: shifted proxy and
/// gold; PPO: raw), and how to write the unit when it was just computed.
struct CurveEnds {
    var kl: [Double], proxy: [Double], gold: [Double]
    var write: ((H5Group) throws -> Void)?

    init(kl: [Double], proxy: [Double], gold: [Double], write: ((H5Group) throws -> Void)?) {
        self.kl = kl; self.proxy = proxy; self.gold = gold; self.write = write
    }
    init(bestOfN g: H5Group) throws {
        self.init(kl: try g.readDoubles("kl").values, proxy: try g.readDoubles("proxy_shifted").values,
                  gold: try g.readDoubles("gold_shifted").values, write: nil)
    }
    init(ppo g: H5Group) throws {
        self.init(kl: try g.readDoubles("kl").values, proxy: try g.readDoubles("proxy").values,
                  gold: try g.readDoubles("gold").values, write: nil)
    }
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
    try g.setAttribute("ood_sets", d.oodEval.map(\.name).joined(separator: ","))
    try g.write("train_gold_margin", d.train.map(\.goldMargin), compress: true)
}
