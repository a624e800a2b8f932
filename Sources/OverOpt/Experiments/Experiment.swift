// Experiment.swift — one run of the pipeline, top to bottom, into one HDF5 file.
//
//   world ──► base policy ──► preference data ──► proxy reward models ──┬─► best-of-n
//             (cached)         (cached per seed)   (one per variant)     ├─► PPO, GRPO, RLOO
//                                                                        └─► (DPO/IPO: the data)
//
// A proxy with `rm.base` set is fine-tuned from a base model of that preset (pretrained
// with the same `[base]` settings, cached alike) instead of the policy's; best-of-n and
// PPO always sample the policy.
//
// `runExperiment` is the list of stages (RunStages.swift: each stage owns its cache key,
// timing and result writer, so a killed run resumes at its first unfinished unit); metrics
// stream as they come (MetricsStream.swift); the result file (ResultFile.swift) is written
// atomically at the end. The schema is documented in README.md.
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

    public init(name: String) { self.name = name }

    /// A proxy's accuracies.
    init(name: String, proxy: RewardModelResult) {
        self.name = name
        idAccuracy = proxy.idAccuracy
        oodAccuracy = proxy.oodAccuracyMean
    }

    /// Best-of-n against the proxy: KL, proxy and gold (changes from n = 1) at the largest
    /// n, the peak gold and its KL.
    mutating func bestOfN(_ curves: BestOfNCurves) {
        bonKL = curves.kl.last ?? .nan
        bonProxy = curves.proxyShifted.last ?? .nan
        bonGold = curves.goldShifted.last ?? .nan
        if let i = peakIndex(curves.goldShifted) { bonPeakGold = curves.goldShifted[i]; bonPeakKL = curves.kl[i] }
    }
}

/// The index of the largest value (the first of ties), nil for none.
func peakIndex(_ values: [Double]) -> Int? {
    values.indices.max { values[$0] < values[$1] }
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
        if let i = peakIndex(curves.gold) { peakGold = curves.gold[i] - g0; peakKL = curves.kl[i] }
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


/// Runs one experiment config into `outputPath`, whose folder `prepareOutputFolder` made
/// ready. `loadProxies` maps proxy names of the config to earlier result files whose
/// `/rm/<name>/checkpoint` replaces training.
public func runExperiment(_ config: ExperimentConfig, outputPath: String, cache: StageCache,
                          loadProxies: [String: String] = [:], log: @escaping (String) -> Void) throws -> RunSummary {
    let start = monotonicSeconds()
    for name in loadProxies.keys.sorted() where !config.proxies.contains(name) {
        throw ExperimentError("--load-proxy \(name)=…: '\(name)' is not among this run's proxies (\(config.proxies.joined(separator: ", ")))")
    }
    let run = try RunContext(config: config, outputPath: outputPath, cache: cache, log: log)
    let base = try run.run(BasePolicyStage(settings: config.base, label: "base"))
    var rmBases = [config.base.preset: base]
    for preset in rmBasePresets(config) {
        var settings = config.base
        settings.preset = preset
        rmBases[preset] = try run.run(BasePolicyStage(settings: settings, label: "base/\(preset)"))
    }
    let data = try run.run(PreferenceDataStage(base: base))
    let samples = config.stages.contains("bon") ? try run.run(BestOfNSamplesStage(base: base)) : nil
    var summaries: [VariantSummary] = [], firstProxy: (name: String, proxy: StageOutput<RewardModelResult>)?
    for name in config.proxies {
        guard let settings = config.variants[name] else { throw ExperimentError("no settings resolved for proxy '\(name)'") }
        let proxy = try run.run(ProxyStage(name: name, settings: settings, loadedFrom: loadProxies[name], data: data,
                                           rmBase: rmBases[settings.base ?? config.base.preset]!, samples: samples,
                                           saveCheckpoint: config.saveCheckpoints))
        firstProxy = firstProxy ?? (name, proxy)
        var summary = VariantSummary(name: name, proxy: proxy.value)
        if let samples { summary.bestOfN(try run.run(BestOfNCurvesStage(name: name, proxy: proxy, samples: samples)).value) }
        for optimizer in proxyOptimizerStages where config.stages.contains(optimizer) {
            let curves = try run.run(PolicyOptimizerStage(optimizer: optimizer, name: name, proxy: proxy, base: base)).value
            summary.optimizers[optimizer] = OptimizerSummary(curves: curves)
        }
        summaries.append(summary)
    }
    let direct = config.stages.contains("dpo")
        ? try run.run(DirectAlignmentStage(data: data, base: base, scorer: firstProxy, loss: config.dpo.loss.rawValue)).value : nil
    let baseGold = samples.map { Statistics.mean($0.value.gold) } ?? .nan
    let seconds = monotonicSeconds() - start
    try writeRunFile(outputPath, run: run, base: base.value, data: data.value, baseGold: baseGold, seconds: seconds, loadProxies: loadProxies)
    run.metrics.emit(stage: "run", [("seconds", seconds)], fields: [("event", "end"), ("result", outputPath)])
    return RunSummary(path: outputPath, seconds: seconds, variants: summaries, baseGold: baseGold,
                      direct: direct.map { ("dpo/\(config.dpo.loss.rawValue)", OptimizerSummary(curves: $0)) })
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

