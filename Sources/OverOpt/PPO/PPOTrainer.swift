// PPOTrainer.swift — PPO of a policy against a proxy reward, tracking proxy, gold and KL.
//
// What it is: the orchestration of the paper's PPO experiment (docs/paper.md §3): rollouts on
// training prompts, the proxy's score as the reward, GAE, clipped PPO updates, and every
// `eval_every` iterations an evaluation on held-out prompts of proxy, gold (and its
// components) and KL(π‖π_ref). The formulas are in PPOMath.swift.
// What it is not: a reader of files or configs; the caller passes the world, the base
// policy and a scorer, and writes the returned curves.
//
// Design choices (each affects what the curves mean):
// - Policy and value share one transformer: the policy is a copy of the base policy with a
//   value head (`HeadConfig(value: true)`) on the same trunk, its weights initialized to 0
//   so that V ≡ 0 at step 0 (the normalized reward's mean). Consequence: the value loss's
//   gradient flows into the trunk the policy uses, so `vf_coef` also moves the policy (and
//   the KL) — not only the critic. It is half the memory and compute of a separate critic.
// - The reference π_ref is a frozen copy of the base policy (a separate transformer).
// - Rollouts are drawn at temperature 0.7 and top-p 0.9 (the paper). With
//   `tempered_logprobs` (the default) every log-probability used here — old and new (the
//   PPO ratio), reference (the KL penalty and the KL estimates) and the entropy — is that
//   of softmax(z/T) (TRL divides the logits by the temperature), which makes the policy
//   gradient on-policy up to top-p; it is implemented by dividing the LM head's weights by
//   T around the forward and backward passes (logits = h·Wᵀ has no bias), see
//   `withLogprobTemperature`. With `tempered_logprobs = false` they are those of the raw
//   model (temperature 1, no top-p): the ratio π_θ/π_θold is then that of the policies being
//   trained, evaluated on samples from their tempered versions, and the KL reported is
//   Σ_t (log π − log π_ref) of the raw models on tempered samples; π's rollouts are not
//   samples of π, so the k1 mean is not a KL and can be slightly negative early on
//   (measured: −0.05 to −0.1 nats on training batches in the first steps while k2 and k3
//   are > 0).
// - Old log-probabilities and values are recomputed with one full forward pass after
//   sampling, so that old and new come from the same code path (the sampler's KV-cache
//   log-probabilities agree only up to rounding).
// - The reward of a response is its proxy score, normalized with the first rollout batch's
//   mean and standard deviation (fixed thereafter), optionally clipped, placed at its last
//   token; with kl_coef > 0 each token also gets −β·(log πold − log π_ref).
// - Responses that hit `max_new_tokens` without EOS are scored as they are.
// - Mitigations (RewardShaping.swift): `kl_estimator` k2 or k3 replaces the penalty's per-token
//   log-ratio by that estimator; `reward_shaping = "par"` draws `par_reference_samples`
//   responses per rollout prompt from the reference with the rollouts' sampling settings
//   (its own random stream, so the rollouts are those of the unshaped run up to the first
//   update), scores them with the same proxy and replaces the normalized score by PAR's
//   sigmoid; `kl_horizon` sets the adaptive controller's horizon.
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif
import OverOptEngine
import OverOptHDF5

/// PPO of a copy of the base policy against a reward.
public final class PPOTrainer {
    public let config: PPOConfig
    public let world: World
    /// The trained policy, with a value head on its trunk.
    public let policy: Transformer
    /// The frozen base policy.
    public let reference: Transformer
    let scorer: PPOScorer
    /// The policy's optimizer steps.
    let training: TrainingLoop
    let sampler: Sampler
    var rng: RNG
    /// The held-out evaluation (fixed prompts and sampling stream).
    var evaluator: PolicyEvaluator!
    /// The held-out prompts evaluated.
    public var evalPromptSet: [Prompt] { evaluator.prompts }
    var trainPrompts = TrainPromptStream()
    var klController: AdaptiveKLController?
    var rewardNorm: (mean: Double, std: Double)?
    /// PAR's reference responses: a sampler of the reference and its own random stream.
    var parSampler: Sampler?
    var parRNG: RNG
    /// The detectors' settings, when they run (Detectors.swift).
    let detectorConfig: DetectorConfig?

    /// - Parameters:
    ///   - basePolicy: the pretrained LM; it is copied, never modified.
    ///   - scorer: the reward of (prompt, response) pairs, e.g. a proxy's `score`.
    ///   - seed: seeds rollouts, minibatch order and the evaluation samples.
    ///   - detectors: the proxy's probe and the detectors' settings, to run them at every evaluation.
    public init(config: PPOConfig, world: World, basePolicy: Transformer, scorer: @escaping PPOScorer, seed: UInt64,
                detectors: (probe: DetectorProbe, config: DetectorConfig)? = nil) throws {
        try config.validate()
        if let problem = maxNewTokensProblem(section: "ppo", config.maxNewTokens, world: world) { throw problem }
        try checkPolicyFits(basePolicy, world: world)
        self.config = config
        self.world = world
        self.scorer = scorer
        detectorConfig = detectors?.config
        policy = Transformer(config: basePolicy.config, heads: HeadConfig(value: true))
        policy.copyParameters(from: basePolicy)
        policy.setTensor("vh_w", [Float](repeating: 0, count: policy.layout["vh_w"]!.count))
        policy.setTensor("vh_b", [Float](repeating: 0, count: policy.layout["vh_b"]!.count))
        reference = frozenReference(basePolicy)
        training = TrainingLoop(model: policy, learningRate: config.learningRate, weightDecay: config.weightDecay,
                                maxGradNorm: config.maxGradNorm)
        sampler = Sampler(model: policy)
        rng = RNG(seed: seed)
        let evalRNG = rng.split("ppo-eval")
        parRNG = rng.split("ppo-par")
        if config.shaping == .par { parSampler = Sampler(model: reference) }
        if let target = config.targetKL {
            klController = AdaptiveKLController(initial: config.klCoef, target: target, horizon: config.klHorizon ?? 10_000)
        }
        evaluator = PolicyEvaluator(world: world, reference: reference, scorer: scorer, sampling: sampling, reading: reading,
                                    rng: evalRNG, evalPrompts: config.evalPrompts, sampleTexts: config.sampleTexts,
                                    detectors: detectors)
    }

    var sampling: SamplingConfig {
        SamplingConfig(temperature: config.temperature, topP: config.topP, maxNewTokens: config.maxNewTokens,
                       eosToken: Tokenizer.eos)
    }

    /// The current β of the per-token KL penalty.
    public var klCoefficient: Double { klController?.value ?? config.klCoef }

    /// The next `count` training prompts, cycling through shuffled passes over the train split.
    func nextTrainPrompts(_ count: Int) -> [Prompt] { trainPrompts.next(count, world: world, rng: &rng) }

    // MARK: Read-outs

    /// How this run reads log-probabilities (tempered or raw; chunk size).
    var reading: LogprobReading {
        LogprobReading(temperature: config.temperature, tempered: config.temperedLogprobs, chunkSize: config.forwardBatchSize)
    }

    /// Runs `body` with `model`'s log-probabilities at the configured temperature
    /// (`LogprobReading.with`).
    func withLogprobTemperature<R>(_ model: Transformer, backward: Bool = false, _ body: () -> R) -> R {
        reading.with(model, backward: backward, body)
    }

    /// Response-token log-probabilities (and values, entropies) under `model` by the lean forward.
    func readout(_ model: Transformer, sequences: [[Int32]], responseStart: [Int],
                 values wantValues: Bool, entropy wantEntropy: Bool) -> ResponseReadout {
        reading.readout(model, sequences: sequences, responseStart: responseStart, values: wantValues, entropy: wantEntropy)
    }

    // MARK: Evaluation

    /// The shared held-out evaluation (PolicyEvaluation.swift) of the current policy.
    public func evaluate() -> PolicyEvaluation { evaluator.evaluate(policy: policy, sampler: sampler) }

    // MARK: Training

    /// Statistics of one PPO update.
    struct UpdateStats {
        var policyLoss = 0.0, valueLoss = 0.0, clipFraction = 0.0, approxKL = 0.0
    }

    /// One part of a minibatch on `model` (the policy or a replica): forward, clipped
    /// surrogate and value losses per response token, and their backward into `model`'s
    /// gradients, every term divided by the whole minibatch's token count `tokens`.
    /// Returns the summed losses, clipped-token count and ½(Δ log π)².
    func minibatchPart(model: Transformer, rows: [Int], tokens: Double, sequences: [[Int32]], responseStart: [Int],
                       oldLogp: [[Double]], oldValues: [[Double]], advantages: [[Double]], returns: [[Double]])
        -> (policyLoss: Double, valueLoss: Double, clipped: Double, approxKL: Double) {
        let wantEntropy = config.entropyCoef != 0
        let batch = TokenBatch(sequences: rows.map { sequences[$0] })
        let starts = rows.map { responseStart[$0] }
        let mask = responseLossMask(B: batch.B, T: batch.T, responseStart: starts, lengths: batch.lengths)
        var pl = 0.0, vl = 0.0, clipped = 0.0, akl = 0.0
        let lp = model.tokenLogProbs(batch, mask: mask, entropy: wantEntropy)
        let values = model.valueForward()
        var dlogp = [Float](repeating: 0, count: batch.B * batch.T)
        var dvalues = [Float](repeating: 0, count: batch.B * batch.T)
        var dentropy: [Float]? = wantEntropy ? [Float](repeating: 0, count: batch.B * batch.T) : nil
        for (b, row) in rows.enumerated() {
            for t in oldLogp[row].indices {
                let pos = b * batch.T + starts[b] - 1 + t
                let logp = Double(lp.logp[pos])
                let s = clippedSurrogate(logp: logp, oldLogp: oldLogp[row][t], advantage: advantages[row][t],
                                         clipRange: config.clipRange)
                let v = clippedValueLoss(value: Double(values[pos]), oldValue: oldValues[row][t],
                                         target: returns[row][t], clipRange: config.valueClipRange)
                pl += s.loss; vl += v.loss
                if s.clipped { clipped += 1 }
                let d = logp - oldLogp[row][t]
                akl += 0.5 * d * d
                dlogp[pos] = Float(s.gradLogp / tokens)
                dvalues[pos] = Float(config.vfCoef * v.gradValue / tokens)
                dentropy?[pos] = Float(-config.entropyCoef / tokens)
            }
        }
        dvalues.withUnsafeMutableBufferPointer { dv in
            model.backwardTokenLogProbs(dlogp: dlogp, dentropy: dentropy, dValues: dv.baseAddress!)
        }
        return (pl, vl, clipped, akl)
    }

    /// Several epochs of clipped PPO over shuffled minibatches of the rollout batch.
    func update(sequences: [[Int32]], responseStart: [Int], oldLogp: [[Double]], oldValues: [[Double]],
                advantages: [[Double]], returns: [[Double]]) -> UpdateStats {
        var stats = UpdateStats()
        var minibatches = 0
        var order = Array(sequences.indices)
        for _ in 0..<config.ppoEpochs {
            rng.shuffle(&order)
            var lo = 0
            while lo < order.count {
                let rows = Array(order[lo..<min(order.count, lo + config.minibatchSize)])
                lo += config.minibatchSize
                let tokens = Double(rows.reduce(0) { $0 + oldLogp[$1].count })
                var pl = 0.0, vl = 0.0, clipped = 0.0, akl = 0.0
                training.step {
                    withLogprobTemperature(policy, backward: true) {
                        let parts = policy.dataParallel(rows) { model, rows, _ in
                            self.minibatchPart(model: model, rows: rows, tokens: tokens, sequences: sequences, responseStart: responseStart,
                                               oldLogp: oldLogp, oldValues: oldValues, advantages: advantages, returns: returns)
                        }
                        for q in parts { pl += q.policyLoss; vl += q.valueLoss; clipped += q.clipped; akl += q.approxKL }
                    }
                }
                stats.policyLoss += pl / tokens; stats.valueLoss += vl / tokens
                stats.clipFraction += clipped / tokens; stats.approxKL += akl / tokens
                minibatches += 1
            }
        }
        let m = Double(max(1, minibatches))
        stats.policyLoss /= m; stats.valueLoss /= m; stats.clipFraction /= m; stats.approxKL /= m
        return stats
    }

    /// Runs `config.steps` PPO iterations with evaluations at 0, every `eval_every` and at
    /// the end. `log` receives a line about every `progressInterval` seconds and one per evaluation; `metrics` each
    /// iteration's training statistics, `evaluations` each evaluation's.
    public func run(log: (String) -> Void = { _ in }, metrics: StepMetrics? = nil,
                    evaluations: StepMetrics? = nil) -> PPOCurves {
        var curves = PPOCurves(config: config)
        curves.detectors = evaluator.detectorRecord(config: detectorConfig)
        var progress = TrainingProgress(total: config.steps)
        var seconds = ["rollout": 0.0, "scoring": 0.0, "update": 0.0, "eval": 0.0]
        func record(_ step: Int) {
            curves.evaluate(step: step, stage: "ppo", seconds: &seconds, log: log, evaluations: evaluations, evaluate)
        }
        record(0)
        for step in stride(from: 1, through: config.steps, by: 1) {
            // Rollout: sample one response per training prompt.
            var t0 = monotonicSeconds()
            let prompts = nextTrainPrompts(config.promptsPerStep)
            let contexts = prompts.map { world.context(for: $0) }
            let responses = sampler.generate(prompts: contexts, config: sampling, rng: &rng)
            let tRollout = monotonicSeconds() - t0
            // Scoring with the reward (proxy).
            t0 = monotonicSeconds()
            let scores = scorer(prompts, responses)
            // PAR: M reference responses per prompt (prompt-major) and their proxy scores.
            var referenceScores: [[Double]] = []
            if let refSampler = parSampler {
                let M = config.parReferenceSamples ?? 1
                let refPrompts = prompts.flatMap { repeatElement($0, count: M) }
                let refResponses = refSampler.generate(prompts: contexts.flatMap { repeatElement($0, count: M) }, config: sampling, rng: &parRNG)
                let flat = scorer(refPrompts, refResponses)
                referenceScores = prompts.indices.map { Array(flat[($0 * M)..<(($0 + 1) * M)]) }
            }
            let tScore = monotonicSeconds() - t0
            // Update: old log-probs and values, reference log-probs, rewards, GAE, epochs.
            t0 = monotonicSeconds()
            let sequences = zip(contexts, responses).map { $0 + $1 }
            let starts = contexts.map(\.count)
            let old = readout(policy, sequences: sequences, responseStart: starts, values: true, entropy: false)
            let ref = readout(reference, sequences: sequences, responseStart: starts, values: false, entropy: false)
            if rewardNorm == nil {
                if config.normalizeReward {
                    let (mean, sd) = Statistics.meanAndStandardDeviation(scores)
                    rewardNorm = (mean, sd > 1e-8 ? sd : 1)
                } else {
                    rewardNorm = (0, 1)
                }
                curves.rewardMean = rewardNorm!.mean; curves.rewardStd = rewardNorm!.std
            }
            let beta = klCoefficient
            var advantages: [[Double]] = [], returns: [[Double]] = []
            var batchKL = 0.0
            for i in prompts.indices {
                let ratios = zip(old.logp[i], ref.logp[i]).map { $0 - $1 }
                batchKL += ratios.reduce(0, +)
                let s = config.shaping == .par
                    ? parReward(score: scores[i], referenceScores: referenceScores[i], scale: rewardNorm!.std)
                    : normalizedScore(scores[i], mean: rewardNorm!.mean, std: rewardNorm!.std, clip: config.rewardClip)
                let rewards = config.klEstimator == nil ? perTokenRewards(score: s, logRatios: ratios, klCoef: beta)
                    : perTokenRewards(score: s, logRatios: ratios, klCoef: beta, estimator: config.penaltyEstimator)
                let g = generalizedAdvantages(rewards: rewards, values: old.values[i], gamma: config.gamma, lambda: config.lambda)
                advantages.append(g.advantages); returns.append(g.returns)
            }
            batchKL /= Double(prompts.count)
            if config.whitenAdvantages {
                let flat = whiten(advantages.flatMap { $0 })
                var k = 0
                for i in advantages.indices {
                    for t in advantages[i].indices { advantages[i][t] = flat[k]; k += 1 }
                }
            }
            let stats = update(sequences: sequences, responseStart: starts, oldLogp: old.logp, oldValues: old.values,
                               advantages: advantages, returns: returns)
            klController?.update(measuredKL: batchKL, samples: prompts.count)
            let tUpdate = monotonicSeconds() - t0
            seconds["rollout", default: 0] += tRollout
            seconds["scoring", default: 0] += tScore
            seconds["update", default: 0] += tUpdate

            let meanScore = Statistics.mean(scores)
            if let bad = nonFinite([("policy loss", stats.policyLoss), ("value loss", stats.valueLoss), ("reward", meanScore)]) {
                curves.nonFiniteStep = step
                log("ppo step \(step): non-finite \(bad); stopping")
                break
            }
            curves.trainStep.append(Int64(step))
            curves.policyLoss.append(stats.policyLoss); curves.valueLoss.append(stats.valueLoss)
            curves.trainReward.append(meanScore); curves.trainKL.append(batchKL)
            curves.clipFraction.append(stats.clipFraction); curves.approxKL.append(stats.approxKL)
            curves.klCoef.append(beta)
            let meanLength = Double(responses.reduce(0) { $0 + $1.count }) / Double(responses.count)
            metrics?(step, [("reward", meanScore), ("kl", batchKL), ("length", meanLength), ("policy_loss", stats.policyLoss),
                            ("value_loss", stats.valueLoss), ("clip_fraction", stats.clipFraction), ("approx_kl", stats.approxKL),
                            ("kl_coef", beta)])
            if progress.due(step) {
                log(String(format: "ppo step %d/%d: reward %.3f kl %.3f length %.1f | pl %.4f vl %.4f clip %.3f approx_kl %.4f | rollout %.2fs score %.2fs update %.2fs",
                           step, config.steps, meanScore, batchKL, meanLength, stats.policyLoss, stats.valueLoss,
                           stats.clipFraction, stats.approxKL, tRollout, tScore, tUpdate)
                    + progress.eta(step))
            }
            if step % config.evalEvery == 0 || step == config.steps { record(step) }
        }
        curves.seconds = seconds
        return curves
    }
}
