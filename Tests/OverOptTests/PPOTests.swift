// PPOTests.swift — PPO's math against hand computations, finite differences and exact KLs;
// the trainer's step-0 invariants, its curves file, and a toy reward it must raise.

import Foundation
import Testing
import TestSupport
import OverOptEngine
import OverOptHDF5
@testable import OverOpt

// MARK: Math

@Test func perTokenRewardsPutTheScoreAtTheLastTokenAndTheKLPenaltyEverywhere() {
    let r = perTokenRewards(score: 2, logRatios: [0.1, -0.2, 0.3], klCoef: 0.5)
    #expect(zip(r, [-0.05, 0.1, 1.85]).allSatisfy { abs($0 - $1) < 1e-12 })
    #expect(perTokenRewards(score: 1.5, logRatios: [0.4, 0.4], klCoef: 0) == [0, 1.5])
    #expect(normalizedScore(3, mean: 1, std: 0.5, clip: nil) == 4)
    #expect(normalizedScore(3, mean: 1, std: 0.5, clip: 2.5) == 2.5)
    #expect(normalizedScore(-3, mean: 1, std: 0.5, clip: 2.5) == -2.5)
}

@Test func gaeMatchesAHandComputation() {
    // γ = 0.9, λ = 0.8, V = (0.5, 0.2, 0.4), r = (0, 0, 1), V_3 = 0:
    // δ2 = 1 − 0.4 = 0.6                  A2 = 0.6
    // δ1 = 0.9·0.4 − 0.2 = 0.16           A1 = 0.16 + 0.72·0.6 = 0.592
    // δ0 = 0.9·0.2 − 0.5 = −0.32          A0 = −0.32 + 0.72·0.592 = 0.10624
    let g = generalizedAdvantages(rewards: [0, 0, 1], values: [0.5, 0.2, 0.4], gamma: 0.9, lambda: 0.8)
    let expectedA = [0.10624, 0.592, 0.6], expectedR = [0.60624, 0.792, 1.0]
    for t in 0..<3 {
        #expect(abs(g.advantages[t] - expectedA[t]) < 1e-12)
        #expect(abs(g.returns[t] - expectedR[t]) < 1e-12)
    }
    // γ = λ = 1 and V = 0: the advantage is the reward-to-go.
    let mc = generalizedAdvantages(rewards: [1, -2, 3], values: [0, 0, 0], gamma: 1, lambda: 1)
    #expect(mc.advantages == [2, 1, 3])
    // λ = 0: one-step TD errors.
    let td = generalizedAdvantages(rewards: [0, 1], values: [0.3, 0.5], gamma: 1, lambda: 0)
    #expect(abs(td.advantages[0] - 0.2) < 1e-12 && abs(td.advantages[1] - 0.5) < 1e-12)
}

@Test func whiteningGivesZeroMeanUnitVariance() {
    let w = whiten([1, 2, 3, 4, 10])
    let mean = w.reduce(0, +) / 5
    let variance = w.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 5
    #expect(abs(mean) < 1e-12 && abs(variance - 1) < 1e-6)
}

/// Central finite difference of f at x.
func finiteDifference(_ f: (Double) -> Double, at x: Double, h: Double = 1e-6) -> Double {
    (f(x + h) - f(x - h)) / (2 * h)
}

@Test func clippedSurrogateGradientMatchesFiniteDifferences() {
    let eps = 0.2, old = -1.3
    // (log-ratio, advantage, expected clipped): inside the trust region; beyond it on the
    // side the clip binds (gradient 0); beyond it on the side it does not.
    let cases: [(Double, Double, Bool)] = [
        (0.05, 1.5, false), (-0.1, -0.7, false),
        (0.4, 1.5, true), (-0.5, -0.7, true),
        (-0.5, 1.5, false), (0.4, -0.7, false),
    ]
    for (d, a, expectClipped) in cases {
        let s = clippedSurrogate(logp: old + d, oldLogp: old, advantage: a, clipRange: eps)
        let fd = finiteDifference({ clippedSurrogate(logp: $0, oldLogp: old, advantage: a, clipRange: eps).loss }, at: old + d)
        #expect(s.clipped == expectClipped, "d \(d) A \(a)")
        #expect(abs(s.gradLogp - fd) < 1e-6, "d \(d) A \(a): analytic \(s.gradLogp) vs numeric \(fd)")
        if expectClipped { #expect(s.gradLogp == 0) }
        #expect(abs(s.loss + min(exp(d) * a, min(1 + eps, max(1 - eps, exp(d))) * a)) < 1e-12)
    }
}

@Test func clippedValueLossGradientMatchesFiniteDifferences() {
    let eps = 0.2, old = 0.5
    // (value, target, expected clipped); v_clip = 0.5 + clip(v − 0.5, ±0.2).
    let cases: [(Double, Double, Bool)] = [
        (0.6, 1.0, false),   // inside the clip range: v_clip = v
        (0.9, 2.0, true),    // beyond it toward the target: (0.7 − 2)² > (0.9 − 2)², gradient 0
        (0.9, 0.0, false),   // beyond it away from the target: (0.9)² > (0.7)²
        (1.2, 0.8, false),   // beyond it and past the target: (0.4)² > (0.1)²
        (0.1, 0.9, false),   // below it, away from the target: (0.8)² > (0.6)²
    ]
    for (v, r, expectClipped) in cases {
        let l = clippedValueLoss(value: v, oldValue: old, target: r, clipRange: eps)
        let fd = finiteDifference({ clippedValueLoss(value: $0, oldValue: old, target: r, clipRange: eps).loss }, at: v)
        #expect(l.clipped == expectClipped, "v \(v) R \(r)")
        #expect(abs(l.gradValue - fd) < 1e-6, "v \(v) R \(r): analytic \(l.gradValue) vs numeric \(fd)")
        if expectClipped { #expect(l.gradValue == 0) } else { #expect(abs(l.gradValue - (v - r)) < 1e-12) }
        let vClip = old + min(eps, max(-eps, v - old))
        #expect(abs(l.loss - 0.5 * max((v - r) * (v - r), (vClip - r) * (vClip - r))) < 1e-12)
    }
    // The clipped region, where the gradient is 0: v moved beyond the range past the target
    // so that the clipped value is farther from it (old 0.5, v 1.0 → v_clip 0.7, R 0.95).
    let c = clippedValueLoss(value: 1.0, oldValue: old, target: 0.95, clipRange: eps)
    #expect(c.clipped && c.gradValue == 0)
    #expect(abs(finiteDifference({ clippedValueLoss(value: $0, oldValue: old, target: 0.95, clipRange: eps).loss }, at: 1.0)) < 1e-6)
    // Unclipped beyond the range: gradient v − R.
    let u = clippedValueLoss(value: 1.2, oldValue: old, target: 0.2, clipRange: eps)
    #expect(!u.clipped && abs(u.gradValue - 1.0) < 1e-12)
}

/// Monte-Carlo means and standard errors of k1, k2, k3 for sequences of `length` i.i.d.
/// tokens drawn from p, against q.
func monteCarloKL(p: [Double], q: [Double], length: Int, samples: Int, seed: UInt64)
    -> (mean: [Double], sem: [Double]) {
    var rng = RNG(seed: seed)
    var sum = [0.0, 0.0, 0.0], sumSq = [0.0, 0.0, 0.0]
    for _ in 0..<samples {
        let ratios = (0..<length).map { _ -> Double in
            let x = rng.categorical(p)
            return log(p[x]) - log(q[x])
        }
        let k = klEstimates(logRatios: ratios)
        for (j, v) in [k.k1, k.k2, k.k3].enumerated() { sum[j] += v; sumSq[j] += v * v }
    }
    let n = Double(samples)
    let mean = sum.map { $0 / n }
    let sem = (0..<3).map { (max(0, sumSq[$0] / n - mean[$0] * mean[$0]) / n).squareRoot() }
    return (mean, sem)
}

@Test func klEstimatorsMatchTheExactKLOfCategoricals() {
    let p = [0.5, 0.2, 0.15, 0.1, 0.05], q = [0.2, 0.2, 0.2, 0.2, 0.2]
    let exact = zip(p, q).reduce(0) { $0 + $1.0 * log($1.0 / $1.1) }   // per token
    let length = 3
    let (mean, sem) = monteCarloKL(p: p, q: q, length: length, samples: 200_000, seed: 11)
    let target = Double(length) * exact
    // k1 and k3 are unbiased: within 4 standard errors of the sequence KL.
    #expect(abs(mean[0] - target) < 4 * sem[0], "k1 \(mean[0]) ± \(sem[0]) vs \(target)")
    #expect(abs(mean[2] - target) < 4 * sem[2], "k3 \(mean[2]) ± \(sem[2]) vs \(target)")
    // k3 has lower variance than k1 here; k2 is biased but non-negative.
    #expect(sem[2] < sem[0])
    #expect(mean[1] > 0)
    // For nearby distributions k2 agrees with KL to second order.
    let qNear = [0.46, 0.22, 0.15, 0.11, 0.06]
    let exactNear = zip(p, qNear).reduce(0) { $0 + $1.0 * log($1.0 / $1.1) }
    let near = monteCarloKL(p: p, q: qNear, length: 1, samples: 200_000, seed: 12)
    #expect(abs(near.mean[1] - exactNear) < 0.1 * exactNear + 4 * near.sem[1])
    #expect(abs(near.mean[2] - exactNear) < 4 * near.sem[2])
    // A response identical under both models has every estimator exactly 0.
    #expect(klEstimates(logRatios: [0, 0, 0]) == KLEstimates(k1: 0, k2: 0, k3: 0))
}

@Test func adaptiveKLControllerMovesBetaTowardTheTarget() {
    var c = AdaptiveKLController(initial: 0.1, target: 6)
    c.update(measuredKL: 12, samples: 1000)          // error clipped to +0.2
    #expect(abs(c.value - 0.1 * (1 + 0.1 * 0.2 * 0.1)) < 1e-15)
    var d = AdaptiveKLController(initial: 0.1, target: 6)
    d.update(measuredKL: 3, samples: 1000)           // error −0.5 clipped to −0.2
    #expect(d.value < 0.1)
}

// MARK: Trainer

/// A tiny random-initialized language model over the world's vocabulary.
func tinyPolicy(seed: UInt64 = 3) -> Transformer {
    tinyTransformer(TransformerConfig(vocabSize: testWorld.vocabSize, contextLength: 64, width: 16, layers: 1, heads: 2),
                    seed: seed, weightScale: nil)
}

/// The toy reward: the number of times `token` occurs in the response.
func tokenCountScorer(_ token: Int32) -> PPOScorer {
    { _, responses in responses.map { Double($0.filter { $0 == token }.count) } }
}

@Test func configDecodesDefaultsAndValidationNamesTheKey() throws {
    let d = try JSONDecoder().decode(PPOConfig.self, from: Data(#"{"learning_rate": 1e-4, "target_kl": 6, "kl_coef": 0.05}"#.utf8))
    var expected = PPOConfig()
    expected.learningRate = 1e-4; expected.targetKL = 6; expected.klCoef = 0.05
    #expect(d == expected)
    #expect(PPOConfig().klCoef == 0 && PPOConfig().temperature == 0.7 && PPOConfig().topP == 0.9)
    var bad = PPOConfig()
    bad.minibatchSize = 100
    #expect(throws: ConfigError.self) { try bad.validate() }
    do { try bad.validate() } catch let e as ConfigError { #expect(e.problems.map(\.key) == ["ppo.minibatch_size"]) }
    bad = PPOConfig()
    bad.targetKL = 4
    do { try bad.validate(); Issue.record("target_kl with kl_coef 0 must not validate") } catch let e as ConfigError { #expect(e.problems.map(\.key) == ["ppo.kl_coef"]) }
    bad = PPOConfig()
    bad.maxNewTokens = 60
    #expect(throws: ConfigError.self) {
        _ = try PPOTrainer(config: bad, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(5), seed: 0)
    }
}

@Test func logRatioToTheReferenceIsExactlyZeroAtStepZero() throws {
    var config = PPOConfig()
    config.evalPrompts = 24; config.maxNewTokens = 12; config.sampleTexts = 2
    let base = tinyPolicy()
    let trainer = try PPOTrainer(config: config, world: testWorld, basePolicy: base, scorer: tokenCountScorer(5), seed: 1)
    let e = trainer.evaluate()
    #expect(e.kl == KLEstimates(k1: 0, k2: 0, k3: 0))
    #expect(e.length > 1 && e.entropy > 0 && e.samples.count == 2)
    // Per token, not only on average, and the value head starts at exactly 0.
    let prompts = Array(testWorld.trainPrompts.prefix(8))
    let contexts = prompts.map { testWorld.context(for: $0) }
    var rng = RNG(seed: 2)
    let responses = Sampler(model: base).generate(prompts: contexts, config: trainer.sampling, rng: &rng)
    let seqs = zip(contexts, responses).map { $0 + $1 }
    let pol = trainer.readout(trainer.policy, sequences: seqs, responseStart: contexts.map(\.count), values: true, entropy: false)
    let ref = trainer.readout(trainer.reference, sequences: seqs, responseStart: contexts.map(\.count), values: false, entropy: false)
    #expect(pol.logp == ref.logp)
    #expect(pol.values.allSatisfy { $0.allSatisfy { $0 == 0 } })
    #expect(pol.logp.map(\.count) == responses.map(\.count))
}

@Test func ppoRaisesAToyRewardAndWritesItsCurves() throws {
    let token = Int32(40)
    var config = PPOConfig()
    config.steps = 24
    config.promptsPerStep = 32
    config.minibatchSize = 16
    config.ppoEpochs = 2
    config.maxNewTokens = 8
    config.temperature = 1
    config.topP = 1
    config.learningRate = 1e-2
    config.evalEvery = 12
    config.evalPrompts = 64
    config.sampleTexts = 2
    let trainer = try PPOTrainer(config: config, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(token), seed: 4)
    var lines: [String] = []
    let curves = trainer.run { lines.append($0) }
    #expect(curves.step == [0, 12, 24])
    #expect(curves.trainStep.count == 24 && lines.contains { $0.hasPrefix("ppo step 24/24") })
    #expect(curves.kl[0] == 0)
    // The count of the token rises well above its chance level (≈ 8/188 ≈ 0.04) …
    let first = curves.trainReward.prefix(4).reduce(0, +) / 4, last = curves.trainReward.suffix(4).reduce(0, +) / 4
    #expect(last > first + 1, "train reward \(first) → \(last)")
    #expect(curves.proxy.last! > curves.proxy[0] + 1, "held-out reward \(curves.proxy)")
    // … and the policy moved away from the reference to do it.
    #expect(curves.kl.last! > 0.5 && curves.klK3.last! > 0)
    #expect(curves.sampleText.count == 6 && curves.sampleStep == [0, 0, 12, 12, 24, 24])

    // The curves file.
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("ppo-\(UUID().uuidString).h5").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let file = try H5File.create(path)
    let group = try file.root.createGroup("ppo/toy")
    try curves.write(to: group)
    #expect(try group.readInt64s("step").values == [0, 12, 24])
    #expect(try group.readDoubles("kl_k3").values == curves.klK3)
    #expect(try group.readDoubles("gold_tone").values.count == 3)
    #expect(try group.readStrings("sample_text") == curves.sampleText)
    #expect(try group.doubleAttribute("learning_rate") == 1e-2)
    #expect(try group.readDoubles("clip_fraction").values.count == 24)
}

@Test func temperedLogprobsAreThoseOfTheTemperedSoftmaxWithExactGradients() throws {
    var config = PPOConfig()
    config.temperature = 0.5
    config.temperedLogprobs = true
    let base = tinyPolicy()
    let trainer = try PPOTrainer(config: config, world: testWorld, basePolicy: base, scorer: tokenCountScorer(5), seed: 1)
    let policy = trainer.policy
    let head = policy.tensor("lm_head_w")
    let p = testWorld.trainPrompts[3]
    let seq = testWorld.context(for: p) + [40, 41, 42, Tokenizer.eos]
    let start = testWorld.context(for: p).count
    let tempered = trainer.readout(policy, sequences: [seq], responseStart: [start], values: false, entropy: false).logp[0]
    #expect(policy.tensor("lm_head_w") == head, "the head is restored exactly")
    // Against log softmax(z/T) of the raw logits.
    let batch = TokenBatch(sequences: [seq])
    policy.forward(batch)
    let z = policy.lmLogits(), V = testWorld.vocabSize
    for (i, lp) in tempered.enumerated() {
        let row = z + (start - 1 + i) * V
        let scaled = (0..<V).map { Double(row[$0]) / 0.5 }
        let mx = scaled.max()!
        let lse = mx + log(scaled.reduce(0) { $0 + exp($1 - mx) })
        #expect(abs(lp - (scaled[Int(seq[start + i])] - lse)) < 1e-4)
    }
    // ∂/∂W of Σ_t tempered log-prob against central differences on the raw head weights.
    let mask = responseLossMask(B: 1, T: batch.T, responseStart: [start], lengths: batch.lengths)
    func objective() -> Double {
        trainer.readout(policy, sequences: [seq], responseStart: [start], values: false, entropy: false).logp[0].reduce(0, +)
    }
    policy.zeroGrad()
    trainer.withLogprobTemperature(policy, backward: true) {
        _ = policy.tokenLogProbs(batch, mask: mask)
        policy.backwardTokenLogProbs(dlogp: mask)
    }
    let offset = policy.layout["lm_head_w"]!.offset
    let analyticHead = (0..<head.count).map { Double(policy.grads.ptr[offset + $0]) }
    for k in [Int(seq[start]) * 16 + 3, 7 * 16 + 1, Int(Tokenizer.eos) * 16 + 10] {
        let analytic = analyticHead[k]
        let w = head[k], h: Float = 1e-2
        var plus = head; plus[k] = w + h
        policy.setTensor("lm_head_w", plus)
        let fPlus = objective()
        var minus = head; minus[k] = w - h
        policy.setTensor("lm_head_w", minus)
        let fMinus = objective()
        policy.setTensor("lm_head_w", head)
        let numeric = (fPlus - fMinus) / Double(2 * h)
        #expect(abs(analytic - numeric) < 0.02 * max(1, abs(numeric)), "W[\(k)]: \(analytic) vs \(numeric)")
    }
}

@Test func aRunOfZeroStepsHasOnlyTheStepZeroEvaluationAndStillWrites() throws {
    var config = PPOConfig()
    config.steps = 0; config.evalPrompts = 8; config.sampleTexts = 0; config.maxNewTokens = 6
    let trainer = try PPOTrainer(config: config, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(5), seed: 2)
    let curves = trainer.run()
    #expect(curves.step == [0] && curves.kl == [0] && curves.trainStep.isEmpty && curves.sampleText.isEmpty)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("ppo-\(UUID().uuidString).h5").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let group = try H5File.create(path).root.createGroup("ppo/empty")
    try curves.write(to: group)
    #expect(try group.readInt64s("train_step").values.isEmpty)
    #expect(try group.readStrings("sample_text").isEmpty)
}

@Test func adaptiveKLCoefficientIsUsedAndRecordedPerStep() throws {
    var config = PPOConfig()
    config.steps = 4; config.promptsPerStep = 16; config.minibatchSize = 8; config.ppoEpochs = 1
    config.maxNewTokens = 6; config.evalPrompts = 8; config.evalEvery = 4; config.sampleTexts = 0
    config.klCoef = 0.1; config.targetKL = 100
    let trainer = try PPOTrainer(config: config, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(5), seed: 3)
    let curves = trainer.run()
    // KL far below the target: β shrinks by the clipped factor (1 − 0.1·0.2·16/10⁴) each step.
    #expect(curves.klCoef.count == 4 && curves.klCoef[0] == 0.1)
    for i in 1..<4 { #expect(abs(curves.klCoef[i] - curves.klCoef[i - 1] * (1 - 0.1 * 0.2 * 16 / 10_000)) < 1e-12) }
}

@Suite(.serialized) struct PPODeterminismTests {
    /// Minibatch steps run in two halves on replicas (and rollouts in decode groups): a short
    /// run gives bitwise the same curves at 1 and 2 threads.
    @Test func ppoCurvesDoNotDependOnTheThreadCount() throws {
        var config = PPOConfig()
        config.steps = 3
        config.promptsPerStep = 32
        config.minibatchSize = 16
        config.ppoEpochs = 2
        config.maxNewTokens = 8
        config.learningRate = 1e-2
        config.evalEvery = 3
        config.evalPrompts = 16
        let previous = engineThreadCount()
        defer { setEngineThreads(previous) }
        var runs: [PPOCurves] = []
        for threads in [1, 2] {
            setEngineThreads(threads)
            let trainer = try PPOTrainer(config: config, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(40), seed: 9)
            runs.append(trainer.run())
        }
        #expect(runs[0].trainReward == runs[1].trainReward)
        #expect(runs[0].kl == runs[1].kl && runs[0].proxy == runs[1].proxy)
        #expect(runs[0].policyLoss == runs[1].policyLoss)
    }
}
