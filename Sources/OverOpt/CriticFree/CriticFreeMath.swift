// CriticFreeMath.swift — the pure math of the critic-free optimizers GRPO and RLOO: their
// advantages, the per-token KL penalty GRPO puts in its loss, and the loss weights.
//
// What it is: small functions on plain arrays, one per formula, each with its reference.
// What it is not: orchestration (CriticFreeTrainer.swift). The clipped surrogate itself is
// PPO's (`clippedSurrogate`, PPOMath.swift): GRPO uses it per token with the sequence's
// advantage.
//
// Both sample a group of G responses per prompt; rewards r_1 … r_G are the proxy's scores
// of the group (RLOO: minus β times each response's KL, k1, to the reference).
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif
import OverOptEngine

// MARK: Advantages

/// GRPO's group-relative advantages (Shao et al. 2024, DeepSeekMath, arXiv 2402.03300, §4.1.2,
/// outcome supervision): every token of response i gets
///
///     A_i = (r_i − mean(r)) / std(r)        (scaleByStd, the paper)
///     A_i =  r_i − mean(r)                  (Liu et al. 2025, "Understanding R1-Zero-Like
///                                            Training", arXiv 2503.20783: Dr. GRPO drops the
///                                            std division, which weights low-variance groups up)
///
/// std is the population standard deviation of the group (a group whose rewards are all equal
/// gets A = 0, not 0/0: its std is replaced by 1). `rewards` holds consecutive groups of
/// `groupSize`.
public func groupRelativeAdvantages(_ rewards: [Double], groupSize g: Int, scaleByStd: Bool) -> [Double] {
    precondition(g >= 1 && rewards.count % g == 0, "rewards must be whole groups")
    var out = [Double](repeating: 0, count: rewards.count)
    for lo in stride(from: 0, to: rewards.count, by: g) {
        let r = rewards[lo..<(lo + g)]
        let (mean, sd) = Statistics.meanAndStandardDeviation(r)
        let scale = scaleByStd && sd > 1e-8 ? 1 / sd : 1
        for i in lo..<(lo + g) { out[i] = (rewards[i] - mean) * scale }
    }
    return out
}

/// RLOO's leave-one-out advantages (Kool et al. 2019, "Buy 4 REINFORCE samples, get a baseline
/// for free!"; Ahmadian et al. 2024, "Back to Basics", arXiv 2402.14740, eq. 6): the baseline
/// of sample i is the mean reward of the other k − 1 samples of its prompt,
///
///     A_i = r_i − 1/(k−1) Σ_{j≠i} r_j  =  k/(k−1) · (r_i − mean(r)),
///
/// which keeps the REINFORCE estimator unbiased (the baseline does not depend on y_i).
/// `rewards` holds consecutive groups of `groupSize` k ≥ 2.
public func leaveOneOutAdvantages(_ rewards: [Double], groupSize k: Int) -> [Double] {
    precondition(k >= 2 && rewards.count % k == 0, "rewards must be whole groups of at least 2")
    var out = [Double](repeating: 0, count: rewards.count)
    for lo in stride(from: 0, to: rewards.count, by: k) {
        let sum = rewards[lo..<(lo + k)].reduce(0, +)
        for i in lo..<(lo + k) { out[i] = rewards[i] - (sum - rewards[i]) / Double(k - 1) }
    }
    return out
}

/// RLOO's sequence reward with the KL penalty in the reward (Ahmadian et al. 2024, §3; as
/// in Ziegler et al. 2019 but summed over the sequence): r = score − β·Σ_t (logπold_t − logπref_t).
public func klPenalizedReward(score: Double, logRatios: [Double], klCoef: Double) -> Double {
    score - klCoef * logRatios.reduce(0, +)
}

// MARK: KL penalty in the loss (GRPO)

/// The per-token estimator of KL(π‖π_ref) GRPO adds to its loss, as a function of the log-ratio
/// l = logπ − logπref (J. Schulman, "Approximating KL divergence", 2020), with its derivative in
/// logπ:
///
///     k1 = l                      ∂/∂logπ = 1
///     k2 = ½ l²                   ∂/∂logπ = l
///     k3 = e^{−l} − 1 + l         ∂/∂logπ = 1 − e^{−l}     (DeepSeekMath eq. 4, the default)
public enum KLPenaltyEstimator: String, Codable, Sendable, CaseIterable {
    case k1, k2, k3

    public func value(logRatio l: Double) -> (value: Double, gradLogp: Double) {
        switch self {
        case .k1: return (l, 1)
        case .k2: return (0.5 * l * l, l)
        case .k3: return (expm1(-l) + l, -expm1(-l))
        }
    }
}

// MARK: Token weights

/// The weight of each token of response i in GRPO's loss, for a minibatch of `responses`
/// responses (DeepSeekMath eq. 3 averages tokens within a response, then responses):
///
///     w_i = 1 / (|y_i| · responses)                 (lengthNormalization, the paper)
///     w_i = 1 / (maxTokens · responses)             (Liu et al. 2025: a constant, so long
///                                                    wrong answers are not penalized less)
public func grpoTokenWeight(length: Int, responses: Int, maxTokens: Int, lengthNormalization: Bool) -> Double {
    1 / (Double(lengthNormalization ? length : maxTokens) * Double(responses))
}

/// GRPO's per-token loss and its derivative in logπ: PPO's clipped surrogate with the
/// response's advantage, plus β times the KL estimator (DeepSeekMath eq. 3, negated):
///
///     L_t = −min(ρ_t A, clip(ρ_t, 1−ε, 1+ε) A) + β·k(logπ_t − logπref_t)
@inline(__always)
public func grpoTokenLoss(logp: Double, oldLogp: Double, refLogp: Double, advantage: Double, clipRange: Double,
                          klCoef: Double, estimator: KLPenaltyEstimator) -> (loss: Double, gradLogp: Double, clipped: Bool) {
    let s = clippedSurrogate(logp: logp, oldLogp: oldLogp, advantage: advantage, clipRange: clipRange)
    guard klCoef != 0 else { return s }
    let k = estimator.value(logRatio: logp - refLogp)
    return (s.loss + klCoef * k.value, s.gradLogp + klCoef * k.gradLogp, s.clipped)
}

/// REINFORCE's loss for one response (Williams 1992; RLOO: Ahmadian et al. 2024, eq. 5) and
/// its derivative in each token's logπ:
///
///     L = −A · Σ_t logπ_t           ∂L/∂logπ_t = −A
public func reinforceLoss(logps: [Double], advantage: Double) -> (loss: Double, gradLogp: Double) {
    (-advantage * logps.reduce(0, +), -advantage)
}
