// TokenLogProbs.swift — log-softmax read-outs of the LM head and their exact backward.
//
// Every text objective in OverOpt (pretraining NLL, the GRM regularizers SFT / DPO /
// DPO-no-reference, PPO's ratio and entropy bonus) is a function of two per-position
// quantities of the LM head: the log-probability of the next token and the entropy of the
// next-token distribution. This file computes both from logits and back-propagates any
// upstream gradient with respect to them into the logits:
//
//   logp[n]    = z[n, y_n] − lse(z[n])
//   entropy[n] = −Σ_v p_v log p_v,          p = softmax(z[n])
//   ∂logp/∂z_v    = 1[v = y_n] − p_v
//   ∂entropy/∂z_v = −p_v (log p_v + entropy)
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// For rows where `rowMask[n] != 0`: logp[n] = log softmax(logits[n])[targets[n]],
/// entropy[n] (if non-nil), and lse[n] (saved for backward). Other rows get 0.
/// logits (N,V), targets (N).
public func tokenLogProbsForward(logp: FPtr, entropy: FPtr?, lse: FPtr, logits: FPtr,
                                 targets: UnsafePointer<Int32>, rowMask: FPtr?, N: Int, V: Int) {
    parallelFor(N, costPerItem: 8 * V) { _, rows in
        for n in rows {
            if let rowMask, rowMask[n] == 0 { logp[n] = 0; entropy?[n] = 0; lse[n] = 0; continue }
            let z = logits + n * V
            var mx = -Float.greatestFiniteMagnitude
            for v in 0..<V where z[v] > mx { mx = z[v] }
            // Σ exp(z − max) and Σ exp(z − max)·(z − max), 16 lanes at a time.
            var s = F16(), sz = F16()
            var v = 0
            while v < V {
                let c = min(16, V - v)
                let d = load16(z + v, c) - mx
                var e = vexp(d)
                if c < 16 { for u in c..<16 { e[u] = 0 } }
                s += e; sz += e * d
                v += 16
            }
            let sum = hsum(s)
            let l = mx + logf(sum)
            lse[n] = l
            logp[n] = z[Int(targets[n])] - l
            // H = −Σ p (z − l) = (l − mx) − Σ e·(z − mx)/sum
            entropy?[n] = (l - mx) - hsum(sz) / sum
        }
    }
}

/// dlogits[n] += dlogp[n]·∂logp/∂z + dentropy[n]·∂entropy/∂z for rows with a nonzero
/// upstream gradient. `entropy` must be the forward's output when `dentropy` is given.
public func tokenLogProbsBackward(dlogits: FPtr, dlogp: FPtr, dentropy: FPtr?, entropy: FPtr?,
                                  logits: FPtr, lse: FPtr, targets: UnsafePointer<Int32>,
                                  N: Int, V: Int) {
    parallelFor(N, costPerItem: 8 * V) { _, rows in
        for n in rows {
            let g = dlogp[n]
            let ge = dentropy?[n] ?? 0
            if g == 0 && ge == 0 { continue }
            let z = logits + n * V, dz = dlogits + n * V
            let l = lse[n]
            let h = entropy?[n] ?? 0
            var v = 0
            while v < V {
                let c = min(16, V - v)
                let lp = load16(z + v, c) - l
                let p = vexp(lp)
                let upd: F16 = -g * p - ge * p * (lp + h)
                store16(load16(dz + v, c) + upd, dz + v, c)
                v += 16
            }
            dz[Int(targets[n])] += g
        }
    }
}

/// Numerically stable log σ(x).
@inline(__always)
public func logSigmoid(_ x: Double) -> Double {
    x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x))
}

/// σ(x).
@inline(__always)
public func sigmoid(_ x: Double) -> Double {
    x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x))
}
