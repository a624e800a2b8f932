// SelectionRules.swift — best-of-n selection rules other than the proxy's argmax: the math
// only (pure functions on the scores of one prompt's samples; no models, no files).
//
// Three rules, each applied to the N base-policy samples of one prompt:
//
// - soft best-of-n (Khalaf et al. 2025, "Inference-Time Reward Hacking in Large Language
//   Models"): draw n samples, keep sample i with probability exp(r_i/λ) / Σ_j exp(r_j/λ) over
//   the drawn ones. λ → 0 is best-of-n, λ → ∞ the base policy.
// - caution (pessimistic best-of-n; Yu, Wu and Block 2026): the argmax of r − c·e, where e is
//   the prediction error of a model trained on typical (base-policy) responses
//   (RandomNetworkDistillation.swift); atypical responses lose reward.
// - ensemble lower confidence bound: the argmax of mean − k·std over the members' scores.
//
// Deterministic rules (caution, lcb) are best-of-n with another selection score, so their
// expected gold and proxy use Gao et al.'s unbiased estimator over n-subsets of the N
// samples with that score (BestOfNRanking), and their KL to the base is the same
// log n − (n−1)/n as the plain rule: the argmax of any fixed score of n i.i.d. samples picks
// the sample of rank k among them with the distribution of the maximum of n uniforms,
// whatever the score, as long as it has no ties.
//
// Soft best-of-n is a random choice among the drawn samples, so neither the subset estimator
// nor the analytic KL apply. We compute its selection distribution exactly over the N pooled
// samples treated as the empirical base policy (n draws with replacement from the N samples
// of the prompt):
//
//     p_i = P(sample i is kept) = (n/N) · E[ w_i / (w_i + W) ],   w_j = exp((r_j − max r)/λ),
//     W = Σ of the weights of n − 1 further draws, uniform with replacement.
//
// With 1/x = ∫_0^∞ e^{−tx} dt and E[e^{−tW}] = φ(t)^{n−1}, φ(t) = (1/N) Σ_j e^{−t w_j}:
//
//     p_i = (n/N) ∫_0^∞ w_i e^{−t w_i} φ(t)^{n−1} dt
//         = (n/N) ∫_ℝ exp(y − e^y) φ(e^{y − u_i})^{n−1} dy,     u_i = log w_i, y = u_i + log t
//
// a one-dimensional integral of a smooth, doubly-exponentially decaying function, computed by
// the trapezoid rule in log t (step 0.05, window y ∈ [−30, 3.8]: the truncated tails add at
// most (n/N)·1e−13 per sample, so Σ_i p_i = 1 within n·1e−13; tested to 1e−10 against
// enumeration of all N^n draws, including weights that underflow in double precision).
// Cost: about 700 exponentials per sample and n (0.1 s per prompt of N = 256 on the
// 32-point grid in a debug build). The curve's
// expected value is Σ_i p_i v_i and its KL is KL(p ‖ uniform over the N samples) =
// Σ_i p_i log(N p_i), exact for this empirical base. It approaches log n − (n−1)/n of the
// plain rule for λ → 0 and n ≪ N, and can never exceed log N (the empirical base has N points):
// read the soft curve at n well below N.

import Foundation
import OverOptEngine

/// A best-of-n selection rule other than the plain argmax of the proxy (config `bon.select`).
public enum SelectionRule: String, Codable, Sendable, CaseIterable {
    /// Soft best-of-n: keep one of the n drawn samples with probability ∝ exp(r/λ).
    case soft
    /// Pessimistic best-of-n: argmax of proxy − c·(prediction error of an RND model).
    case caution
    /// Ensemble lower confidence bound: argmax of mean − k·std over the members.
    case lcb
}

/// The caution rule's selection score of each sample: r_i − c·e_i.
public func cautiousScores(proxy: [Double], error: [Double], coef c: Double) -> [Double] {
    precondition(proxy.count == error.count, "one prediction error per proxy score")
    return zip(proxy, error).map { $0 - c * $1 }
}

/// The ensemble lower confidence bound of each sample, mean − k·std over the members, with the
/// population standard deviation (the spread of these k members, as `combineEnsemble`'s UWO).
/// `memberScores` is [member][sample].
public func lowerConfidenceBound(memberScores: [[Double]], k: Double) -> [Double] {
    precondition(!memberScores.isEmpty, "the lower confidence bound needs at least one member")
    let count = memberScores[0].count
    precondition(memberScores.allSatisfy { $0.count == count }, "every member scores every sample")
    let m = Double(memberScores.count)
    return (0..<count).map { i in
        var mean = 0.0
        for s in memberScores { mean += s[i] }
        mean /= m
        var v = 0.0
        for s in memberScores { v += (s[i] - mean) * (s[i] - mean) }
        return mean - k * (v / m).squareRoot()
    }
}

/// KL(p ‖ uniform over the N samples) = Σ_i p_i log(N p_i) in nats (0 log 0 = 0).
public func klToEmpiricalBase(_ p: [Double]) -> Double {
    let N = Double(p.count)
    var kl = 0.0
    for x in p where x > 0 { kl += x * log(N * x) }
    return max(0, kl)
}

/// Soft best-of-n over the empirical base of one prompt: the probability that each of the N
/// samples is kept when n samples are drawn with replacement from them and one is kept with
/// probability ∝ exp(score/λ) (file header: an exact one-dimensional integral by the trapezoid
/// rule). Returns one vector per n in `ns`, each summing to 1 up to ~1e−12.
public func softBestOfNProbabilities(scores: [Double], ns: [Int], temperature lambda: Double) -> [[Double]] {
    precondition(!scores.isEmpty, "soft best-of-n needs at least one sample")
    precondition(lambda > 0 && lambda.isFinite, "soft best-of-n needs a temperature λ > 0 (got \(lambda))")
    precondition(ns.allSatisfy { $0 >= 1 }, "soft best-of-n needs n ≥ 1")
    precondition(!scores.contains { !$0.isFinite }, "soft best-of-n scores must be finite")
    let N = scores.count
    let top = scores.max()!
    let u = scores.map { ($0 - top) / lambda }           // log w_j ≤ 0
    let h = 0.05, yLow = -30.0, yHigh = 3.8
    // log φ at x = k·h (x = log t), memoized per grid index k.
    var logPhiMemo: [Int: Double] = [:]
    func logPhi(_ k: Int) -> Double {
        if let v = logPhiMemo[k] { return v }
        let x = Double(k) * h
        var s = 0.0
        for uj in u { s += exp(-exp(uj + x)) }
        let v = s > 0 ? log(s / Double(N)) : -Double.infinity
        logPhiMemo[k] = v
        return v
    }
    // Per sample: the grid points of its window, their exp(y − e^y) in log and log φ.
    var base: [[Double]] = [], phis: [[Double]] = []
    base.reserveCapacity(N); phis.reserveCapacity(N)
    for ui in u {
        let k0 = Int(((yLow - ui) / h).rounded(.up)), k1 = Int(((yHigh - ui) / h).rounded(.down))
        var b: [Double] = [], f: [Double] = []
        b.reserveCapacity(k1 - k0 + 1); f.reserveCapacity(k1 - k0 + 1)
        for k in k0...k1 {
            let y = ui + Double(k) * h
            b.append(y - exp(y))
            f.append(logPhi(k))
        }
        base.append(b); phis.append(f)
    }
    return ns.map { n in
        if n == 1 { return [Double](repeating: 1 / Double(N), count: N) }
        let m = Double(n - 1), scale = Double(n) / Double(N) * h
        return (0..<N).map { i in
            var s = 0.0
            let b = base[i], f = phis[i]
            for k in b.indices where f[k] > -Double.infinity { s += exp(b[k] + m * f[k]) }
            return scale * s
        }
    }
}
