// CriticFreeTrainer.swift — GRPO and RLOO of a policy against a proxy reward, tracking proxy,
// gold and KL with the evaluation every policy optimizer shares (PolicyEvaluation.swift).
//
// One iteration: `prompts_per_step` training prompts, each repeated G (GRPO) or k (RLOO)
// times, one response per row from the grouped KV-cache sampler; the proxy scores them; the
// old and reference log-probabilities come from the lean forward; the advantages are the
// optimizer's (CriticFreeMath.swift); then
// - GRPO: `epochs` passes of shuffled minibatches, each an optimizer step on the clipped
//   ratio with the sequence's advantage on every token, plus β·KL-estimator in the loss;
// - RLOO: one optimizer step of REINFORCE on the whole batch (gradients accumulated over
//   chunks), with the KL penalty in the reward.
// No value head: the policy is a plain copy of the base policy. Minibatch parts run
// data-parallel on two replicas, as PPO's do. Rewards are the raw proxy scores (GRPO's
// normalization is within the group; RLOO's baseline removes the offset). With
// `reward_shaping = "par"` each score is replaced by PAR's (1/M) Σ_m σ((r − r_ref,m)/s)
// before the advantages: M reference responses per training prompt from the reference
// (its own random stream), s the standard deviation of the first batch's scores.
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif
import OverOptEngine
import OverOptHDF5

/// GRPO or RLOO of a copy of the base policy against a reward.
public final class CriticFreeTrainer {
    public let settings: CriticFreeSettings
    public let world: World
    /// The trained policy (a language model, no value head).
    public let policy: Transformer
    /// The frozen base policy.
    public let reference: Transformer
    let scorer: PolicyScorer
    /// The policy's optimizer steps.
    let training: TrainingLoop
    let sampler: Sampler
    var rng: RNG
    let evaluator: PolicyEvaluator
    var trainPrompts = TrainPromptStream()
    /// The attributes written with the curves.
    let attributes: [OptimizerSetting]
    /// PAR's reference responses: a sampler of the reference, its random stream, the scale s.
    var parSampler: Sampler?
    var parRNG: RNG
    var parScale: Double?
    /// The detectors' settings, when they run (Detectors.swift).
    let detectorConfig: DetectorConfig?

    /// `evaluationRNG`: the evaluation's sampling stream (default: split from `seed`); a run
    /// passes PPO's, so that every optimizer is evaluated on the same sampling noise.
    public convenience init(config: GRPOConfig, world: World, basePolicy: Transformer, scorer: @escaping PolicyScorer, seed: UInt64,
                            evaluationRNG: RNG? = nil, detectors: (probe: DetectorProbe, config: DetectorConfig)? = nil) throws {
        try config.validate()
        try self.init(settings: config.settings, attributes: config.attributes, world: world, basePolicy: basePolicy, scorer: scorer,
                      seed: seed, evaluationRNG: evaluationRNG, detectors: detectors)
    }

    /// `evaluationRNG`: the evaluation's sampling stream (default: split from `seed`); a run
    /// passes PPO's, so that every optimizer is evaluated on the same sampling noise.
    public convenience init(config: RLOOConfig, world: World, basePolicy: Transformer, scorer: @escaping PolicyScorer, seed: UInt64,
                            evaluationRNG: RNG? = nil, detectors: (probe: DetectorProbe, config: DetectorConfig)? = nil) throws {
        try config.validate()
        try self.init(settings: config.settings, attributes: config.attributes, world: world, basePolicy: basePolicy, scorer: scorer,
                      seed: seed, evaluationRNG: evaluationRNG, detectors: detectors)
    }

    init(settings: CriticFreeSettings, attributes: [OptimizerSetting], world: World, basePolicy: Transformer,
         scorer: @escaping PolicyScorer, seed: UInt64, evaluationRNG: RNG? = nil,
         detectors: (probe: DetectorProbe, config: DetectorConfig)? = nil) throws {
        if let problem = maxNewTokensProblem(section: settings.section, settings.maxNewTokens, world: world) { throw problem }
        try checkPolicyFits(basePolicy, world: world)
        self.settings = settings
        self.attributes = attributes
        self.detectorConfig = detectors?.config
        self.world = world
        self.scorer = scorer
        policy = Transformer(config: basePolicy.config, heads: .languageModel)
        policy.copyParameters(from: basePolicy)
        reference = frozenReference(basePolicy)
        training = TrainingLoop(model: policy, learningRate: settings.learningRate, weightDecay: settings.weightDecay,
                                maxGradNorm: settings.maxGradNorm)
        sampler = Sampler(model: policy)
        rng = RNG(seed: seed)
        let evalRNG = evaluationRNG ?? rng.split("\(settings.algorithm.rawValue)-eval")
        parRNG = rng.split("\(settings.algorithm.rawValue)-par")
        if settings.shaping == .par { parSampler = Sampler(model: reference) }
        let sampling = SamplingConfig(temperature: settings.temperature, topP: settings.topP, maxNewTokens: settings.maxNewTokens,
                                      eosToken: Tokenizer.eos)
        let reading = LogprobReading(temperature: settings.temperature, tempered: settings.temperedLogprobs,
                                     chunkSize: settings.forwardBatchSize)
        evaluator = PolicyEvaluator(world: world, reference: reference, scorer: scorer, sampling: sampling, reading: reading,
                                    rng: evalRNG, evalPrompts: settings.evalPrompts, sampleTexts: settings.sampleTexts,
                                    detectors: detectors)
    }

    var sampling: SamplingConfig { evaluator.sampling }
    var reading: LogprobReading { evaluator.reading }
    var stage: String { settings.algorithm.rawValue }

    /// The shared held-out evaluation of the current policy.
    public func evaluate() -> PolicyEvaluation { evaluator.evaluate(policy: policy, sampler: sampler) }

    /// Sums over one update: the loss (weighted as optimized), clipped tokens, ½(Δ log π)² and tokens.
    struct UpdateStats {
        var policyLoss = 0.0, clipped = 0.0, approxKL = 0.0, tokens = 0.0
        mutating func add(_ o: UpdateStats) { policyLoss += o.policyLoss; clipped += o.clipped; approxKL += o.approxKL; tokens += o.tokens }
    }

    /// One part of an optimizer step on `model` (the policy or a replica): forward, per-token
    /// loss and its backward, each response's tokens weighted by `weight[row]`. Returns the
    /// weighted loss, the clipped tokens, Σ ½(Δ log π)² and the tokens.
    func part(model: Transformer, rows: [Int], weight: [Double], sequences: [[Int32]], responseStart: [Int],
              oldLogp: [[Double]], refLogp: [[Double]], advantages: [Double]) -> UpdateStats {
        let batch = TokenBatch(sequences: rows.map { sequences[$0] })
        let starts = rows.map { responseStart[$0] }
        let mask = responseLossMask(B: batch.B, T: batch.T, responseStart: starts, lengths: batch.lengths)
        let lp = model.tokenLogProbs(batch, mask: mask)
        var dlogp = [Float](repeating: 0, count: batch.B * batch.T)
        var out = UpdateStats()
        for (b, row) in rows.enumerated() {
            let w = weight[row]
            for t in oldLogp[row].indices {
                let pos = b * batch.T + starts[b] - 1 + t
                let logp = Double(lp.logp[pos])
                let l: (loss: Double, gradLogp: Double, clipped: Bool)
                switch settings.algorithm {
                case .grpo:
                    l = grpoTokenLoss(logp: logp, oldLogp: oldLogp[row][t], refLogp: refLogp[row][t], advantage: advantages[row],
                                      clipRange: settings.clipRange, klCoef: settings.klCoef, estimator: settings.klEstimator)
                case .rloo:
                    // REINFORCE's loss −A·Σ_t logπ_t, one token's term at a time.
                    let r = reinforceLoss(logps: [logp], advantage: advantages[row])
                    l = (r.loss, r.gradLogp, false)
                }
                out.policyLoss += w * l.loss
                if l.clipped { out.clipped += 1 }
                let d = logp - oldLogp[row][t]
                out.approxKL += 0.5 * d * d
                out.tokens += 1
                dlogp[pos] = Float(w * l.gradLogp)
            }
        }
        model.backwardTokenLogProbs(dlogp: dlogp)
        return out
    }

    /// One optimizer step on `rows`, gradients accumulated over chunks of `chunk` rows, each
    /// chunk's two halves on two replicas.
    func optimizerStep(rows: [Int], chunk: Int, weight: [Double], sequences: [[Int32]], responseStart: [Int],
                       oldLogp: [[Double]], refLogp: [[Double]], advantages: [Double]) -> UpdateStats {
        training.step {
            var s = UpdateStats()
            reading.with(policy, backward: true) {
                var lo = 0
                while lo < rows.count {
                    let piece = Array(rows[lo..<min(rows.count, lo + chunk)])
                    lo += chunk
                    let parts = policy.dataParallel(piece) { model, rows, _ in
                        self.part(model: model, rows: rows, weight: weight, sequences: sequences, responseStart: responseStart,
                                  oldLogp: oldLogp, refLogp: refLogp, advantages: advantages)
                    }
                    for p in parts { s.add(p) }
                }
            }
            return s
        }
    }

    /// The advantages of one batch from its proxy scores and per-token log-ratios to the
    /// reference (consecutive groups), and the rewards they came from.
    func advantages(scores: [Double], logRatios: [[Double]]) -> [Double] {
        switch settings.algorithm {
        case .grpo:
            return groupRelativeAdvantages(scores, groupSize: settings.groupSize, scaleByStd: settings.scaleRewards)
        case .rloo:
            let rewards = zip(scores, logRatios).map { klPenalizedReward(score: $0, logRatios: $1, klCoef: settings.klCoef) }
            return leaveOneOutAdvantages(rewards, groupSize: settings.groupSize)
        }
    }

    /// The scores as the advantages see them: unchanged, or PAR's shaped rewards with M
    /// reference responses per prompt (the batch's prompts come in groups of G copies).
    func parShaped(scores: [Double], prompts: [Prompt], contexts: [[Int32]]) -> [Double] {
        guard let refSampler = parSampler else { return scores }
        if parScale == nil {
            let sd = Statistics.meanAndStandardDeviation(scores).std
            parScale = sd > 1e-8 ? sd : 1
        }
        let G = settings.groupSize, M = settings.parReferenceSamples ?? 1
        let firsts = Array(stride(from: 0, to: prompts.count, by: G))
        let refPrompts = firsts.flatMap { repeatElement(prompts[$0], count: M) }
        let refResponses = refSampler.generate(prompts: firsts.flatMap { repeatElement(contexts[$0], count: M) }, config: sampling, rng: &parRNG)
        let refScores = scorer(refPrompts, refResponses)
        return scores.indices.map { i in
            let g = i / G
            return parReward(score: scores[i], referenceScores: Array(refScores[(g * M)..<((g + 1) * M)]), scale: parScale!)
        }
    }

    /// The loss weight of each response's tokens in an optimizer step over `count` responses:
    /// GRPO's (per-response mean or a constant, over the minibatch); RLOO's 1/count (the
    /// batch mean of the sequence losses).
    func tokenWeights(lengths: [Int], count: Int) -> [Double] {
        switch settings.algorithm {
        case .grpo:
            return lengths.map { grpoTokenWeight(length: $0, responses: count, maxTokens: settings.maxNewTokens,
                                                 lengthNormalization: settings.lengthNormalization) }
        case .rloo:
            return lengths.map { _ in 1 / Double(count) }
        }
    }

    /// Runs `settings.steps` iterations with evaluations at 0, every `eval_every` and at the
    /// end. `log` receives a line about every `progressInterval` seconds and one per evaluation; `metrics` each
    /// iteration's training statistics, `evaluations` each evaluation's.
    public func run(log: (String) -> Void = { _ in }, metrics: StepMetrics? = nil,
                    evaluations: StepMetrics? = nil) -> PolicyCurves {
        var curves = PolicyCurves(settings: attributes,
                                  omitted: settings.algorithm == .rloo ? ["value_loss", "clip_fraction"] : ["value_loss"])
        curves.detectors = evaluator.detectorRecord(config: detectorConfig)
        var progress = TrainingProgress(total: settings.steps)
        var seconds = ["rollout": 0.0, "scoring": 0.0, "update": 0.0, "eval": 0.0]
        func record(_ step: Int) {
            curves.evaluate(step: step, stage: stage, seconds: &seconds, log: log, evaluations: evaluations, evaluate)
        }
        record(0)
        let G = settings.groupSize
        for step in stride(from: 1, through: settings.steps, by: 1) {
            var t0 = monotonicSeconds()
            let prompts = trainPrompts.next(settings.promptsPerStep, world: world, rng: &rng).flatMap { Array(repeating: $0, count: G) }
            let contexts = prompts.map { world.context(for: $0) }
            let responses = sampler.generate(prompts: contexts, config: sampling, rng: &rng)
            let tRollout = monotonicSeconds() - t0
            t0 = monotonicSeconds()
            let scores = scorer(prompts, responses)
            let rewards = parShaped(scores: scores, prompts: prompts, contexts: contexts)
            let tScore = monotonicSeconds() - t0
            t0 = monotonicSeconds()
            let sequences = zip(contexts, responses).map { $0 + $1 }
            let starts = contexts.map(\.count)
            let old = reading.readout(policy, sequences: sequences, responseStart: starts, values: false, entropy: false)
            let ref = reading.readout(reference, sequences: sequences, responseStart: starts, values: false, entropy: false)
            let logRatios = zip(old.logp, ref.logp).map { zip($0, $1).map { $0 - $1 } }
            let batchKL = logRatios.reduce(0) { $0 + $1.reduce(0, +) } / Double(prompts.count)
            let adv = advantages(scores: rewards, logRatios: logRatios)
            var stats = UpdateStats()
            var optimizerSteps = 0
            switch settings.algorithm {
            case .grpo:
                var order = Array(sequences.indices)
                for _ in 0..<settings.epochs {
                    rng.shuffle(&order)
                    var lo = 0
                    while lo < order.count {
                        let rows = Array(order[lo..<min(order.count, lo + settings.minibatchSize)])
                        lo += settings.minibatchSize
                        var weight = [Double](repeating: 0, count: sequences.count)
                        for (r, w) in zip(rows, tokenWeights(lengths: rows.map { old.logp[$0].count }, count: rows.count)) { weight[r] = w }
                        let s = optimizerStep(rows: rows, chunk: rows.count, weight: weight, sequences: sequences, responseStart: starts,
                                              oldLogp: old.logp, refLogp: ref.logp, advantages: adv)
                        stats.add(s)
                        optimizerSteps += 1
                    }
                }
            case .rloo:
                let rows = Array(sequences.indices)
                let weight = tokenWeights(lengths: old.logp.map(\.count), count: rows.count)
                let s = optimizerStep(rows: rows, chunk: settings.minibatchSize, weight: weight, sequences: sequences,
                                      responseStart: starts, oldLogp: old.logp, refLogp: ref.logp, advantages: adv)
                stats = s
                optimizerSteps = 1
            }
            // The loss as a mean over optimizer steps; clipped share and ½(Δ log π)² over tokens.
            let policyLoss = stats.policyLoss / Double(optimizerSteps)
            let clipFraction = stats.clipped / max(1, stats.tokens), approxKL = stats.approxKL / max(1, stats.tokens)
            let tUpdate = monotonicSeconds() - t0
            seconds["rollout", default: 0] += tRollout
            seconds["scoring", default: 0] += tScore
            seconds["update", default: 0] += tUpdate

            let meanScore = Statistics.mean(scores)
            if let bad = nonFinite([("policy loss", policyLoss), ("reward", meanScore)]) {
                curves.nonFiniteStep = step
                log("\(stage) step \(step): non-finite \(bad); stopping")
                break
            }
            curves.trainStep.append(Int64(step))
            curves.policyLoss.append(policyLoss)
            curves.trainReward.append(meanScore); curves.trainKL.append(batchKL)
            if settings.algorithm == .grpo { curves.clipFraction.append(clipFraction) }
            curves.approxKL.append(approxKL)
            curves.klCoef.append(settings.klCoef)
            let meanLength = Double(responses.reduce(0) { $0 + $1.count }) / Double(responses.count)
            metrics?(step, [("reward", meanScore), ("kl", batchKL), ("length", meanLength), ("policy_loss", policyLoss),
                            ("clip_fraction", settings.algorithm == .grpo ? clipFraction : .nan), ("approx_kl", approxKL),
                            ("kl_coef", settings.klCoef)])
            if progress.due(step) {
                log(String(format: "%@ step %d/%d: reward %.3f kl %.3f length %.1f | loss %.4f approx_kl %.4f | rollout %.2fs score %.2fs update %.2fs",
                           stage, step, settings.steps, meanScore, batchKL, meanLength, policyLoss, approxKL,
                           tRollout, tScore, tUpdate)
                    + progress.eta(step))
            }
            if step % settings.evalEvery == 0 || step == settings.steps { record(step) }
        }
        curves.seconds = seconds
        return curves
    }
}
