// PPOMath.swift — the pure math of PPO for language models: per-token rewards, GAE,
// advantage whitening, the clipped surrogate and value losses with their gradients, the
// three KL estimators and the adaptive KL controller.
//
// What it is: small functions on plain arrays, one per formula, each with its reference.
// What it is not: orchestration. Rollouts, forward/backward passes, the optimizer and the
// evaluation live in PPOTrainer.swift.
//
// Conventions. A response y = (y_0 … y_{n−1}) to a prompt x is an episode of n actions;
// the state before action t is (x, y_<t). Per token t:
//   logπ_t      = log π_θ(y_t | x, y_<t)        (current policy, raw logits: temperature 1)
//   logπold_t   = the same under the policy that produced the rollout (θ_old)
//   logπref_t   = the same under the frozen reference (the base policy)
//   V_t         = the value head's estimate at state t
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif
import OverOptEngine

// MARK: Rewards

/// Per-token rewards of one response (Ziegler et al. 2019, arXiv 1909.08593, eq. 2; the
/// TRL / InstructGPT convention):
///
///     r_t = −β·(logπold_t − logπref_t)            for every token t
///     r_{n−1} += s                                 the sequence score at the last token
///
/// where s is the (normalized, optionally clipped) proxy score of the whole response and β
/// the KL coefficient. With β = 0 (the paper's setting) only the last token is rewarded.
/// `logRatios[t]` = logπold_t − logπref_t.
public func perTokenRewards(score: Double, logRatios: [Double], klCoef: Double) -> [Double] {
    precondition(!logRatios.isEmpty, "a response has at least one token")
    var r = logRatios.map { -klCoef * $0 }
    r[r.count - 1] += score
    return r
}

/// The sequence score as the policy sees it: normalized with a fixed mean and standard
/// deviation (the paper: those of the first rollout batch), then optionally clipped:
///
///     s = clip((score − μ) / σ, −c, c)
public func normalizedScore(_ score: Double, mean: Double, std: Double, clip: Double?) -> Double {
    let s = (score - mean) / std
    guard let c = clip else { return s }
    return min(c, max(-c, s))
}

// MARK: Generalized advantage estimation

/// Generalized advantage estimation (Schulman et al. 2016, arXiv 1506.02438, eq. 16) over
/// one response, with the episode ending after the last token (V_n = 0):
///
///     δ_t = r_t + γ·V_{t+1} − V_t
///     A_t = δ_t + γλ·A_{t+1}          (A_n = 0)
///     R_t = A_t + V_t                 (the value target, a λ-return)
public func generalizedAdvantages(rewards: [Double], values: [Double], gamma: Double, lambda: Double)
    -> (advantages: [Double], returns: [Double]) {
    precondition(rewards.count == values.count, "one value per reward")
    let n = rewards.count
    var adv = [Double](repeating: 0, count: n)
    var next: Double = 0, nextValue: Double = 0
    for t in stride(from: n - 1, through: 0, by: -1) {
        let delta = rewards[t] + gamma * nextValue - values[t]
        next = delta + gamma * lambda * next
        adv[t] = next
        nextValue = values[t]
    }
    let ret = zip(adv, values).map { $0 + $1 }
    return (adv, ret)
}

/// Whitening over a batch of advantages: (A − mean)/(std + 1e-8), the population standard
/// deviation (as in common PPO implementations; keeps the policy step scale-free).
public func whiten(_ x: [Double]) -> [Double] {
    guard x.count > 1 else { return x.map { _ in 0 } }
    let mean = Statistics.mean(x)
    let inv = 1 / (Statistics.variance(x, mean: mean).squareRoot() + 1e-8)
    return x.map { ($0 - mean) * inv }
}

// MARK: Losses

/// PPO's clipped surrogate loss for one token (Schulman et al. 2017, arXiv 1707.06347, eq. 7)
/// and its gradient with respect to the new log-probability:
///
///     ρ = exp(logπ − logπold)
///     L = −min(ρ·A, clip(ρ, 1−ε, 1+ε)·A)
///     ∂L/∂logπ = −ρ·A   where the unclipped term is the minimum,
///              = 0      where the clipped term is (then it is constant in ρ).
///
/// `clipped` is true where the clipped term is strictly smaller: the token's gradient is 0.
@inline(__always)
public func clippedSurrogate(logp: Double, oldLogp: Double, advantage a: Double, clipRange eps: Double)
    -> (loss: Double, gradLogp: Double, clipped: Bool) {
    let ratio = exp(logp - oldLogp)
    let unclipped = ratio * a
    let clippedTerm = min(1 + eps, max(1 - eps, ratio)) * a
    if clippedTerm < unclipped { return (-clippedTerm, 0, true) }
    return (-unclipped, -unclipped, false)
}

/// PPO's clipped value loss for one token (as in OpenAI baselines' ppo2 and TRL) and its
/// gradient with respect to the new value:
///
///     v_clip = v_old + clip(v − v_old, −ε_v, ε_v)
///     L = ½·max((v − R)², (v_clip − R)²)
///     ∂L/∂v = v − R   where the unclipped term is the maximum,
///           = 0       where the clipped term is (v_clip is then constant in v).
///
/// `clipped` is true where the clipped term is strictly larger.
@inline(__always)
public func clippedValueLoss(value v: Double, oldValue: Double, target r: Double, clipRange eps: Double)
    -> (loss: Double, gradValue: Double, clipped: Bool) {
    let vClip = oldValue + min(eps, max(-eps, v - oldValue))
    let unclipped = (v - r) * (v - r), clippedTerm = (vClip - r) * (vClip - r)
    if clippedTerm > unclipped { return (0.5 * clippedTerm, 0, true) }
    return (0.5 * unclipped, v - r, false)
}

// MARK: KL estimators

/// The three per-sample estimators of KL(π‖π_ref) from the per-token log-ratios
/// l_t = logπ_t − logπref_t of one response sampled from π (J. Schulman, "Approximating KL
/// divergence", 2020):
///
///     k1 = Σ_t l_t                             unbiased, high variance, can be negative
///     k2 = Σ_t ½·l_t²                          biased, low variance, ≥ 0
///     k3 = Σ_t ((ρ_t − 1) − log ρ_t),  ρ_t = π_ref/π = exp(−l_t)    unbiased, ≥ 0
///
/// The paper's KL is the mean of k1 over samples. Summing per-token estimates gives an
/// estimate of the sequence-level KL because E over y_t of each term is the per-state KL
/// (for k1 and k3) and the sequence KL is the sum of per-state KLs along the trajectory.
public struct KLEstimates: Sendable, Equatable {
    public var k1: Double
    public var k2: Double
    public var k3: Double
    public init(k1: Double, k2: Double, k3: Double) { self.k1 = k1; self.k2 = k2; self.k3 = k3 }
}

/// k1, k2, k3 of one response from its per-token log-ratios logπ − logπref.
public func klEstimates(logRatios: [Double]) -> KLEstimates {
    var k = KLEstimates(k1: 0, k2: 0, k3: 0)
    for l in logRatios {
        k.k1 += l
        k.k2 += 0.5 * l * l
        k.k3 += expm1(-l) + l          // (ρ − 1) − log ρ with ρ = e^{−l}
    }
    return k
}

// MARK: Adaptive KL controller

/// The adaptive KL coefficient of Ziegler et al. 2019 (arXiv 1909.08593, §2.2): after each
/// rollout batch of n samples whose measured KL is KL,
///
///     e = clip(KL / KL_target − 1, −0.2, 0.2)
///     β ← β·(1 + K_β·e·n / horizon)
///
/// with K_β = 0.1 and horizon 10 000 samples as in the paper.
public struct AdaptiveKLController: Sendable, Equatable {
    public private(set) var value: Double
    public let target: Double
    public let horizon: Double
    public let gain: Double

    public init(initial: Double, target: Double, horizon: Double = 10_000, gain: Double = 0.1) {
        precondition(target > 0, "the target KL must be positive")
        value = initial; self.target = target; self.horizon = horizon; self.gain = gain
    }

    /// Updates β from the batch's mean KL over `samples` responses.
    public mutating func update(measuredKL kl: Double, samples n: Int) {
        let e = min(0.2, max(-0.2, kl / target - 1))
        value *= 1 + gain * e * Double(n) / horizon
    }
}
