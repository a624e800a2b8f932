// PolicyEvaluation.swift — what every policy optimizer (PPO, GRPO, RLOO) shares: the
// held-out evaluation, the read-out of response log-probabilities, and the curves written
// to `/<optimizer>/<variant>/`.
//
// What it is: one evaluation code path. An optimizer owns its policy and sampler and calls
// `PolicyEvaluator.evaluate` every `eval_every` iterations; the result goes into
// `PolicyCurves.record`, whose datasets and names are the same for every optimizer, so
// `collect`, `plot`, `compare`, the summary table and the Python reader treat them alike.
// What it is not: an optimizer. Losses and advantages live with each optimizer.
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif
import OverOptEngine
import OverOptHDF5

/// The policy optimizers that run against every proxy (`/<stage>/<variant>`).
public let proxyOptimizerStages = ["ppo", "grpo", "rloo"]
/// The result-file sections of policy optimizers, in the order a run writes them, each with
/// the same evaluation datasets per group: the proxy optimizers', then direct alignment's
/// (`/dpo/<loss>`, one per run).
public let policyOptimizerStages = proxyOptimizerStages + ["dpo"]

/// The reward a policy optimizer maximizes: one score per (prompt, response). Pass a proxy's
/// score (`{ proxy.score(world: world, prompts: $0, responses: $1) }`) or any toy reward.
public typealias PolicyScorer = ([Prompt], [[Int32]]) -> [Double]
public typealias PPOScorer = PolicyScorer

/// One setting of an optimizer, stored as an attribute of its result group.
public struct OptimizerSetting: Sendable, Equatable {
    public var key: String
    public var value: AttributeValue
    public init(_ key: String, _ value: AttributeValue) { self.key = key; self.value = value }
}

/// The curves of one policy-optimizer run (HDF5 `/<optimizer>/<variant>/`).
public struct PolicyCurves: Sendable, Equatable {
    /// The optimizer's settings (written as attributes).
    public var settings: [OptimizerSetting]
    // Evaluation on held-out prompts, one entry per evaluation.
    public var step: [Int64] = []
    /// Mean over samples of k1 = Σ_t (log π − log π_ref) (the paper's KL).
    public var kl: [Double] = []
    public var klK2: [Double] = []
    public var klK3: [Double] = []
    /// Mean raw proxy score (not normalized).
    public var proxy: [Double] = []
    public var gold: [Double] = []
    /// Mean of each gold component, keyed by `GoldScore.componentNames`.
    public var goldComponents: [String: [Double]] = [:]
    /// Mean response length in tokens (EOS included).
    public var length: [Double] = []
    /// Mean next-token entropy (nats) of the policy over response positions.
    public var entropy: [Double] = []
    // Training, one entry per iteration.
    public var trainStep: [Int64] = []
    public var policyLoss: [Double] = []
    /// PPO only (the others have no value head): listed in `omitted` otherwise.
    public var valueLoss: [Double] = []
    /// Mean raw proxy score of the rollout batch.
    public var trainReward: [Double] = []
    /// Mean k1 of the rollout batch against the reference.
    public var trainKL: [Double] = []
    public var clipFraction: [Double] = []
    /// Mean over tokens and minibatches of ½(log π − log πold)² before each minibatch step.
    public var approxKL: [Double] = []
    /// The KL coefficient β used for each iteration.
    public var klCoef: [Double] = []
    // Sample texts from evaluations.
    public var sampleStep: [Int64] = []
    public var sampleText: [String] = []
    /// Per sample text: its prompt's id and the sample's proxy and gold scores.
    public var samplePromptID: [Int64] = []
    public var sampleProxy: [Double] = []
    public var sampleGold: [Double] = []
    /// Mean and std used to normalize rewards (PPO: from the first rollout batch).
    public var rewardMean = 0.0
    public var rewardStd = 1.0
    /// Wall-clock seconds: rollout (sampling), scoring, update, evaluation.
    public var seconds: [String: Double] = [:]
    /// Training curves this optimizer does not have (not written), e.g. `value_loss`.
    public var omitted: Set<String> = []

    /// The first step whose losses or rewards were not finite (the run stopped there).
    public var nonFiniteStep: Int?
    /// The over-optimization detectors (Detectors.swift), when the optimizer ran them.
    public var detectors: DetectorRecord?

    public init(settings: [OptimizerSetting], omitted: Set<String> = []) {
        self.settings = settings
        self.omitted = omitted
    }

    /// The datasets written per iteration (on `train_step`); the rest are per evaluation
    /// (on `step`) or per sample text (`sample_*`).
    public static let trainingCurveNames: Set<String> = [
        "policy_loss", "value_loss", "train_reward", "train_kl", "clip_fraction", "approx_kl", "kl_coef",
    ]

    /// Appends one evaluation at iteration `step`.
    public mutating func record(_ e: PolicyEvaluation, step s: Int) {
        step.append(Int64(s))
        kl.append(e.kl.k1); klK2.append(e.kl.k2); klK3.append(e.kl.k3)
        proxy.append(e.proxy); gold.append(e.gold)
        for (j, name) in GoldScore.componentNames.enumerated() { goldComponents[name, default: []].append(e.goldComponents[j]) }
        length.append(e.length); entropy.append(e.entropy)
        for text in e.samples { sampleStep.append(Int64(s)); sampleText.append(text) }
        samplePromptID += e.samplePromptIDs
        sampleProxy += e.sampleProxy
        sampleGold += e.sampleGold
        if detectors != nil {
            for (name, value) in e.detectorStatistics { detectors!.measured[name, default: []].append(value) }
        }
    }

    /// Runs one held-out evaluation at iteration `step` and records it: its time is added to
    /// `seconds["eval"]`, its line and two samples go to `log`, its metrics to `evaluations`.
    /// Every policy optimizer's loop calls this at step 0 and at each `eval_every`.
    public mutating func evaluate(step: Int, stage: String, seconds: inout [String: Double],
                                  log: (String) -> Void, evaluations: StepMetrics?, _ evaluate: () -> PolicyEvaluation) {
        let t0 = monotonicSeconds()
        let e = evaluate()
        seconds["eval", default: 0] += monotonicSeconds() - t0
        record(e, step: step)
        log(e.logLine(stage: stage, step: step, seconds: monotonicSeconds() - t0))
        for s in e.samples.prefix(2) { log("  sample: \(s)") }
        evaluations?(step, e.metrics)
    }

    /// Writes every curve as a dataset and the settings as attributes of `group`.
    public func write(to group: H5Group) throws {
        try group.write("step", step)
        try group.write("kl", kl)
        try group.write("kl_k2", klK2)
        try group.write("kl_k3", klK3)
        try group.write("proxy", proxy)
        try group.write("gold", gold)
        for name in GoldScore.componentNames { try group.write("gold_\(name)", goldComponents[name] ?? []) }
        try group.write("length", length)
        try group.write("entropy", entropy)
        try group.write("train_step", trainStep)
        for (name, values) in trainingCurves where !omitted.contains(name) { try group.write(name, values) }
        try group.write("sample_step", sampleStep)
        try group.write("sample_text", strings: sampleText)
        if sampleProxy.count == sampleText.count {
            try group.write("sample_prompt_id", samplePromptID)
            try group.write("sample_proxy", sampleProxy)
            try group.write("sample_gold", sampleGold)
        }
        if let detectors { try detectors.write(to: group, steps: step, gold: gold, proxy: proxy, kl: kl) }
        for s in settings { try group.setAttribute(s.key, s.value) }
        try group.setAttribute("reward_mean", rewardMean)
        try group.setAttribute("reward_std", rewardStd)
        for (k, v) in seconds { try group.setAttribute("seconds_\(k)", v) }
    }

    var trainingCurves: [(String, [Double])] {
        [("policy_loss", policyLoss), ("value_loss", valueLoss), ("train_reward", trainReward), ("train_kl", trainKL),
         ("clip_fraction", clipFraction), ("approx_kl", approxKL), ("kl_coef", klCoef)]
    }

    /// Reads what `write(to:)` wrote (`settings` are the run's; the attributes are not parsed).
    /// `detectors`: the run's detector settings, when it ran them.
    public static func read(from group: H5Group, settings: [OptimizerSetting], omitted: Set<String> = [],
                            detectors: DetectorConfig? = nil) throws -> PolicyCurves {
        var c = PolicyCurves(settings: settings, omitted: omitted)
        if let detectors { c.detectors = try DetectorRecord.read(from: group, config: detectors) }
        c.step = try group.readInt64s("step").values
        c.kl = try group.readDoubles("kl").values
        c.klK2 = try group.readDoubles("kl_k2").values
        c.klK3 = try group.readDoubles("kl_k3").values
        c.proxy = try group.readDoubles("proxy").values
        c.gold = try group.readDoubles("gold").values
        for name in GoldScore.componentNames { c.goldComponents[name] = try group.readDoubles("gold_\(name)").values }
        c.length = try group.readDoubles("length").values
        c.entropy = try group.readDoubles("entropy").values
        c.trainStep = try group.readInt64s("train_step").values
        func training(_ name: String) throws -> [Double] {
            omitted.contains(name) ? [] : try group.readDoubles(name).values
        }
        c.policyLoss = try training("policy_loss")
        c.valueLoss = try training("value_loss")
        c.trainReward = try training("train_reward")
        c.trainKL = try training("train_kl")
        c.clipFraction = try training("clip_fraction")
        c.approxKL = try training("approx_kl")
        c.klCoef = try training("kl_coef")
        c.sampleStep = try group.readInt64s("sample_step").values
        c.sampleText = try group.readStrings("sample_text")
        if group.contains("sample_proxy") {
            c.samplePromptID = try group.readInt64s("sample_prompt_id").values
            c.sampleProxy = try group.readDoubles("sample_proxy").values
            c.sampleGold = try group.readDoubles("sample_gold").values
        }
        c.rewardMean = try group.doubleAttribute("reward_mean")
        c.rewardStd = try group.doubleAttribute("reward_std")
        for name in try group.attributeNames() where name.hasPrefix("seconds_") {
            c.seconds[String(name.dropFirst("seconds_".count))] = try group.doubleAttribute(name)
        }
        return c
    }
}

/// PPO's curves: settings from its config.
public typealias PPOCurves = PolicyCurves

extension PolicyCurves {
    public init(config: PPOConfig) { self.init(settings: config.attributes.map { OptimizerSetting($0.key, $0.value) }) }

    public static func read(from group: H5Group, config: PPOConfig, detectors: DetectorConfig? = nil) throws -> PolicyCurves {
        try read(from: group, settings: config.attributes.map { OptimizerSetting($0.key, $0.value) }, detectors: detectors)
    }
}

/// One evaluation on the held-out prompts.
public struct PolicyEvaluation: Sendable {
    public var kl: KLEstimates
    public var proxy: Double
    public var gold: Double
    public var goldComponents: [Double]
    public var length: Double
    public var entropy: Double
    public var samples: [String]
    /// Per sample text: prompt id, proxy and gold score.
    public var samplePromptIDs: [Int64] = []
    public var sampleProxy: [Double] = []
    public var sampleGold: [Double] = []
    /// The detectors' statistics measured on this evaluation's responses, by detector name.
    public var detectorStatistics: [String: Double] = [:]

    /// The values streamed to the metrics file (`<optimizer>-eval`).
    public var metrics: [(String, Double)] {
        [("kl", kl.k1), ("kl_k2", kl.k2), ("kl_k3", kl.k3), ("proxy", proxy), ("gold", gold)]
            + zip(GoldScore.componentNames, goldComponents).map { ("gold_" + $0, $1) }
            + [("length", length), ("entropy", entropy)]
            + detectorStatistics.sorted { $0.key < $1.key }.map { ("detector_" + $0.key, $0.value) }
    }

    /// The log line of an evaluation.
    public func logLine(stage: String, step: Int, seconds: Double) -> String {
        String(format: "%@ eval step %d: kl %.3f (k2 %.3f, k3 %.3f) proxy %.3f gold %.3f length %.1f entropy %.3f (%.1fs)",
               stage, step, kl.k1, kl.k2, kl.k3, proxy, gold, length, entropy, seconds)
    }
}
public typealias PPOEvaluation = PolicyEvaluation

/// Per response: the response-token read-outs of one model on [BOS] prompt [SEP] response.
struct ResponseReadout {
    var logp: [[Double]]
    var values: [[Double]]
    var entropy: [[Double]]
}

/// How log-probabilities are read: at temperature `temperature` (softmax(z/T), the
/// distribution sampled, when `tempered`) or of the raw model (softmax(z)).
struct LogprobReading {
    var temperature: Float
    var tempered: Bool
    /// Rows per forward pass.
    var chunkSize: Int

    /// Runs `body` with `model`'s log-probabilities at the configured temperature: the LM
    /// head's weights W are replaced by W/T (softmax(h·(W/T)ᵀ) = softmax(z/T)) and restored
    /// exactly afterwards. With `backward`, `body` runs backward passes on gradients it does
    /// not otherwise touch: the head's gradient accumulated is that of W/T, so it is scaled by
    /// 1/T (∂L/∂W = ∂L/∂(W/T) / T). Identity when tempering is off or T = 1.
    func with<R>(_ model: Transformer, backward: Bool = false, _ body: () -> R) -> R {
        let T = temperature
        guard tempered, T != 1 else { return body() }
        let saved = model.tensor("lm_head_w")
        model.setTensor("lm_head_w", saved.map { $0 / T })
        let result = body()
        model.setTensor("lm_head_w", saved)
        if backward, let g = model.g("lm_head_w") {
            let n = saved.count, inv = 1 / T
            for i in 0..<n { g[i] *= inv }
        }
        return result
    }

    /// Log-probabilities (and values, entropies) of each response's tokens under `model`, by
    /// the engine's lean forward over `sequences` = context + response (no activations kept;
    /// it agrees with the training forward to rounding, ≈ 1e-6).
    func readout(_ model: Transformer, sequences: [[Int32]], responseStart: [Int],
                 values wantValues: Bool, entropy wantEntropy: Bool) -> ResponseReadout {
        let r = with(model) {
            model.responseReadouts(sequences, responseStart: responseStart, entropy: wantEntropy, values: wantValues,
                                   chunkSize: chunkSize)
        }
        var out = ResponseReadout(logp: [], values: [], entropy: [])
        for i in sequences.indices {
            let t = r.tokens(of: i)
            out.logp.append(r.logp[t].map(Double.init))
            if wantValues { out.values.append(r.values[t].map(Double.init)) }
            if wantEntropy { out.entropy.append(r.entropy[t].map(Double.init)) }
        }
        return out
    }
}

/// The held-out evaluation every policy optimizer runs: one response per held-out prompt
/// (evenly spread over the held-out list), sampled with a fixed stream (the same noise at
/// every evaluation), scored by the proxy and gold, with KL to the frozen reference.
struct PolicyEvaluator {
    let world: World
    let reference: Transformer
    let scorer: PolicyScorer
    let sampling: SamplingConfig
    let reading: LogprobReading
    let rng: RNG
    let prompts: [Prompt]
    let sampleTexts: Int
    /// The detectors' probe of the proxy and their calibration on base-policy samples.
    let detectorProbe: DetectorProbe?
    let calibration: DetectorCalibration?

    /// With `detectors`, the detectors are calibrated here, on `config.base_samples` fresh
    /// samples of the reference (the base policy) per evaluation prompt, drawn with the
    /// evaluation's sampling settings from the stream `rng.split("detectors")` (the
    /// evaluation's own stream is untouched).
    init(world: World, reference: Transformer, scorer: @escaping PolicyScorer, sampling: SamplingConfig,
         reading: LogprobReading, rng: RNG, evalPrompts: Int, sampleTexts: Int,
         detectors: (probe: DetectorProbe, config: DetectorConfig)? = nil) {
        self.world = world; self.reference = reference; self.scorer = scorer
        self.sampling = sampling; self.reading = reading; self.rng = rng; self.sampleTexts = sampleTexts
        let held = world.heldOutPrompts
        let n = min(evalPrompts, held.count)
        prompts = (0..<n).map { held[$0 * held.count / n] }
        detectorProbe = detectors?.probe
        if let (probe, config) = detectors {
            var responses: [[Int32]] = []
            if probe.needsBaseSamples {
                var r = rng.split("detectors")
                let contexts = prompts.flatMap { Array(repeating: world.context(for: $0), count: config.baseSamples) }
                responses = Sampler(model: reference).generate(prompts: contexts, config: sampling, rng: &r)
            }
            calibration = probe.needsBaseSamples
                ? DetectorCalibration(probe: probe, prompts: prompts, responses: responses, quantile: config.outlierQuantile)
                : DetectorCalibration()
        } else {
            calibration = nil
        }
    }

    /// An empty detector record for the curves of a run with detectors (nil without).
    func detectorRecord(config: DetectorConfig?) -> DetectorRecord? {
        guard let config, let calibration else { return nil }
        return DetectorRecord(config: config, calibration: calibration)
    }

    /// Samples one response per held-out prompt from `policy` (through `sampler`, the
    /// grouped KV-cache decoder) and measures proxy, gold, KL to the reference, length and
    /// entropy.
    func evaluate(policy: Transformer, sampler: Sampler) -> PolicyEvaluation {
        var r = rng
        let contexts = prompts.map { world.context(for: $0) }
        let responses = sampler.generate(prompts: contexts, config: sampling, rng: &r)
        let sequences = zip(contexts, responses).map { $0 + $1 }
        let starts = contexts.map(\.count)
        let pol = reading.readout(policy, sequences: sequences, responseStart: starts, values: false, entropy: true)
        let ref = reading.readout(reference, sequences: sequences, responseStart: starts, values: false, entropy: false)
        var kl = KLEstimates(k1: 0, k2: 0, k3: 0)
        for i in prompts.indices {
            let k = klEstimates(logRatios: zip(pol.logp[i], ref.logp[i]).map { $0 - $1 })
            kl.k1 += k.k1; kl.k2 += k.k2; kl.k3 += k.k3
        }
        let n = Double(prompts.count)
        kl.k1 /= n; kl.k2 /= n; kl.k3 /= n
        let proxyScores = scorer(prompts, responses)
        let proxy = proxyScores.reduce(0, +) / n
        var gold = 0.0, components = [Double](repeating: 0, count: GoldScore.componentNames.count)
        for (p, y) in zip(prompts, responses) {
            let g = world.gold(prompt: p, response: y)
            gold += g.total
            for (j, c) in g.components.enumerated() { components[j] += c }
        }
        let tokens = pol.entropy.reduce(0) { $0 + $1.count }
        let entropy = pol.entropy.reduce(0) { $0 + $1.reduce(0, +) } / Double(max(1, tokens))
        // Sample texts from prompts spread over the evaluation set (different topics and tones),
        // with each one's gold and proxy score.
        let k = min(sampleTexts, prompts.count)
        let picked = (0..<k).map { j in j * prompts.count / max(1, k) }
        let sampleGold = picked.map { world.gold(prompt: prompts[$0], response: responses[$0]).total }
        let samples = zip(picked, sampleGold).map { i, g in
            world.render(prompt: prompts[i], response: responses[i]) + String(format: "   [gold %+.2f, proxy %+.2f]", g, proxyScores[i])
        }
        var e = PolicyEvaluation(kl: kl, proxy: proxy, gold: gold / n, goldComponents: components.map { $0 / n },
                                 length: Double(tokens) / n, entropy: entropy, samples: samples,
                                 samplePromptIDs: picked.map { Int64(prompts[$0].id) },
                                 sampleProxy: picked.map { proxyScores[$0] }, sampleGold: sampleGold)
        if let probe = detectorProbe, let calibration {
            e.detectorStatistics = calibration.measure(probe: probe, prompts: prompts, responses: responses)
        }
        return e
    }
}

/// The next training prompts, cycling through shuffled passes over the train split.
struct TrainPromptStream {
    var order: [Prompt] = []
    var cursor = 0

    mutating func next(_ count: Int, world: World, rng: inout RNG) -> [Prompt] {
        var out: [Prompt] = []
        while out.count < count {
            if cursor >= order.count {
                order = world.trainPrompts
                rng.shuffle(&order)
                cursor = 0
            }
            out.append(order[cursor])
            cursor += 1
        }
        return out
    }
}
