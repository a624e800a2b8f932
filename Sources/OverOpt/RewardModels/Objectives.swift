// Objectives.swift — the reward-model losses and GRM regularizers as pure functions.
//
// What it is: each loss of docs/paper.md §2 for one preference pair (x, y_c, y_r), with its
// gradient with respect to its inputs — rewards r_c, r_r for the reward losses, summed
// response log-probabilities log π(y|x) for the GRM regularizers. The trainer
// (RewardModelTraining.swift) averages them over a batch and feeds the gradients to the
// engine's backward. What it is not: anything that touches a model.
//
// Notation: Δr = r_c − r_r, σ the logistic function, log σ(z) computed stably.
// d/dz [−log σ(z)] = −σ(−z).
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif
import OverOptEngine

/// A per-pair loss and its gradients with respect to the chosen and rejected inputs
/// (rewards, or summed log-probabilities for the regularizers).
public struct PairLoss: Sendable, Equatable {
    public var loss: Double
    public var dChosen: Double
    public var dRejected: Double

    public init(loss: Double, dChosen: Double, dRejected: Double) {
        self.loss = loss; self.dChosen = dChosen; self.dRejected = dRejected
    }
}

/// −log σ(z) and its derivative −σ(−z): the shape of every objective here.
@inline(__always)
func negLogSigmoid(_ z: Double) -> (value: Double, derivative: Double) {
    (-logSigmoid(z), -sigmoid(-z))
}

// MARK: - Reward losses

/// Bradley–Terry: L = −log σ(r_c − r_r).
/// ∂L/∂r_c = −σ(−Δr), ∂L/∂r_r = +σ(−Δr).
public func bradleyTerryLoss(chosen: Double, rejected: Double) -> PairLoss {
    let (l, d) = negLogSigmoid(chosen - rejected)
    return PairLoss(loss: l, dChosen: d, dRejected: -d)
}

/// Margin (Llama-2 style; docs/paper.md §2): L = −log σ(r_c − r_r − m), m = the pair's gold
/// margin times a scale (computed by the caller). ∂L/∂r_c = −σ(−(Δr − m)) = −∂L/∂r_r.
public func marginLoss(chosen: Double, rejected: Double, margin: Double) -> PairLoss {
    let (l, d) = negLogSigmoid(chosen - rejected - margin)
    return PairLoss(loss: l, dChosen: d, dRejected: -d)
}

/// Label smoothing: L = −(1−ε)·log σ(Δr) − ε·log σ(−Δr).
/// ∂L/∂Δr = −(1−ε)·σ(−Δr) + ε·σ(Δr); ∂L/∂r_c = ∂L/∂Δr = −∂L/∂r_r.
public func labelSmoothingLoss(chosen: Double, rejected: Double, epsilon: Double) -> PairLoss {
    let z = chosen - rejected
    let l = -(1 - epsilon) * logSigmoid(z) - epsilon * logSigmoid(-z)
    let d = -(1 - epsilon) * sigmoid(-z) + epsilon * sigmoid(z)
    return PairLoss(loss: l, dChosen: d, dRejected: -d)
}

// MARK: - InfoRM's information bottleneck (on the latent of a variational reward head)

/// The KL of a diagonal Gaussian q = N(μ, diag σ²) to the standard normal, with its
/// gradients (Kingma & Welling 2014; InfoRM's bottleneck term, Miao et al. 2024):
/// KL(q ‖ N(0, I)) = ½ Σ_d (μ_d² + σ_d² − 1 − log σ_d²),
/// ∂KL/∂μ_d = μ_d, ∂KL/∂log σ_d² = ½(σ_d² − 1). `logVariance` holds log σ_d².
public func gaussianKLToStandardNormal(mean: [Double], logVariance: [Double]) -> (kl: Double, dMean: [Double], dLogVariance: [Double]) {
    precondition(mean.count == logVariance.count, "one log-variance per latent dimension")
    var kl = 0.0
    var dLogVariance = [Double](repeating: 0, count: mean.count)
    for d in mean.indices {
        let v = exp(logVariance[d])
        kl += 0.5 * (mean[d] * mean[d] + v - 1 - logVariance[d])
        dLogVariance[d] = 0.5 * (v - 1)
    }
    return (kl, mean, dLogVariance)
}

// MARK: - GRM regularizers (on summed response log-probabilities)

/// GRM-SFT (the paper's default regularizer): L = −log σ(β·log π(y_c|x)), chosen only.
/// ∂L/∂log π(y_c|x) = −β·σ(−β·log π(y_c|x)); ∂L/∂log π(y_r|x) = 0.
public func sftRegularizer(chosenLogProb: Double, beta: Double) -> PairLoss {
    let (l, d) = negLogSigmoid(beta * chosenLogProb)
    return PairLoss(loss: l, dChosen: beta * d, dRejected: 0)
}

/// Plain negative log-likelihood of the chosen response, per response token:
/// L = −log π(y_c|x) / |y_c|, ∂L/∂log π(y_c|x) = −1/|y_c|.
/// The paper writes the sum (−log π(y_c|x)); we divide by the number of response tokens
/// (EOS included) so that the regularizer is the usual per-token SFT loss, of order
/// 1 nat like the reward loss, and its weight α does not depend on response length.
public func sftNLL(chosenLogProb: Double, tokens: Int) -> PairLoss {
    precondition(tokens > 0, "sftNLL needs at least one response token")
    let n = Double(tokens)
    return PairLoss(loss: -chosenLogProb / n, dChosen: -1 / n, dRejected: 0)
}

/// GRM-DPO: L = −log σ(β·[(log π(y_c) − log π(y_r)) − (log π_ref(y_c) − log π_ref(y_r))]),
/// π_ref the frozen base policy (its log-probabilities are constants here).
/// ∂L/∂log π(y_c) = −β·σ(−z) = −∂L/∂log π(y_r), z the argument of σ.
public func dpoRegularizer(chosenLogProb: Double, rejectedLogProb: Double,
                           referenceChosenLogProb: Double, referenceRejectedLogProb: Double,
                           beta: Double) -> PairLoss {
    let z = beta * ((chosenLogProb - rejectedLogProb) - (referenceChosenLogProb - referenceRejectedLogProb))
    let (l, d) = negLogSigmoid(z)
    return PairLoss(loss: l, dChosen: beta * d, dRejected: -beta * d)
}

/// GRM-DPO without reference: L = −log σ(β·(log π(y_c) − log π(y_r))).
/// ∂L/∂log π(y_c) = −β·σ(−z) = −∂L/∂log π(y_r).
public func dpoNoRefRegularizer(chosenLogProb: Double, rejectedLogProb: Double, beta: Double) -> PairLoss {
    let (l, d) = negLogSigmoid(beta * (chosenLogProb - rejectedLogProb))
    return PairLoss(loss: l, dChosen: beta * d, dRejected: -beta * d)
}

/// The GRM objective: L = (1 − α)·L_reward + α·L_reg (docs/paper.md §2). Gradients scale alike.
public func grmCombined(reward: Double, regularizer: Double, alpha: Double) -> Double {
    (1 - alpha) * reward + alpha * regularizer
}
