// DirectAlignmentMath.swift — the losses of direct alignment: DPO and IPO, on one preference
// pair, with their derivatives in the policy's sequence log-probabilities.
//
// What it is: pure functions of four numbers per pair — the sequence log-probabilities
// log π(y_c|x), log π(y_r|x) of the chosen and rejected responses under the policy, and the
// same under the reference π_ref (the base policy). What it is not: orchestration
// (DPOTrainer.swift). The reference terms are constants: only the policy's get gradients.
//
//     h = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r))
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// Which direct-alignment loss.
public enum DirectAlignmentLoss: String, Codable, Sendable, CaseIterable {
    /// Rafailov et al. 2023 (arXiv 2305.18290, eq. 7): L = −log σ(β·h).
    case dpo
    /// Azar et al. 2023 (arXiv 2310.12036, eq. 17, "IPO"): L = (h − 1/(2β))², which regresses
    /// the log-ratio gap to a finite target instead of pushing it to infinity.
    case ipo
}

/// The loss of one pair and its derivatives in log π(y_c) and log π(y_r):
///
///     DPO: L = −log σ(βh) = softplus(−βh)      ∂L/∂log π(y_c) = −β·σ(−βh),  ∂L/∂log π(y_r) = +β·σ(−βh)
///     IPO: L = (h − 1/(2β))²                   ∂L/∂log π(y_c) = 2(h − 1/(2β)), ∂L/∂log π(y_r) = −2(h − 1/(2β))
///
/// `margin` is h itself (the implicit reward margin divided by β).
public func directAlignmentLoss(_ loss: DirectAlignmentLoss, beta: Double, policyChosen: Double, policyRejected: Double,
                                referenceChosen: Double, referenceRejected: Double)
    -> (loss: Double, gradChosen: Double, gradRejected: Double, margin: Double) {
    let h = (policyChosen - referenceChosen) - (policyRejected - referenceRejected)
    switch loss {
    case .dpo:
        let z = beta * h
        // softplus(−z) = log(1 + e^{−z}), computed stably on both sides.
        let l = z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z))
        let s = 1 / (1 + exp(z))                  // σ(−z)
        return (l, -beta * s, beta * s, h)
    case .ipo:
        let d = h - 1 / (2 * beta)
        return (d * d, 2 * d, -2 * d, h)
    }
}
