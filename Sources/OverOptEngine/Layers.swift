// Layers.swift — every layer of the transformer as a pair of plain functions,
// `*Forward` and `*Backward`, on flat buffers (after llm.c's train_gpt2.c).
//
// Dimension legend: B batch, T time (sequence), C channels (width), OC output channels,
// NH heads, hs = C/NH head size, V vocabulary. N = B·T when a layer does not care.
// Convention: every backward *accumulates* (+=) into its input and weight gradients, so
// the caller zeroes gradients once per step and gradient accumulation is free.
// These are also the slow-but-obvious references: the gradient checks in
// Tests/EngineTests compare each of them with finite differences.
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

// MARK: - Embedding

/// out (B,T,C) = wte[tokens] + wpe[0..<T].  tokens (B,T), wte (V,C), wpe (maxT,C).
public func embeddingForward(out: FPtr, tokens: UnsafePointer<Int32>, wte: FPtr, wpe: FPtr,
                             B: Int, T: Int, C: Int) {
    for b in 0..<B {
        for t in 0..<T {
            let o = out + (b * T + t) * C
            let e = wte + Int(tokens[b * T + t]) * C
            let p = wpe + t * C
            for i in 0..<C { o[i] = e[i] + p[i] }
        }
    }
}

/// dwte[tokens] += dout, dwpe[t] += dout.  Either gradient pointer may be nil (frozen).
public func embeddingBackward(dwte: FPtr?, dwpe: FPtr?, dout: FPtr, tokens: UnsafePointer<Int32>,
                              B: Int, T: Int, C: Int) {
    for b in 0..<B {
        for t in 0..<T {
            let d = dout + (b * T + t) * C
            if let dwte {
                let e = dwte + Int(tokens[b * T + t]) * C
                for i in 0..<C { e[i] += d[i] }
            }
            if let dwpe {
                let p = dwpe + t * C
                for i in 0..<C { p[i] += d[i] }
            }
        }
    }
}

// MARK: - LayerNorm

/// out (N,C) = (x − mean)/sqrt(var + 1e-5) · w + b; saves mean (N) and rstd (N).
public func layerNormForward(out: FPtr, mean: FPtr, rstd: FPtr, inp: FPtr, weight: FPtr, bias: FPtr,
                             N: Int, C: Int) {
    let eps: Float = 1e-5
    let full = C / 16 * 16
    parallelFor(N, costPerItem: 4 * C) { _, rows in
        for n in rows {
            let x = inp + n * C
            let m = vsum(x, C) / Float(C)
            let mv = F16(repeating: m)
            var acc = F16()
            var i = 0
            while i < full { let d = load16(x + i) - mv; acc = acc.addingProduct(d, d); i += 16 }
            var v = hsum(acc)
            while i < C { let d = x[i] - m; v += d * d; i += 1 }
            v /= Float(C)
            let s = 1 / (v + eps).squareRoot()
            let o = out + n * C
            let sv = F16(repeating: s)
            i = 0
            while i < full {
                store16((load16(x + i) - mv) * sv * load16(weight + i) + load16(bias + i), o + i)
                i += 16
            }
            while i < C { o[i] = (x[i] - m) * s * weight[i] + bias[i]; i += 1 }
            mean[n] = m
            rstd[n] = s
        }
    }
}

/// Backward of LayerNorm: dinp += …, dweight += …, dbias += … (weight grads may be nil).
public func layerNormBackward(dinp: FPtr, dweight: FPtr?, dbias: FPtr?, dout: FPtr, inp: FPtr,
                              weight: FPtr, mean: FPtr, rstd: FPtr, N: Int, C: Int) {
    // Partial sums of the weight gradients over a fixed number of row chunks (independent of
    // the thread count), added in chunk order: results are identical for any thread count.
    let chunks = min(N, 16), full = C / 16 * 16
    let partial = FloatBuffer(count: chunks * 2 * C)
    parallelFor(chunks, costPerItem: 6 * C * N / max(1, chunks)) { _, chunkRange in
      for chunk in chunkRange {
        let pw = partial.ptr + chunk * 2 * C, pb = pw + C
        for n in (chunk * N / chunks)..<((chunk + 1) * N / chunks) {
            let d = dout + n * C, x = inp + n * C, di = dinp + n * C
            let m = mean[n], s = rstd[n]
            let mv = F16(repeating: m), sv = F16(repeating: s)
            // Σ dnorm and Σ dnorm·norm over the row (16 lanes, then the tail).
            var a1 = F16(), a2 = F16()
            var i = 0
            while i < full {
                let norm = (load16(x + i) - mv) * sv
                let dnorm = load16(weight + i) * load16(d + i)
                a1 += dnorm
                a2 = a2.addingProduct(dnorm, norm)
                i += 16
            }
            var dnormMean = hsum(a1), dnormNormMean = hsum(a2)
            while i < C {
                let norm = (x[i] - m) * s
                let dnorm = weight[i] * d[i]
                dnormMean += dnorm
                dnormNormMean += dnorm * norm
                i += 1
            }
            dnormMean /= Float(C)
            dnormNormMean /= Float(C)
            let dm = F16(repeating: dnormMean), dnm = F16(repeating: dnormNormMean)
            i = 0
            while i < full {
                let dv = load16(d + i)
                let norm = (load16(x + i) - mv) * sv
                let dnorm = load16(weight + i) * dv
                store16(load16(pb + i) + dv, pb + i)
                store16(load16(pw + i) + norm * dv, pw + i)
                store16(load16(di + i) + (dnorm - dm - norm * dnm) * sv, di + i)
                i += 16
            }
            while i < C {
                let norm = (x[i] - m) * s
                let dnorm = weight[i] * d[i]
                pb[i] += d[i]
                pw[i] += norm * d[i]
                di[i] += (dnorm - dnormMean - norm * dnormNormMean) * s
                i += 1
            }
        }
      }
    }
    for chunk in 0..<chunks {
        let pw = partial.ptr + chunk * 2 * C, pb = pw + C
        if let dweight { for i in 0..<C { dweight[i] += pw[i] } }
        if let dbias { for i in 0..<C { dbias[i] += pb[i] } }
    }
}

/// Σ x[0..<n] with 16-lane partial sums.
@inline(__always)
func vsum(_ x: FPtr, _ n: Int) -> Float {
    var acc = F16()
    var i = 0
    while i + 16 <= n { acc += load16(x + i); i += 16 }
    var s = hsum(acc)
    while i < n { s += x[i]; i += 1 }
    return s
}

// MARK: - Linear (matmul)

/// out (N,OC) = inp (N,C) · weightᵀ + bias.  weight (OC,C) as in PyTorch's Linear; bias may be nil.
public func linearForward(out: FPtr, inp: FPtr, weight: FPtr, bias: FPtr?, N: Int, C: Int, OC: Int) {
    if let bias {
        parallelFor(N, costPerItem: OC) { _, rows in
            for n in rows { (out + n * OC).update(from: bias, count: OC) }
        }
    }
    gemm(transA: false, transB: true, M: N, N: OC, K: C, alpha: 1, A: inp, lda: C,
         B: weight, ldb: C, beta: bias == nil ? 0 : 1, C: out, ldc: OC)
}

/// dinp (N,C) += dout·weight; dweight (OC,C) += doutᵀ·inp; dbias += Σ_n dout. Any may be nil.
/// With `accumulate: false`, dinp is overwritten instead (saves zeroing it first).
public func linearBackward(dinp: FPtr?, dweight: FPtr?, dbias: FPtr?, dout: FPtr, inp: FPtr,
                           weight: FPtr, N: Int, C: Int, OC: Int, accumulate: Bool = true) {
    if let dinp {
        gemm(transA: false, transB: false, M: N, N: C, K: OC, alpha: 1, A: dout, lda: OC,
             B: weight, ldb: C, beta: accumulate ? 1 : 0, C: dinp, ldc: C)
    }
    if let dweight {
        gemm(transA: true, transB: false, M: OC, N: C, K: N, alpha: 1, A: dout, lda: OC,
             B: inp, ldb: C, beta: 1, C: dweight, ldc: C)
    }
    if let dbias { columnSums(into: dbias, dout, N: N, OC: OC) }
}

/// acc (OC) += Σ_n x[n, ·] for x (N,OC), parallel over column blocks.
func columnSums(into acc: FPtr, _ x: FPtr, N: Int, OC: Int) {
    let blocks = (OC + 15) / 16
    parallelFor(blocks, costPerItem: 16 * N) { _, range in
        for blk in range {
            let j0 = blk * 16, w = min(16, OC - j0)
            var s = F16()
            for n in 0..<N { s += load16(x + n * OC + j0, w) }
            store16(load16(acc + j0, w) + s, acc + j0, w)
        }
    }
}

// MARK: - Causal self-attention

/// Causal multi-head attention.  qkv (B,T,3C) holds q|k|v; out (B,T,C);
/// att (B,NH,T,T) saves the softmax probabilities (zero above the diagonal).
public func attentionForward(out: FPtr, att: FPtr, qkv: FPtr, B: Int, T: Int, C: Int, NH: Int) {
    let hs = C / NH
    let scale = 1 / Float(hs).squareRoot()
    let C3 = 3 * C
    parallelFor(B * NH, costPerItem: 4 * T * T * hs) { _, items in
        for item in items {
            let b = item / NH, h = item % NH
            let q = qkv + b * T * C3 + h * hs
            let k = q + C, v = q + 2 * C
            let a = att + (b * NH + h) * T * T
            // scores (T,T) = scale · q kᵀ
            gemm(transA: false, transB: true, M: T, N: T, K: hs, alpha: scale, A: q, lda: C3,
                 B: k, ldb: C3, beta: 0, C: a, ldc: T)
            for t in 0..<T { causalSoftmaxRow(a + t * T, t: t, T: T) }
            // out (T,hs) = att · v
            gemm(transA: false, transB: false, M: T, N: hs, K: T, alpha: 1, A: a, lda: T,
                 B: v, ldb: C3, beta: 0, C: out + b * T * C + h * hs, ldc: C)
        }
    }
}

/// In-place softmax over row[0...t]; entries after t are set to zero (the causal mask).
@inline(__always)
func causalSoftmaxRow(_ row: FPtr, t: Int, T: Int) {
    let n = t + 1
    var mx = -Float.greatestFiniteMagnitude
    for j in 0..<n where row[j] > mx { mx = row[j] }
    var sum: Float = 0
    var j = 0
    while j < n {
        let c = min(16, n - j)
        let e = vexp(load16(row + j, c) - mx)
        store16(e, row + j, c)
        if c == 16 { sum += hsum(e) } else { for u in 0..<c { sum += e[u] } }
        j += 16
    }
    let inv = 1 / sum
    for j in 0..<n { row[j] *= inv }
    if n < T { for j in n..<T { row[j] = 0 } }
}

/// Backward of causal attention: dqkv (B,T,3C) += …  given dout (B,T,C).
/// With `accumulate: false`, dqkv is overwritten (every entry is written exactly once).
public func attentionBackward(dqkv: FPtr, dout: FPtr, qkv: FPtr, att: FPtr, B: Int, T: Int, C: Int, NH: Int,
                              accumulate: Bool = true) {
    let beta: Float = accumulate ? 1 : 0
    let hs = C / NH
    let scale = 1 / Float(hs).squareRoot()
    let C3 = 3 * C
    let parts = parallelParts(B * NH, costPerItem: 8 * T * T * hs)
    let scratchBuffer = FloatBuffer(count: parts * T * T)
    let scratch = scratchBuffer.ptr
    parallelFor(B * NH, parts: parts) { part, items in
        for item in items {
            let b = item / NH, h = item % NH
            let q = qkv + b * T * C3 + h * hs, k = q + C, v = q + 2 * C
            let dq = dqkv + b * T * C3 + h * hs, dk = dq + C, dv = dq + 2 * C
            let a = att + (b * NH + h) * T * T
            let dO = dout + b * T * C + h * hs
            let dA = scratch + part * T * T
            // dA (T,T) = dO vᵀ ; dv += attᵀ dO
            gemm(transA: false, transB: true, M: T, N: T, K: hs, alpha: 1, A: dO, lda: C,
                 B: v, ldb: C3, beta: 0, C: dA, ldc: T)
            gemm(transA: true, transB: false, M: T, N: hs, K: T, alpha: 1, A: a, lda: T,
                 B: dO, ldb: C, beta: beta, C: dv, ldc: C3)
            // softmax backward: dS = att ⊙ (dA − Σ_j att·dA), zero above the diagonal
            for t in 0..<T {
                let ar = a + t * T, dr = dA + t * T
                var dot: Float = 0
                for j in 0...t { dot += ar[j] * dr[j] }
                for j in 0...t { dr[j] = ar[j] * (dr[j] - dot) }
                if t + 1 < T { for j in (t + 1)..<T { dr[j] = 0 } }
            }
            // dq += scale · dS k ; dk += scale · dSᵀ q
            gemm(transA: false, transB: false, M: T, N: hs, K: T, alpha: scale, A: dA, lda: T,
                 B: k, ldb: C3, beta: beta, C: dq, ldc: C3)
            gemm(transA: true, transB: false, M: T, N: hs, K: T, alpha: scale, A: dA, lda: T,
                 B: q, ldb: C3, beta: beta, C: dk, ldc: C3)
        }
    }
}

// MARK: - GELU (tanh approximation)

private let geluScale: Float = (2 / Float.pi).squareRoot()

/// Calls `body(i, c)` for 16-lane blocks [i, i+c) covering 0..<n, in parallel.
@inline(__always)
func forEachBlock16(_ n: Int, _ body: (Int, Int) -> Void) {
    parallelFor((n + 15) / 16, costPerItem: 256) { _, blocks in
        for b in blocks { body(b * 16, min(16, n - b * 16)) }
    }
}

/// tanh(√(2/π)·(x + 0.044715·x³)), the GELU's inner tanh.
@inline(__always)
func geluTanh(_ x: F16) -> F16 {
    let x3: F16 = x * x * x
    return vtanh(geluScale * (x + 0.044715 * x3))
}

/// out = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), elementwise over n values.
public func geluForward(out: FPtr, inp: FPtr, n: Int) {
    forEachBlock16(n) { i, c in
        let x = load16(inp + i, c)
        store16(0.5 * x * (1 + geluTanh(x)), out + i, c)
    }
}

/// dinp += gelu'(inp) · dout, with gelu'(x) = ½(1 + th) + ½·x·(1 − th²)·√(2/π)·(1 + 3·0.044715·x²).
/// With `accumulate: false`, dinp is overwritten.
public func geluBackward(dinp: FPtr, inp: FPtr, dout: FPtr, n: Int, accumulate: Bool = true) {
    forEachBlock16(n) { i, c in
        let x = load16(inp + i, c)
        let th = geluTanh(x)
        let x2: F16 = x * x
        let du: F16 = geluScale * (1 + 0.134145 * x2)
        let sech2: F16 = 1 - th * th
        let left: F16 = 0.5 * (1 + th)
        let right: F16 = 0.5 * x * sech2 * du
        let g: F16 = (left + right) * load16(dout + i, c)
        store16(accumulate ? load16(dinp + i, c) + g : g, dinp + i, c)
    }
}

/// The training forward: out = gelu(x), and x is overwritten with gelu'(x), the only thing
/// the backward needs from it (`geluBackward(derivative:…)`), so the backward does not
/// recompute the tanh. Same formulas as `geluForward`/`geluBackward`: gradients are identical.
public func geluForwardSavingDerivative(out: FPtr, inp: FPtr, n: Int) {
    forEachBlock16(n) { i, c in
        let x = load16(inp + i, c)
        let th = geluTanh(x)
        store16(0.5 * x * (1 + th), out + i, c)
        let x2: F16 = x * x
        let du: F16 = geluScale * (1 + 0.134145 * x2)
        let sech2: F16 = 1 - th * th
        let left: F16 = 0.5 * (1 + th)
        let right: F16 = 0.5 * x * sech2 * du
        store16(left + right, inp + i, c)
    }
}

/// dinp (+)= derivative · dout, with the derivative saved by `geluForwardSavingDerivative`.
public func geluBackward(dinp: FPtr, derivative: FPtr, dout: FPtr, n: Int, accumulate: Bool = true) {
    forEachBlock16(n) { i, c in
        let g: F16 = load16(derivative + i, c) * load16(dout + i, c)
        store16(accumulate ? load16(dinp + i, c) + g : g, dinp + i, c)
    }
}

// MARK: - ReLU

/// out = max(0, x).
public func reluForward(out: FPtr, inp: FPtr, n: Int) {
    for i in 0..<n { out[i] = inp[i] > 0 ? inp[i] : 0 }
}

/// dinp += (inp > 0) · dout.
public func reluBackward(dinp: FPtr, inp: FPtr, dout: FPtr, n: Int) {
    for i in 0..<n where inp[i] > 0 { dinp[i] += dout[i] }
}

// MARK: - Residual and dropout

/// out = a + b.
public func residualForward(out: FPtr, a: FPtr, b: FPtr, n: Int) {
    parallelFor(n) { _, r in for i in r { out[i] = a[i] + b[i] } }
}

/// Inverted dropout: mask[i] ∈ {0, 1/(1−p)}; out = x·mask. With p = 0 the mask is all ones.
public func dropoutForward(out: FPtr, mask: FPtr, inp: FPtr, n: Int, p: Float, rng: inout RNG) {
    if p <= 0 {
        for i in 0..<n { mask[i] = 1; out[i] = inp[i] }
        return
    }
    let keep = 1 / (1 - p)
    for i in 0..<n {
        mask[i] = rng.uniform() < p ? 0 : keep
        out[i] = inp[i] * mask[i]
    }
}

/// dinp += mask · dout.
public func dropoutBackward(dinp: FPtr, mask: FPtr, dout: FPtr, n: Int) {
    for i in 0..<n { dinp[i] += mask[i] * dout[i] }
}
