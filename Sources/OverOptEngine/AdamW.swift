// AdamW.swift — the optimizer, learning-rate schedule and gradient clipping.
//
// AdamW (Loshchilov & Hutter, arXiv 1711.05101): decoupled weight decay, applied only to
// tensors marked `decay` in the layout (matrices and embeddings; not biases, not
// LayerNorm). Moments share the parameter layout, so a step is one flat loop per tensor.
// Frozen groups are skipped entirely.
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// AdamW hyperparameters.
public struct AdamWConfig: Codable, Sendable, Equatable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0.1

    public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.95, eps: Float = 1e-8, weightDecay: Float = 0.1) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }
}

/// AdamW state for one model.
public final class AdamW: @unchecked Sendable {
    public var config: AdamWConfig
    let m: FloatBuffer
    let v: FloatBuffer
    /// Number of steps taken.
    public private(set) var step = 0

    public init(model: Transformer, config: AdamWConfig) {
        self.config = config
        m = FloatBuffer(count: model.parameterCount)
        v = FloatBuffer(count: model.parameterCount)
    }

    /// One update of every non-frozen tensor at learning rate `lr` (default: the config's).
    public func update(_ model: Transformer, lr: Float? = nil) {
        step += 1
        let lr = lr ?? config.learningRate
        let b1 = config.beta1, b2 = config.beta2, eps = config.eps
        let c1 = 1 - powf(b1, Float(step)), c2 = 1 - powf(b2, Float(step))
        let P = model.params.ptr, G = model.grads.ptr, M = m.ptr, V = v.ptr
        // One parallel loop over the trainable tensors laid end to end (one thread wake-up
        // per step instead of one per tensor), 16 lanes at a time within each tensor.
        let spans = model.layout.tensors.filter { !model.frozen.contains($0.group) }
            .map { (offset: $0.offset, count: $0.count, wd: $0.decay ? config.weightDecay : 0) }
        var starts = [0]
        for s in spans { starts.append(starts.last! + s.count) }
        let total = starts.last!
        @inline(__always) func scalar(_ i: Int, _ wd: Float) {
            let g = G[i]
            let mi = b1 * M[i] + (1 - b1) * g
            let vi = b2 * V[i] + (1 - b2) * g * g
            M[i] = mi; V[i] = vi
            let mhat = mi / c1, vhat = vi / c2
            P[i] -= lr * (mhat / (vhat.squareRoot() + eps) + wd * P[i])
        }
        spans.withUnsafeBufferPointer { spans in
            starts.withUnsafeBufferPointer { starts in
                parallelFor(total, costPerItem: 4) { _, range in
                    var k = 0
                    while starts[k + 1] <= range.lowerBound { k += 1 }
                    while k < spans.count && starts[k] < range.upperBound {
                        let s = spans[k]
                        let lo = s.offset + max(0, range.lowerBound - starts[k])
                        let hi = s.offset + min(s.count, range.upperBound - starts[k])
                        let wd = F16(repeating: s.wd)
                        var i = lo
                        while i + 16 <= hi {
                            let g = load16(G + i), p = load16(P + i)
                            let mi: F16 = b1 * load16(M + i) + (1 - b1) * g
                            let vi: F16 = b2 * load16(V + i) + (1 - b2) * g * g
                            store16(mi, M + i); store16(vi, V + i)
                            let mhat: F16 = mi / c1, vhat: F16 = vi / c2
                            store16(p - lr * (mhat / (vhat.squareRoot() + eps) + wd * p), P + i)
                            i += 16
                        }
                        while i < hi { scalar(i, s.wd); i += 1 }
                        k += 1
                    }
                }
            }
        }
    }
}

/// Global L2 norm of the non-frozen gradients.
public func gradientNorm(_ model: Transformer) -> Float {
    var s: Double = 0
    let G = model.grads.ptr
    for t in model.layout.tensors where !model.frozen.contains(t.group) {
        var ts: Float = 0
        for i in t.offset..<(t.offset + t.count) { ts += G[i] * G[i] }
        s += Double(ts)
    }
    return Float(s.squareRoot())
}

/// Scales the gradients so that their global norm is at most `maxNorm`; returns the norm
/// before clipping (as torch.nn.utils.clip_grad_norm_ does, with the same 1e-6 guard).
@discardableResult
public func clipGradientNorm(_ model: Transformer, maxNorm: Float) -> Float {
    let norm = gradientNorm(model)
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 {
        let G = model.grads.ptr
        for t in model.layout.tensors where !model.frozen.contains(t.group) {
            for i in t.offset..<(t.offset + t.count) { G[i] *= coef }
        }
    }
    return norm
}

/// Linear warmup followed by cosine decay to `minRatio`·peak.
///
///     lr(s) = peak·(s+1)/warmup                      for s < warmup
///     lr(s) = peak·(minRatio + (1−minRatio)·½(1 + cos(π·(s−warmup)/(total−warmup))))
public struct CosineSchedule: Sendable, Equatable {
    public var peak: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minRatio: Float

    public init(peak: Float, warmupSteps: Int, totalSteps: Int, minRatio: Float = 0.1) {
        self.peak = peak; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps; self.minRatio = minRatio
    }

    /// A schedule whose warmup is `warmupFraction` of `totalSteps` (the paper uses 3%).
    public init(peak: Float, totalSteps: Int, warmupFraction: Float, minRatio: Float = 0.1) {
        self.init(peak: peak, warmupSteps: Int((Float(totalSteps) * warmupFraction).rounded()),
                  totalSteps: totalSteps, minRatio: minRatio)
    }

    public func learningRate(step s: Int) -> Float {
        if s < warmupSteps { return peak * Float(s + 1) / Float(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let progress = min(1, Float(s - warmupSteps) / Float(span))
        return peak * (minRatio + (1 - minRatio) * 0.5 * (1 + cosf(Float.pi * progress)))
    }
}
