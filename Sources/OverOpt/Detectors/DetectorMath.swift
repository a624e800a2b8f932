// DetectorMath.swift — over-optimization detectors and how they are scored, as pure functions.
//
// What it is: the statistics a detector computes without gold (ensemble disagreement, the
// Mahalanobis distance of InfoRM latents from the base policy's latent distribution and
// the outlier rate above a threshold fitted on base samples, the proxy's slope against
// KL), the alarm rule, and the scores a simulator can give them with exact gold: the
// AUROC of a statistic for the label "gold has fallen by more than δ from its running
// peak", and the gold lost by stopping at the first alarm instead of at the gold peak.
// What it is not: the orchestration (Detectors.swift) or anything that touches a model.
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

// MARK: - Statistics without gold

/// Ensemble disagreement: the mean over responses of the (population) standard deviation
/// of the members' rewards. `memberScores` is [member][response].
public func ensembleDisagreement(memberScores: [[Double]]) -> Double {
    guard let n = memberScores.first?.count, n > 0, memberScores.count > 1 else { return .nan }
    let k = Double(memberScores.count)
    var total = 0.0
    for i in 0..<n {
        let mean = memberScores.reduce(0) { $0 + $1[i] } / k
        let variance = memberScores.reduce(0) { $0 + ($1[i] - mean) * ($1[i] - mean) } / k
        total += variance.squareRoot()
    }
    return total / Double(n)
}

/// A Gaussian fitted to latent vectors: the mean and the Cholesky factor L of the
/// covariance Σ + ridge·I = L·Lᵀ (lower triangular, row-major D×D).
public struct GaussianFit: Sendable, Equatable {
    public var mean: [Double]
    public var cholesky: [Double]
    public var dimension: Int { mean.count }

    public init(mean: [Double], cholesky: [Double]) {
        precondition(cholesky.count == mean.count * mean.count, "GaussianFit: a D×D Cholesky factor")
        self.mean = mean; self.cholesky = cholesky
    }
}

/// Fits mean and covariance (divided by n − 1) to `samples` ([sample][D], at least two), with
/// `ridge` times the mean variance added to the diagonal so that Σ is invertible when some
/// directions barely vary. Nil when the covariance is not positive definite even then.
public func fitGaussian(_ samples: [[Double]], ridge: Double = 1e-3) -> GaussianFit? {
    guard samples.count >= 2, let D = samples.first?.count, D > 0 else { return nil }
    let n = Double(samples.count)
    var mean = [Double](repeating: 0, count: D)
    for s in samples { for d in 0..<D { mean[d] += s[d] / n } }
    var cov = [Double](repeating: 0, count: D * D)
    for s in samples {
        for a in 0..<D {
            let da = s[a] - mean[a]
            for b in 0...a { cov[a * D + b] += da * (s[b] - mean[b]) / (n - 1) }
        }
    }
    let meanVariance = (0..<D).reduce(0) { $0 + cov[$1 * D + $1] } / Double(D)
    for d in 0..<D { cov[d * D + d] += ridge * max(meanVariance, 1e-12) }
    // Cholesky–Banachiewicz on the lower triangle.
    var L = [Double](repeating: 0, count: D * D)
    for i in 0..<D {
        for j in 0...i {
            var s = cov[i * D + j]
            for k in 0..<j { s -= L[i * D + k] * L[j * D + k] }
            if i == j {
                guard s > 0 else { return nil }
                L[i * D + i] = s.squareRoot()
            } else {
                L[i * D + j] = s / L[j * D + j]
            }
        }
    }
    return GaussianFit(mean: mean, cholesky: L)
}

/// The Mahalanobis distance √((x − μ)ᵀ Σ⁻¹ (x − μ)) = ‖L⁻¹(x − μ)‖ (forward substitution).
public func mahalanobisDistance(_ x: [Double], _ fit: GaussianFit) -> Double {
    let D = fit.dimension
    precondition(x.count == D, "mahalanobisDistance: \(x.count) values for a \(D)-dimensional fit")
    var y = [Double](repeating: 0, count: D)
    var sum = 0.0
    for i in 0..<D {
        var s = x[i] - fit.mean[i]
        for k in 0..<i { s -= fit.cholesky[i * D + k] * y[k] }
        y[i] = s / fit.cholesky[i * D + i]
        sum += y[i] * y[i]
    }
    return sum.squareRoot()
}

/// The q-quantile of `values` by linear interpolation between order statistics (the
/// (n − 1)·q-th of the sorted values; Hyndman and Fan's type 7, numpy's default).
public func quantile(_ values: [Double], _ q: Double) -> Double {
    precondition((0...1).contains(q), "quantile: q must be in [0, 1]")
    let s = values.filter { !$0.isNaN }.sorted()
    guard !s.isEmpty else { return .nan }
    let h = Double(s.count - 1) * q
    let lo = Int(h.rounded(.down)), hi = min(lo + 1, s.count - 1)
    return s[lo] + (h - Double(lo)) * (s[hi] - s[lo])
}

/// The share of `distances` strictly above `threshold`.
public func outlierRate(_ distances: [Double], threshold: Double) -> Double {
    guard !distances.isEmpty else { return .nan }
    return Double(distances.filter { $0 > threshold }.count) / Double(distances.count)
}

/// The least-squares slope of y on x; NaN with fewer than two points or no spread in x.
public func leastSquaresSlope(x: [Double], y: [Double]) -> Double {
    precondition(x.count == y.count, "leastSquaresSlope: one y per x")
    let n = Double(x.count)
    guard x.count >= 2 else { return .nan }
    let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
    var sxy = 0.0, sxx = 0.0
    for i in x.indices { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx) }
    return sxx > 0 ? sxy / sxx : .nan
}

/// At each evaluation t, the least-squares slope of the proxy against KL over the last
/// `window` evaluations (t − window + 1 … t): NaN until `window` evaluations exist. Causal:
/// it uses nothing after t.
public func trailingSlopes(kl: [Double], proxy: [Double], window: Int) -> [Double] {
    precondition(kl.count == proxy.count && window >= 2, "trailingSlopes: one proxy value per KL, window ≥ 2")
    return kl.indices.map { t in
        t + 1 < window ? .nan : leastSquaresSlope(x: Array(kl[(t + 1 - window)...t]), y: Array(proxy[(t + 1 - window)...t]))
    }
}

// MARK: - Alarms and their scores against gold

/// The alarm rule every detector shares: alarm at evaluation t when its statistic is
/// strictly above its threshold (a NaN statistic never alarms).
public func alarms(statistic: [Double], threshold: Double) -> [Bool] {
    statistic.map { $0 > threshold }
}

/// The label a detector should predict: at evaluation t, gold has fallen by more than
/// `drop` below its running peak max_{s ≤ t} gold_s.
public func goldDropLabels(gold: [Double], drop: Double) -> [Bool] {
    var peak = -Double.infinity
    return gold.map { g in
        peak = max(peak, g)
        return g < peak - drop
    }
}

/// The area under the ROC curve of `scores` for `labels` (true = positive): the probability
/// that a random positive scores higher than a random negative, ties counting ½ (the
/// Mann–Whitney U statistic over n₊·n₋, from mid-ranks). Entries with a NaN score are left
/// out; NaN when no positive or no negative remains.
public func auroc(scores: [Double], labels: [Bool]) -> Double {
    precondition(scores.count == labels.count, "auroc: one label per score")
    let kept = scores.indices.filter { !scores[$0].isNaN }
    let positives = kept.filter { labels[$0] }.count, negatives = kept.count - positives
    guard positives > 0, negatives > 0 else { return .nan }
    let order = kept.sorted { scores[$0] < scores[$1] }
    var rankSum = 0.0   // the sum of the positives' mid-ranks (1-based)
    var i = 0
    while i < order.count {
        var j = i
        while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
        let midRank = Double(i + j) / 2 + 1
        for k in i...j where labels[order[k]] { rankSum += midRank }
        i = j + 1
    }
    let p = Double(positives), n = Double(negatives)
    return (rankSum - p * (p + 1) / 2) / (p * n)
}

/// What stopping a run at a detector's first alarm costs against stopping at the gold peak.
public struct EarlyStopOutcome: Sendable, Equatable {
    /// The first evaluation whose gold is the largest.
    public var peakIndex: Int
    /// The first alarm, or the last evaluation when the detector never alarms.
    public var stopIndex: Int
    /// Whether the detector alarmed at all.
    public var alarmed: Bool
    /// gold[peak] − gold[stop] ≥ 0: the gold lost by stopping at the first alarm (too early
    /// or too late) instead of at the peak; stopping at the end when it never alarms.
    public var goldLost: Double

    public init(peakIndex: Int, stopIndex: Int, alarmed: Bool, goldLost: Double) {
        self.peakIndex = peakIndex; self.stopIndex = stopIndex; self.alarmed = alarmed; self.goldLost = goldLost
    }
}

/// The early-stopping outcome of an alarm series on a gold curve (same length, non-empty).
public func earlyStopOutcome(gold: [Double], alarms: [Bool]) -> EarlyStopOutcome {
    precondition(!gold.isEmpty && gold.count == alarms.count, "earlyStopOutcome: one alarm per gold value, at least one")
    let peak = gold.indices.max { gold[$0] < gold[$1] || (gold[$0] == gold[$1] && $0 > $1) }!
    let first = alarms.firstIndex(of: true)
    let stop = first ?? gold.count - 1
    return EarlyStopOutcome(peakIndex: peak, stopIndex: stop, alarmed: first != nil, goldLost: gold[peak] - gold[stop])
}
