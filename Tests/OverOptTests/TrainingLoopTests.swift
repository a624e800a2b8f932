// TrainingLoopTests.swift — the training-loop driver (TrainingLoop.swift) against the steps
// written out by hand: the same weights bit for bit, the schedule's rate, clipping; a loss
// that throws leaves the weights alone; the data-parallel halves; the progress throttle;
// the non-finite check. And the statistics helper (Statistics.swift) against hand values.

import Foundation
import Testing
import OverOptEngine
@testable import OverOpt

/// The language-model loss of `sequences` on `model`, backward into its gradients.
private func lmLoss(_ model: Transformer, _ sequences: [[Int32]]) -> Float {
    let batch = TokenBatch(sequences: sequences)
    var rng = RNG(seed: 1)
    return model.languageModelLoss(batch, mask: wholeSequenceMask(batch), backward: true, rng: &rng)
}

@Suite("training loop") struct TrainingLoopTests {
    let sequences: [[Int32]] = [[1, 5, 2, 7, 9, 3], [1, 6, 8, 2, 4, 4, 10, 3]]

    @Test func aStepIsZeroGradLossClipUpdateAtTheScheduledRate() {
        let schedule = CosineSchedule(peak: 0.01, totalSteps: 5, warmupFraction: 0.4)
        let driven = tinyBase(), byHand = tinyBase()
        let loop = TrainingLoop(model: driven, learningRate: 0.01, weightDecay: 0.1, maxGradNorm: 0.05, schedule: schedule)
        let optimizer = AdamW(model: byHand, config: AdamWConfig(learningRate: 0.01, weightDecay: 0.1))
        for step in 0..<3 {
            #expect(loop.learningRate == schedule.learningRate(step: step))
            let a = loop.step { lmLoss(driven, sequences) }
            byHand.zeroGrad()
            let b = lmLoss(byHand, sequences)
            let norm = clipGradientNorm(byHand, maxNorm: 0.05)
            #expect(norm > 0.05)   // the clipping is exercised
            optimizer.update(byHand, lr: schedule.learningRate(step: step))
            #expect(a == b)
        }
        #expect((0..<driven.parameterCount).allSatisfy { driven.params[$0] == byHand.params[$0] })
        // Without a schedule: the optimizer's constant rate.
        #expect(TrainingLoop(model: tinyBase(), learningRate: 0.003, weightDecay: 0, maxGradNorm: 1).learningRate == 0.003)
    }

    @Test func aThrowingLossLeavesTheWeights() {
        struct Diverged: Error {}
        let model = tinyBase()
        let before = (0..<model.parameterCount).map { model.params[$0] }
        let loop = TrainingLoop(model: model, learningRate: 0.01, weightDecay: 0, maxGradNorm: 1)
        #expect(throws: Diverged.self) { try loop.step { _ = lmLoss(model, sequences); throw Diverged() } }
        #expect((0..<model.parameterCount).map { model.params[$0] } == before && loop.optimizer.step == 0)
    }

    @Test func dataParallelSplitsInTwoFixedHalvesOrRunsOnce() {
        let model = tinyBase()
        let eight = Array(0..<9)
        let parts = model.dataParallel(eight) { m, items, half in (m === model, items, half) }
        #expect(parts.count == 2)
        #expect(parts.map(\.1) == [[0, 1, 2, 3], [4, 5, 6, 7, 8]] && parts.map(\.2) == [0, 1] && parts.allSatisfy { !$0.0 })
        let few = model.dataParallel(Array(0..<7)) { m, items, half in (m === model, items, half) }
        #expect(few.count == 1 && few[0].0 && few[0].1 == Array(0..<7) && few[0].2 == nil)
        // The replicas' gradients land in the model: the sum of each half's on its own.
        let batch = Array(repeating: sequences[0], count: 4) + Array(repeating: sequences[1], count: 4)
        let b = tinyBase(), first = tinyBase(), second = tinyBase()
        b.zeroGrad(); first.zeroGrad(); second.zeroGrad()
        _ = b.dataParallel(batch) { m, part, _ in lmLoss(m, part) }
        _ = lmLoss(first, Array(batch[..<4]))
        _ = lmLoss(second, Array(batch[4...]))
        let halves = (0..<b.parameterCount).map { first.grads[$0] + second.grads[$0] }
        let scale = halves.map(abs).max()!
        #expect(scale > 0 && (0..<b.parameterCount).allSatisfy { abs(b.grads[$0] - halves[$0]) <= 1e-5 * scale })
    }

    @Test func progressLogsTheLastStepAndEveryNth() {
        var p = TrainingProgress(total: 10, everySteps: 4)
        let due = (1...10).map { p.due($0) }
        // A fast loop: no interval elapses, so only every 4th and the last step.
        #expect(due == [false, false, false, true, false, false, false, true, false, true])
        var q = TrainingProgress(total: 3)
        #expect(!q.due(1) && q.due(3))
        #expect(progressInterval == 5)
    }

    @Test func nonFiniteNamesTheBadValues() {
        #expect(nonFinite([("loss", 0.5), ("reward", -2)]) == nil)
        #expect(nonFinite([("policy loss", .nan), ("value loss", 1), ("reward", -.infinity)]) == "policy loss nan, reward -inf")
    }
}

@Suite("statistics") struct StatisticsTests {
    @Test func meanVarianceAndMedianMatchHandValues() {
        let x = [2.0, 4, 4, 4, 5, 5, 7, 9]
        #expect(Statistics.mean(x) == 5)
        #expect(Statistics.variance(x, mean: 5) == 4)                // population: 32 / 8
        #expect(Statistics.variance(x, mean: 5, sample: true) == 32.0 / 7)
        #expect(Statistics.meanAndStandardDeviation(x) == (5, 2))
        #expect(Statistics.mean(x[2..<4]) == 4)                       // slices too
        #expect(Statistics.mean([Double]()).isNaN)
        #expect(Statistics.median([3, 1, 2]) == 2 && Statistics.median([4, 1, 3, 2]) == 2.5)
        // SeedStatistics and the best-of-n standard error are built on them.
        let s = SeedStatistics(x)
        #expect(s.mean == 5 && s.std == (32.0 / 7).squareRoot() && s.sem == s.std / 8.0.squareRoot())
    }

    @Test func sumsRunInTheValuesOrder() {
        // Summed left to right, as every caller did by hand: (1e16 + 1) − 1e16 = 0 in Double.
        #expect(Statistics.mean([1e16, 1, -1e16]) == 0)
        #expect(Statistics.mean([1, 1e16, -1e16]) == 0)
        #expect(Statistics.mean([1e16, -1e16, 1]) == 1.0 / 3)
    }
}
