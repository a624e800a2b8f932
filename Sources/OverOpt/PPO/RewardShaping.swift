// RewardShaping.swift — policy-side mitigations of reward hacking in the reward PPO sees:
// PAR reward shaping and the KL penalty with a chosen per-token estimator. Pure functions;
// PPOTrainer.swift draws the reference responses and applies them.
//
// PAR ("Preference As Reward"; Fu et al. 2025, "Reward Shaping to Mitigate Reward Hacking
// in RLHF", arXiv 2502.18770): the RL reward of a response y to prompt x is the proxy's
// preference of y over reference responses y_ref,1…M drawn from the reference (base) policy
// for the same prompt, a bounded, centred sigmoid of the proxy reward:
//
//     r_PAR(x, y) = (1/M) Σ_m σ((r(x, y) − r(x, y_ref,m)) / s)
//
// with s = 1 in the paper. Here s is the standard deviation of the first rollout batch's
// proxy scores when `normalize_reward` (the default), so that the sigmoid's slope is the same
// for proxies of different scales, and 1 otherwise. The paper finds M = 1 enough.
//
// The reward used is r_PAR − ½, zero for a response the proxy scores like the reference's.
// Every response gets one terminal reward, so with γ = 1 the shift moves every return by the
// same constant and leaves the optimum unchanged; it matters for the learning dynamics. PPO's
// value head starts near 0, so an uncentred reward of about ½ makes the GAE advantages of
// the last tokens larger than those of the first ones, and whitening the advantages over all
// tokens turns that into a push toward ending responses early that is not in the reward. Measured
// (small preset, `bt` proxy, seed 0, 60 steps): uncentred, responses shrank from 16.8 to 11
// tokens and gold stayed below the base policy's from iteration 10 to 50; centred, gold rose
// by 1.2 (the unshaped run: 0.8). GRPO and RLOO subtract a per-prompt baseline, which removes the shift.
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// How the proxy score becomes PPO's sequence reward (config `ppo.reward_shaping`).
public enum RewardShaping: String, Codable, Sendable, CaseIterable {
    /// The normalized (optionally clipped) proxy score (PPOMath.swift, `normalizedScore`).
    case none
    /// PAR: the sigmoid of the score minus the reference responses' scores.
    case par
}

/// The logistic sigmoid 1 / (1 + e^{−x}), stable for large |x|.
@inline(__always)
public func logisticSigmoid(_ x: Double) -> Double {
    x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x))
}

/// PAR's reward of a response with proxy score `score`, given the proxy scores of M ≥ 1
/// reference responses to the same prompt, centred: (1/M) Σ_m σ((score − ref_m) / scale) − ½.
/// In (−½, ½); 0 when the response scores like the reference.
public func parReward(score: Double, referenceScores: [Double], scale: Double) -> Double {
    precondition(!referenceScores.isEmpty, "PAR needs at least one reference score")
    precondition(scale > 0, "PAR's scale must be positive")
    var s = 0.0
    for r in referenceScores { s += logisticSigmoid((score - r) / scale) }
    return s / Double(referenceScores.count) - 0.5
}

/// Per-token rewards with the KL penalty of a chosen estimator (Ziegler et al. 2019 with
/// k1; Schulman 2020 for k2 and k3), l_t = logπold_t − logπref_t:
///
///     r_t = −β·k(l_t),    r_{n−1} += s
///
/// with k(l) = l (k1), ½l² (k2) or (e^{−l} − 1) + l (k3). k1 is `perTokenRewards`; k2 and k3
/// are never negative, so every token is penalized for moving away from the reference in
/// either direction.
public func perTokenRewards(score: Double, logRatios: [Double], klCoef: Double, estimator: KLPenaltyEstimator) -> [Double] {
    precondition(!logRatios.isEmpty, "a response has at least one token")
    var r = logRatios.map { -klCoef * estimator.value(logRatio: $0).value }
    r[r.count - 1] += score
    return r
}
