// PairedStatistics.swift — paired comparisons across seeds: a variant against a baseline
// trained on the same seed's base policy, preference data and best-of-n samples.
//
// For per-seed differences d_1 … d_n (variant − baseline):
//   • mean and sample standard deviation s (n − 1);
//   • the t interval: mean ± t_{0.975, n−1} · s/√n (Student's t quantile from the
//     regularized incomplete beta function, Numerical Recipes §6.4 and §6.14);
//   • the percentile bootstrap interval: seeds resampled with replacement, the mean of
//     each resample, its 2.5% and 97.5% quantiles (a fixed resampling seed);
//   • the two-sided sign-flip permutation test: under "no difference" each d_i is as likely
//     as −d_i, so p = the share of the 2ⁿ sign assignments whose |mean| ≥ the observed
//     |mean| (exact for n ≤ 20, else 100 000 random assignments). It assumes no normality,
//     which with 3–10 seeds cannot be checked; its smallest p is 2/2ⁿ, so three seeds can
//     never reach 0.05 — that is the honest answer with three seeds;
//   • Holm's step-down correction over the variants compared on one metric.
import Foundation
import OverOptEngine

/// A paired comparison of a variant with a baseline on one metric.
public struct PairedDifference: Sendable, Equatable, Codable {
    public var seeds: Int
    public var mean: Double
    public var standardDeviation: Double
    /// The 95% t interval and percentile bootstrap interval of the mean (NaN with one seed).
    public var tLow: Double, tHigh: Double
    public var bootstrapLow: Double, bootstrapHigh: Double
    /// Seeds where the variant is above, below and equal to the baseline.
    public var wins: Int, losses: Int, ties: Int
    /// Two-sided sign-flip permutation p-value, and Holm-adjusted over the family compared.
    public var pValue: Double
    public var pHolm: Double

    /// Whether the 95% t interval excludes zero.
    public var decided: Bool { tLow > 0 || tHigh < 0 }
}

/// The paired statistics of per-seed differences (variant − baseline); `pHolm` starts equal
/// to `pValue` until `holmAdjusted` is applied to a family.
public func pairedDifference(_ d: [Double], bootstrapResamples: Int = 10_000, seed: UInt64 = 0) -> PairedDifference {
    let n = d.count
    precondition(n > 0, "no paired seeds")
    let mean = Statistics.mean(d)
    let sd = n > 1 ? Statistics.variance(d, mean: mean, sample: true).squareRoot() : .nan
    let half = n > 1 ? studentTQuantile(0.975, degreesOfFreedom: Double(n - 1)) * sd / Double(n).squareRoot() : .nan
    let p = signFlipPValue(d)
    let boot = n > 1 ? bootstrapMeanInterval(d, resamples: bootstrapResamples, seed: seed) : (low: Double.nan, high: Double.nan)
    return PairedDifference(seeds: n, mean: mean, standardDeviation: sd, tLow: mean - half, tHigh: mean + half,
                            bootstrapLow: boot.low, bootstrapHigh: boot.high,
                            wins: d.filter { $0 > 0 }.count, losses: d.filter { $0 < 0 }.count, ties: d.filter { $0 == 0 }.count,
                            pValue: p, pHolm: p)
}

/// The percentile bootstrap interval of the mean of `d` at `level` (0.95: the 2.5% and
/// 97.5% quantiles of `resamples` resampled means, linear interpolation between order
/// statistics).
public func bootstrapMeanInterval(_ d: [Double], resamples: Int = 10_000, seed: UInt64 = 0,
                                  level: Double = 0.95) -> (low: Double, high: Double) {
    let n = d.count
    var rng = RNG(seed: seed)
    var means = [Double](repeating: 0, count: resamples)
    for b in 0..<resamples {
        var s = 0.0
        for _ in 0..<n { s += d[rng.int(below: n)] }
        means[b] = s / Double(n)
    }
    means.sort()
    return (quantile(sorted: means, (1 - level) / 2), quantile(sorted: means, 1 - (1 - level) / 2))
}

/// The q-quantile of sorted values, interpolating linearly between order statistics
/// (NumPy's default).
public func quantile(sorted x: [Double], _ q: Double) -> Double {
    let h = q * Double(x.count - 1)
    let i = Int(h.rounded(.down)), j = min(i + 1, x.count - 1)
    return x[i] + (h - Double(i)) * (x[j] - x[i])
}

/// Two-sided sign-flip permutation p-value of "mean of d is 0": the share of sign
/// assignments with |Σ ±d_i| ≥ |Σ d_i| (all 2ⁿ for n ≤ 20, else 100 000 drawn with a fixed
/// seed, the observed one counted in).
public func signFlipPValue(_ d: [Double]) -> Double {
    let n = d.count
    let observed = abs(d.reduce(0, +))
    // Sums equal up to rounding count as equal (a tie must not turn on the last bit).
    let threshold = observed - 1e-12 * max(1, d.map(abs).reduce(0, +))
    if n <= 20 {
        var atLeast = 0
        for mask in 0..<(1 << n) {
            var s = 0.0
            for i in 0..<n { s += mask & (1 << i) != 0 ? -d[i] : d[i] }
            if abs(s) >= threshold { atLeast += 1 }
        }
        return Double(atLeast) / Double(1 << n)
    }
    var rng = RNG(seed: 0x5167_6e46_6c69_70)
    let draws = 100_000
    var atLeast = 1
    for _ in 0..<draws {
        var s = 0.0
        for x in d { s += rng.int(below: 2) == 0 ? x : -x }
        if abs(s) >= threshold { atLeast += 1 }
    }
    return Double(atLeast) / Double(draws + 1)
}

/// Holm's step-down adjustment: with p sorted ascending, p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)),
/// returned in the input order. NaN p-values stay NaN and do not count in m.
public func holmAdjusted(_ p: [Double]) -> [Double] {
    let order = p.indices.filter { !p[$0].isNaN }.sorted { p[$0] < p[$1] }
    let m = order.count
    var adjusted = p
    var running = 0.0
    for (rank, i) in order.enumerated() {
        running = max(running, min(1, Double(m - rank) * p[i]))
        adjusted[i] = running
    }
    return adjusted
}

// MARK: - Student's t

/// P(T ≤ t) for Student's t with ν degrees of freedom: 1 − ½·I_{ν/(ν+t²)}(ν/2, ½) for t ≥ 0.
public func studentTCDF(_ t: Double, degreesOfFreedom nu: Double) -> Double {
    let tail = 0.5 * regularizedIncompleteBeta(nu / (nu + t * t), a: nu / 2, b: 0.5)
    return t >= 0 ? 1 - tail : tail
}

/// The p-quantile of Student's t with ν degrees of freedom (bisection on the CDF to 1e-12).
public func studentTQuantile(_ p: Double, degreesOfFreedom nu: Double) -> Double {
    precondition(p > 0 && p < 1 && nu > 0)
    var lo = -1.0, hi = 1.0
    while studentTCDF(lo, degreesOfFreedom: nu) > p { lo *= 2 }
    while studentTCDF(hi, degreesOfFreedom: nu) < p { hi *= 2 }
    for _ in 0..<200 where hi - lo > 1e-12 * max(1, abs(lo)) {
        let mid = 0.5 * (lo + hi)
        if studentTCDF(mid, degreesOfFreedom: nu) < p { lo = mid } else { hi = mid }
    }
    return 0.5 * (lo + hi)
}

/// I_x(a, b), the regularized incomplete beta function, by its continued fraction
/// (modified Lentz), using the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where it converges faster.
public func regularizedIncompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
    if x <= 0 { return 0 }
    if x >= 1 { return 1 }
    let logGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
    let logFront: Double = logGammas + a * log(x) + b * log(1 - x)
    if x < (a + 1) / (a + b + 2) {
        return exp(logFront) * betaContinuedFraction(x, a: a, b: b) / a
    }
    return 1 - exp(logFront) * betaContinuedFraction(1 - x, a: b, b: a) / b
}

private func betaContinuedFraction(_ x: Double, a: Double, b: Double) -> Double {
    let tiny = 1e-300
    var c = 1.0, d = 1 - (a + b) * x / (a + 1)
    if abs(d) < tiny { d = tiny }
    d = 1 / d
    var h = d
    for m in 1...300 {
        let m = Double(m), m2 = 2 * m
        var aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2))
        d = 1 + aa * d; if abs(d) < tiny { d = tiny }
        c = 1 + aa / c; if abs(c) < tiny { c = tiny }
        d = 1 / d; h *= d * c
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))
        d = 1 + aa * d; if abs(d) < tiny { d = tiny }
        c = 1 + aa / c; if abs(c) < tiny { c = tiny }
        d = 1 / d
        let delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15 { break }
    }
    return h
}
