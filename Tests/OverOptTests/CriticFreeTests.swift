// CriticFreeTests.swift — GRPO's and RLOO's math against hand computations and finite
// differences; each raises a toy reward on a tiny model, writes the shared curves, and gives
// the same curves at 1 and 2 threads.

import Foundation
import Testing
import OverOptEngine
import OverOptHDF5
@testable import OverOpt

// MARK: Math

@Test func groupRelativeAdvantagesMatchHandComputedGroups() {
    // Group (1, 2, 3, 6): mean 3, population variance (4 + 1 + 0 + 9)/4 = 3.5.
    // Group (5, 5, 5, 5): all equal, so every advantage is 0 (not 0/0).
    let r: [Double] = [1, 2, 3, 6, 5, 5, 5, 5]
    let a = groupRelativeAdvantages(r, groupSize: 4, scaleByStd: true)
    let sd = 3.5.squareRoot()
    let expected = [-2 / sd, -1 / sd, 0, 3 / sd, 0, 0, 0, 0]
    #expect(zip(a, expected).allSatisfy { abs($0 - $1) < 1e-12 }, "\(a)")
    // Dr. GRPO (Liu et al. 2025): centred, not scaled.
    #expect(groupRelativeAdvantages(r, groupSize: 4, scaleByStd: false) == [-2, -1, 0, 3, 0, 0, 0, 0])
    // Groups of 2: ±1 whatever the gap.
    #expect(groupRelativeAdvantages([0, 10, 3, 1], groupSize: 2, scaleByStd: true) == [-1, 1, 1, -1])
}

@Test func leaveOneOutAdvantagesMatchHandComputedGroups() {
    // Groups (1, 2, 3) and (6, 4, 0): each baseline is the mean of the other two.
    let a = leaveOneOutAdvantages([1, 2, 3, 6, 4, 0], groupSize: 3)
    let expected: [Double] = [1 - 2.5, 2 - 2, 3 - 1.5, 6 - 2, 4 - 3, 0 - 5]
    #expect(zip(a, expected).allSatisfy { abs($0 - $1) < 1e-12 }, "\(a)")
    // (1, 2, 3, 6): baselines 11/3, 10/3, 3, 2, i.e. k/(k−1)·(r − mean).
    let b = leaveOneOutAdvantages([1, 2, 3, 6], groupSize: 4)
    #expect(zip(b, [-8.0 / 3, -4.0 / 3, 0, 4]).allSatisfy { abs($0 - $1) < 1e-12 }, "\(b)")
    #expect(klPenalizedReward(score: 2, logRatios: [0.1, 0.3, -0.2], klCoef: 0.5) == 2 - 0.5 * (0.1 + 0.3 - 0.2))
}

@Test func klPenaltyEstimatorsAndTheirGradientsMatchFiniteDifferences() {
    for estimator in KLPenaltyEstimator.allCases {
        for l in [-0.8, -0.1, 0.0, 0.3, 1.2] {
            let g = estimator.value(logRatio: l).gradLogp
            let fd = finiteDifference({ estimator.value(logRatio: $0).value }, at: l)
            #expect(abs(g - fd) < 1e-6, "\(estimator) at \(l): \(g) vs \(fd)")
        }
        #expect(estimator.value(logRatio: 0).value == 0)
    }
    // k3 = e^{−l} − 1 + l ≥ 0 and k2 = ½l².
    #expect(abs(KLPenaltyEstimator.k3.value(logRatio: 0.5).value - (exp(-0.5) - 1 + 0.5)) < 1e-15)
    #expect(abs(KLPenaltyEstimator.k2.value(logRatio: -0.4).value - 0.08) < 1e-15)
}

@Test func grpoTokenLossGradientMatchesFiniteDifferencesClippedAndUnclipped() {
    let old = -1.1, ref = -0.9
    // (log-ratio to old, advantage, β): inside the trust region, where the clip binds, with and without KL.
    let cases: [(Double, Double, Double, Bool)] = [
        (0.05, 1.3, 0, false), (0.05, 1.3, 0.1, false), (0.5, 1.3, 0.1, true), (-0.5, -0.6, 0.04, true), (-0.5, 1.3, 0.04, false),
    ]
    for (d, a, beta, clipped) in cases {
        for estimator in KLPenaltyEstimator.allCases {
            let f = { (lp: Double) in
                grpoTokenLoss(logp: lp, oldLogp: old, refLogp: ref, advantage: a, clipRange: 0.2, klCoef: beta, estimator: estimator)
            }
            let r = f(old + d)
            #expect(r.clipped == clipped)
            let fd = finiteDifference({ f($0).loss }, at: old + d)
            #expect(abs(r.gradLogp - fd) < 1e-6, "Δ \(d) A \(a) β \(beta) \(estimator): \(r.gradLogp) vs \(fd)")
        }
    }
    // REINFORCE: ∂(−A Σ logπ)/∂logπ_t = −A.
    let rf = reinforceLoss(logps: [-1, -2, -0.5], advantage: 0.7)
    #expect(abs(rf.loss - 0.7 * 3.5) < 1e-12 && rf.gradLogp == -0.7)
    // Token weights: per-response mean, or a constant (Dr. GRPO).
    #expect(grpoTokenWeight(length: 5, responses: 4, maxTokens: 50, lengthNormalization: true) == 1.0 / 20)
    #expect(grpoTokenWeight(length: 5, responses: 4, maxTokens: 50, lengthNormalization: false) == 1.0 / 200)
}

@Test func criticFreeConfigsDecodeDefaultsAndNameTheBadKey() throws {
    let g = try JSONDecoder().decode(GRPOConfig.self, from: Data(#"{"group_size": 8, "kl_estimator": "k2", "scale_rewards": false}"#.utf8))
    #expect(g.groupSize == 8 && g.klEstimator == .k2 && !g.scaleRewards && g.epochs == 4)
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(GRPOConfig.self, from: Data(#"{"kl_estimator": "k4"}"#.utf8)) }
    var bad = GRPOConfig()
    bad.groupSize = 1
    do { try bad.validate(); Issue.record("group_size 1 must not validate") } catch let e as ConfigError {
        #expect(e.description.hasPrefix("invalid value for 'grpo.group_size': expected in 2...256 (got 1)"))
    }
    var r = RLOOConfig()
    r.minibatchSize = 65
    do { try r.validate(); Issue.record("minibatch_size 65 > 64 rows must not validate") } catch let e as ConfigError {
        #expect(e.description.hasPrefix("invalid value for 'rloo.minibatch_size': expected ≤ prompts_per_step × k (64) (got 65)"))
    }
    r = RLOOConfig()
    r.k = 1
    do { try r.validate(); Issue.record("k 1 must not validate") } catch let e as ConfigError { #expect(e.problems.map(\.key) == ["rloo.k"]) }
}

// MARK: Trainers

func toyGRPOConfig() -> GRPOConfig {
    var c = GRPOConfig()
    c.steps = 12; c.promptsPerStep = 8; c.groupSize = 4; c.minibatchSize = 16; c.epochs = 2
    c.maxNewTokens = 8; c.temperature = 1; c.topP = 1; c.learningRate = 1e-2
    c.evalEvery = 6; c.evalPrompts = 32; c.sampleTexts = 2
    return c
}

func toyRLOOConfig() -> RLOOConfig {
    var c = RLOOConfig()
    c.steps = 12; c.promptsPerStep = 8; c.k = 4; c.minibatchSize = 16
    c.maxNewTokens = 8; c.temperature = 1; c.topP = 1; c.learningRate = 3e-2
    c.evalEvery = 6; c.evalPrompts = 32; c.sampleTexts = 2
    return c
}

@Test func grpoRaisesAToyRewardAndWritesTheSharedCurves() throws {
    let trainer = try CriticFreeTrainer(config: toyGRPOConfig(), world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(40), seed: 4)
    #expect(trainer.evaluate().kl == KLEstimates(k1: 0, k2: 0, k3: 0))
    var lines: [String] = []
    let curves = trainer.run { lines.append($0) }
    #expect(curves.step == [0, 6, 12] && curves.trainStep.count == 12 && lines.contains { $0.hasPrefix("grpo step 12/12") })
    let first = curves.trainReward.prefix(3).reduce(0, +) / 3, last = curves.trainReward.suffix(3).reduce(0, +) / 3
    #expect(last > first + 0.5, "train reward \(first) → \(last)")
    #expect(curves.proxy.last! > curves.proxy[0] + 0.5, "held-out reward \(curves.proxy)")
    #expect(curves.kl.last! > 0.1 && curves.klK3.last! > 0)
    #expect(curves.clipFraction.count == 12 && curves.valueLoss.isEmpty)

    let path = FileManager.default.temporaryDirectory.appendingPathComponent("grpo-\(UUID().uuidString).h5").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let file = try H5File.create(path)
    let group = try file.root.createGroup("grpo/toy")
    try curves.write(to: group)
    #expect(!group.contains("value_loss") && group.contains("clip_fraction"))
    #expect(try group.intAttribute("group_size") == 4 && (try group.stringAttribute("kl_estimator")) == "k3")
    let back = try PolicyCurves.read(from: group, settings: curves.settings, omitted: ["value_loss"])
    var expected = curves
    expected.nonFiniteStep = nil
    #expect(back == expected)
    file.close()
}

@Test func rlooRaisesAToyRewardWithoutClipping() throws {
    let trainer = try CriticFreeTrainer(config: toyRLOOConfig(), world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(40), seed: 5)
    let curves = trainer.run()
    let first = curves.trainReward.prefix(3).reduce(0, +) / 3, last = curves.trainReward.suffix(3).reduce(0, +) / 3
    #expect(last > first + 0.5, "train reward \(first) → \(last)")
    #expect(curves.proxy.last! > curves.proxy[0] + 0.5, "held-out reward \(curves.proxy)")
    #expect(curves.clipFraction.isEmpty && curves.approxKL.allSatisfy { $0 < 1e-9 })   // on-policy: one step per batch
}

@Test func rlooKLPenaltyInTheRewardHoldsThePolicyCloser() throws {
    var c = toyRLOOConfig()
    c.steps = 8; c.evalEvery = 8
    let free = try CriticFreeTrainer(config: c, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(40), seed: 5).run()
    c.klCoef = 2
    let held = try CriticFreeTrainer(config: c, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(40), seed: 5).run()
    #expect(held.kl.last! < free.kl.last!, "KL with β = 2: \(held.kl.last!), without: \(free.kl.last!)")
}

@Suite(.serialized) struct CriticFreeDeterminismTests {
    @Test func grpoAndRLOOCurvesDoNotDependOnTheThreadCount() throws {
        var g = toyGRPOConfig()
        g.steps = 2; g.evalEvery = 2; g.evalPrompts = 16
        var r = toyRLOOConfig()
        r.steps = 2; r.evalEvery = 2; r.evalPrompts = 16
        let previous = engineThreadCount()
        defer { setEngineThreads(previous) }
        var runs: [[PolicyCurves]] = []
        for threads in [1, 2] {
            setEngineThreads(threads)
            runs.append([
                try CriticFreeTrainer(config: g, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(40), seed: 9).run(),
                try CriticFreeTrainer(config: r, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(40), seed: 9).run(),
            ])
        }
        for i in 0..<2 {
            #expect(runs[0][i].trainReward == runs[1][i].trainReward)
            #expect(runs[0][i].kl == runs[1][i].kl && runs[0][i].proxy == runs[1][i].proxy)
            #expect(runs[0][i].policyLoss == runs[1][i].policyLoss)
        }
    }
}
