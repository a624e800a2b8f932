// BestOfNEstimator.swift — the math of best-of-n: Gao et al.'s unbiased estimator, its KL,
// the n grid and the standard error over prompts. Pure functions only; no models, no files.
//
// Best-of-n draws n responses from the policy and keeps the one the proxy scores highest.
// Given N ≥ n samples of one prompt, Gao, Schulman & Hilton 2022 (arXiv 2210.10760, App. I)
// estimate E[v(best-of-n)] without bias by averaging over every n-subset of the N samples:
// sort the samples by the selection score s ascending; the sample of rank i (1-based) is the
// argmax of a uniformly random n-subset with probability
//
//     w_i = C(i−1, n−1) / C(N, n)        (zero for i < n; Σ_i w_i = 1 by the hockey-stick identity)
//
// so E[v] = Σ_i w_i · v_(i). The weights are computed in log space with lgamma, so N can be
// many thousands without overflow.
//
// Ties. When several samples share the largest score in a subset we define best-of-n to pick
// one of them uniformly at random. That equals breaking ties by a uniformly random order of
// each tie group, under which each member of a group occupying ranks a…b is equally likely to
// hold any of those ranks; so every member gets the group's average weight
// (w_a + … + w_b)/(b − a + 1). The result is exact, deterministic and independent of the input
// order (tested against enumeration of all subsets with ties).

import Foundation

/// log C(a, b) = log a! − log b! − log (a−b)! via lgamma. Requires 0 ≤ b ≤ a.
public func logBinomial(_ a: Int, _ b: Int) -> Double {
    precondition(b >= 0 && b <= a, "logBinomial needs 0 ≤ b ≤ a (got a = \(a), b = \(b))")
    return lgamma(Double(a + 1)) - lgamma(Double(b + 1)) - lgamma(Double(a - b + 1))
}

/// Gao et al.'s rank weights for best-of-n out of N samples: element i−1 is the probability
/// that the sample of rank i (1-based, ascending by selection score, no ties) is the maximum
/// of a uniformly random n-subset, w_i = C(i−1, n−1) / C(N, n).
///
/// Computed in log space; the weights are renormalized to sum to 1 (they do exactly in theory),
/// which removes lgamma's ~1e-13 relative rounding. O(N).
public func bestOfNWeights(N: Int, n: Int) -> [Double] {
    precondition(N >= 1, "best-of-n needs at least one sample (N = \(N))")
    precondition(n >= 1 && n <= N, "best-of-n needs 1 ≤ n ≤ N (n = \(n), N = \(N))")
    let logTotal = logBinomial(N, n)
    var w = [Double](repeating: 0, count: N)
    var sum = 0.0
    for i in n...N {
        w[i - 1] = exp(logBinomial(i - 1, n - 1) - logTotal)
        sum += w[i - 1]
    }
    for i in (n - 1)..<N { w[i] /= sum }
    return w
}

/// The samples of one prompt ranked by a selection score, with their tie groups: everything
/// the estimator needs that does not depend on n or on the value being averaged. Sorting once
/// and reusing the ranking for every n and value is what makes a whole curve cheap.
public struct BestOfNRanking: Sendable {
    /// Number of samples N.
    public let N: Int
    /// Sample indices in ascending order of score (ties in index order; that order does not
    /// affect any result because tied samples share their weight).
    public let order: [Int]
    /// Runs of equal scores as ranges of 0-based sorted positions (singletons included).
    public let tieGroups: [Range<Int>]

    /// Ranks `scores` (one per sample). Scores must not be NaN.
    public init(selectBy scores: [Double]) {
        precondition(!scores.isEmpty, "best-of-n needs at least one sample")
        precondition(!scores.contains(where: \.isNaN), "best-of-n selection scores must not be NaN")
        N = scores.count
        order = scores.indices.sorted { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        var groups: [Range<Int>] = []
        var start = 0
        for k in 1...N where k == N || scores[order[k]] != scores[order[start]] {
            groups.append(start..<k)
            start = k
        }
        tieGroups = groups
    }

    /// Whether any two samples share a score.
    public var hasTies: Bool { tieGroups.count < N }

    /// The probability that each sample (by original index) is best-of-n, given the rank
    /// weights `bestOfNWeights(N:n:)`: each sample gets the weight of its rank, averaged over
    /// its tie group (uniform choice among tied maxima). Sums to 1.
    public func selectionProbabilities(rankWeights w: [Double]) -> [Double] {
        precondition(w.count == N, "rank weights are for \(w.count) samples, the ranking has \(N)")
        var p = [Double](repeating: 0, count: N)
        for g in tieGroups {
            var s = 0.0
            for k in g { s += w[k] }
            let avg = s / Double(g.count)
            for k in g { p[order[k]] = avg }
        }
        return p
    }

    /// The probability that each sample is best-of-n (see `selectionProbabilities(rankWeights:)`).
    public func selectionProbabilities(n: Int) -> [Double] {
        selectionProbabilities(rankWeights: bestOfNWeights(N: N, n: n))
    }

    /// E[value of best-of-n] for each value vector and each n: [value][n index].
    /// `rankWeights[j]` must be `bestOfNWeights(N: N, n: ns[j])` (pass them to share them
    /// across prompts with the same N).
    public func expected(values: [[Double]], rankWeights: [[Double]]) -> [[Double]] {
        precondition(values.allSatisfy { $0.count == N }, "every value vector needs one value per sample (\(N))")
        var out = [[Double]](repeating: [Double](repeating: 0, count: rankWeights.count), count: values.count)
        for (j, w) in rankWeights.enumerated() {
            let p = selectionProbabilities(rankWeights: w)
            for (k, v) in values.enumerated() {
                var e = 0.0
                for i in 0..<N where p[i] != 0 { e += p[i] * v[i] }
                out[k][j] = e
            }
        }
        return out
    }
}

/// E[value of the best-of-n sample selected by `selectBy`], unbiased from N samples of one
/// prompt (Gao et al. 2022); ties in `selectBy` are broken uniformly (see file header).
/// n = 1 gives the mean of `value`; n = N the value at the maximum of `selectBy`.
public func expectedBestOfN(selectBy: [Double], value: [Double], n: Int) -> Double {
    expectedBestOfN(selectBy: selectBy, values: [value], ns: [n])[0][0]
}

/// `expectedBestOfN` for several value vectors and several n at once, sorting once:
/// result[value index][n index].
public func expectedBestOfN(selectBy: [Double], values: [[Double]], ns: [Int]) -> [[Double]] {
    let ranking = BestOfNRanking(selectBy: selectBy)
    return ranking.expected(values: values, rankWeights: ns.map { bestOfNWeights(N: ranking.N, n: $0) })
}

/// The oracle: E[gold of best-of-n selected by gold itself], the upper bound of any proxy's
/// gold curve at the same n.
public func oracleBestOfN(gold: [Double], n: Int) -> Double {
    expectedBestOfN(selectBy: gold, value: gold, n: n)
}

/// KL(π_bon ‖ π) of best-of-n in nats, KL_n = log n − (n − 1)/n (Stiennon et al. 2020; Gao
/// et al. 2022 §2). It is exact for continuous selection scores without ties and an upper
/// bound otherwise; it does not depend on the reward or the policy.
public func klBestOfN(n: Int) -> Double {
    precondition(n >= 1, "best-of-n needs n ≥ 1 (got \(n))")
    return log(Double(n)) - Double(n - 1) / Double(n)
}

/// The n at which curves are evaluated: every integer 1…`denseUpTo` (where curves bend most),
/// then geometrically spaced with `perDoubling` points per doubling of n, up to N, which is
/// always included. Defaults (16, 4) give 32 points for N = 256 (KL 0 … 4.55 nats):
/// 1…16, 19, 23, 27, 32, 38, 45, 54, 64, 76, 91, 108, 128, 152, 181, 215, 256.
public func bestOfNGrid(N: Int, denseUpTo: Int = 16, perDoubling: Int = 4) -> [Int] {
    precondition(N >= 1, "the n grid needs N ≥ 1")
    precondition(denseUpTo >= 1 && perDoubling >= 1, "the n grid needs denseUpTo ≥ 1 and perDoubling ≥ 1")
    var grid = Array(1...min(denseUpTo, N))
    var k = 1
    while true {
        let n = Int((Double(denseUpTo) * pow(2, Double(k) / Double(perDoubling))).rounded())
        if n >= N { break }
        if n > grid.last! { grid.append(n) }
        k += 1
    }
    if grid.last! != N { grid.append(N) }
    return grid
}

/// Mean over prompts and its standard error, sem = s / √P with s the sample standard
/// deviation (P − 1 in the denominator). With a single prompt the sem is NaN (undefined).
public func meanAndStandardError(_ values: [Double]) -> (mean: Double, sem: Double) {
    precondition(!values.isEmpty, "mean of no values")
    let s = SeedStatistics(values)
    return (s.mean, s.sem)
}
