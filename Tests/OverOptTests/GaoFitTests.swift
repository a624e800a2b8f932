// GaoFitTests.swift — Gao et al.'s forms are recovered exactly from noiseless curves, the
// fit is least squares, and the seed statistics and interpolation used by collect.

import Foundation
import Testing
@testable import OverOpt

@Test func bestOfNFitRecoversAlphaAndBetaExactly() {
    let kl = [0, 0.19, 0.5, 1.1, 1.8, 2.6, 3.5].map { $0 }
    let y = kl.map { let d = $0.squareRoot(); return d * (0.8 - 0.3 * d) }
    let fit = fitGao(.bestOfN, kl: kl, y: y)
    #expect(abs(fit.alpha - 0.8) < 1e-10)
    #expect(abs(fit.beta - 0.3) < 1e-10)
    #expect(abs(fit.r2 - 1) < 1e-12)
}

@Test func rlFitRecoversAlphaAndBetaExactly() {
    let kl = [0, 0.05, 0.3, 1, 2, 4, 9]
    let y = kl.map { k -> Double in let d = k.squareRoot(); return d > 0 ? d * (0.5 - 0.2 * log(d)) : 0 }
    let fit = fitGao(.rl, kl: kl, y: y)
    #expect(abs(fit.alpha - 0.5) < 1e-10)
    #expect(abs(fit.beta - 0.2) < 1e-10)
    #expect(abs(fit.r2 - 1) < 1e-12)
}

@Test func fitIsTheLeastSquaresMinimum() {
    // Noisy data: nudging α or β in any direction must not lower the squared error.
    let kl = [0.1, 0.4, 0.9, 1.6, 2.5, 3.6]
    let y = [0.2, 0.35, 0.31, 0.4, 0.22, 0.05]
    let fit = fitGao(.bestOfN, kl: kl, y: y)
    func sse(_ a: Double, _ b: Double) -> Double {
        zip(kl, y).reduce(0) { let r = $1.1 - GaoForm.bestOfN.value(d: $1.0.squareRoot(), alpha: a, beta: b); return $0 + r * r }
    }
    let best = sse(fit.alpha, fit.beta)
    for (da, db) in [(1e-3, 0.0), (-1e-3, 0.0), (0.0, 1e-3), (0.0, -1e-3), (1e-3, 1e-3)] {
        #expect(sse(fit.alpha + da, fit.beta + db) > best)
    }
    #expect(fit.r2 > 0 && fit.r2 < 1)
}

@Test func degenerateFitIsNaN() {
    // One distinct positive d cannot determine two coefficients.
    let fit = fitGao(.bestOfN, kl: [0, 1, 1], y: [0, 0.5, 0.5])
    #expect(fit.alpha.isNaN && fit.beta.isNaN)
}

@Test func seedStatisticsMatchHandComputedValues() {
    let s = SeedStatistics([1, 2, 4])
    #expect(abs(s.mean - 7.0 / 3) < 1e-12)
    #expect(abs(s.std - (7.0 / 3).squareRoot()) < 1e-12)          // Σ(x−x̄)² = 42/9, / (n−1)
    #expect(abs(s.sem - 7.0.squareRoot() / 3) < 1e-12)           // std / √3
    let one = SeedStatistics([5])
    #expect(one.mean == 5 && one.std.isNaN && one.sem.isNaN)
}

@Test func interpolationSortsByKLAndClampsAtTheEnds() {
    let y = interpolateLinear(x: [2, 0, 1], y: [20, 0, 10], at: [-1, 0, 0.5, 1.5, 2, 3])
    #expect(y == [0, 0, 5, 15, 20, 20])
    #expect(commonKLGrid(maxKLs: [4, 2], points: 3) == [0, 1, 2])
    #expect(commonKLGrid(maxKLs: [-0.1, 2]) == [0])
}
