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
/// With `lengths`, only each sequence's first lengths[b] positions; the rest are zeroed.
public func embeddingForward(out: FPtr, tokens: UnsafePointer<Int32>, wte: FPtr, wpe: FPtr,
                             B: Int, T: Int, C: Int, lengths: [Int]? = nil) {
    for b in 0..<B {
        let n = lengths?[b] ?? T
        if n < T { (out + (b * T + n) * C).update(repeating: 0, count: (T - n) * C) }
        for t in 0..<n {
            let o = out + (b * T + t) * C
            let e = wte + Int(tokens[b * T + t]) * C
            let p = wpe + t * C
            for i in 0..<C { o[i] = e[i] + p[i] }
        }
    }
}

/// dwte[tokens] += dout, dwpe[t] += dout.  Either gradient pointer may be nil (frozen).
/// With `lengths`, only each sequence's first lengths[b] positions (dout's padding rows are
/// not read).
public func embeddingBackward(dwte: FPtr?, dwpe: FPtr?, dout: FPtr, tokens: UnsafePointer<Int32>,
                              B: Int, T: Int, C: Int, lengths: [Int]? = nil) {
    for b in 0..<B {
        for t in 0..<(lengths?[b] ?? T) {
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
/// With `rows`, only those rows; the padding rows of out, mean and rstd are zeroed.
public func layerNormForward(out: FPtr, mean: FPtr, rstd: FPtr, inp: FPtr, weight: FPtr, bias: FPtr,
                             N: Int, C: Int, rows: TokenRows? = nil) {
    let eps: Float = 1e-5
    let full = C / 16 * 16
    let rows = rows ?? TokenRows(all: N)
    precondition(rows.N == N, "layerNormForward: rows cover \(rows.N) rows, not N = \(N)")
    rows.zeroPadding(out, width: C); rows.zeroPadding(mean, width: 1); rows.zeroPadding(rstd, width: 1)
    rows.forEachRun(costPerRow: 4 * C) { r0, r1 in
        for n in r0..<r1 {
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
/// With `rows`, only those rows are read and written.
public func layerNormBackward(dinp: FPtr, dweight: FPtr?, dbias: FPtr?, dout: FPtr, inp: FPtr,
                              weight: FPtr, mean: FPtr, rstd: FPtr, N: Int, C: Int, rows: TokenRows? = nil) {
    let lengths = rows?.lengths, T = rows?.T ?? N
    // Partial sums of the weight gradients over a fixed number of row chunks (independent of
    // the thread count), added in chunk order: results are identical for any thread count.
    let chunks = min(N, 16), full = C / 16 * 16
    let partial = FloatBuffer(count: chunks * 2 * C)
    parallelFor(chunks, costPerItem: 6 * C * N / max(1, chunks)) { _, chunkRange in
      for chunk in chunkRange {
        let pw = partial.ptr + chunk * 2 * C, pb = pw + C
        for n in (chunk * N / chunks)..<((chunk + 1) * N / chunks) {
            if let lengths, n % T >= lengths[n / T] { continue }
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
///
/// dinp runs on the forward's packed kernel (PackedLinear.swift), as a layer with OC
/// inputs whose weight is weightᵀ: a row of dinp is one in-order sum that does not depend
/// on the rows beside it. dweight, a sum over rows, stays an OpenBLAS product (`gemm`).
/// With `rows` (the forward's token rows, TokenRows.swift) both read only those rows:
/// dinp's padding rows are left as they are (zeroed when overwriting), and dweight's
/// product runs over the token rows gathered into one block, which is the whole sum when
/// inp is zero at the padding rows, as the forward leaves it. dbias sums over every row.
public func linearBackward(dinp: FPtr?, dweight: FPtr?, dbias: FPtr?, dout: FPtr, inp: FPtr,
                           weight: FPtr, N: Int, C: Int, OC: Int, accumulate: Bool = true, rows: TokenRows? = nil) {
    let rows = rows ?? TokenRows(all: N)
    precondition(rows.N == N, "linearBackward: rows cover \(rows.N) rows, not N = \(N)")
    if let dinp {
        PackedLinear.withPacked(transposing: weight, K: OC, M: C) { weightT in
            if !accumulate { rows.zeroPadding(dinp, width: C) }
            rows.forEachRun(costPerRow: C * OC) { r0, r1 in
                weightT.forward(out: dinp + r0 * C, inp: dout + r0 * OC, N: r1 - r0, accumulate: accumulate)
            }
        }
    }
    if let dweight {
        rows.withGathered(dout, width: OC) { doutRows in
            rows.withGathered(inp, width: C) { inpRows in
                gemm(transA: true, transB: false, M: OC, N: C, K: rows.count, alpha: 1, A: doutRows, lda: OC,
                     B: inpRows, ldb: C, beta: 1, C: dweight, ldc: C)
            }
        }
    }
    if let dbias { columnSums(into: dbias, dout, N: N, OC: OC, rows: rows) }
}

/// acc (OC) += Σ_n x[n, ·] for x (N,OC), parallel over column blocks; with `rows`, over
/// those rows only.
func columnSums(into acc: FPtr, _ x: FPtr, N: Int, OC: Int, rows: TokenRows? = nil) {
    let blocks = (OC + 15) / 16
    let runs = rows?.runs ?? [0..<N]
    parallelFor(blocks, costPerItem: 16 * N) { _, range in
        for blk in range {
            let j0 = blk * 16, w = min(16, OC - j0)
            var s = F16()
            for run in runs { for n in run { s += load16(x + n * OC + j0, w) } }
            store16(load16(acc + j0, w) + s, acc + j0, w)
        }
    }
}

// MARK: - Causal self-attention

/// Causal multi-head attention.  qkv (B,T,3C) holds q|k|v; out (B,T,C);
/// att (B,NH,T,T) saves the softmax probabilities (zero above the diagonal).
/// Per (batch, head) the keys are transposed once into a (hs, T) block, then every query
/// attends over its own prefix only (`singleQueryAttention`): half the work of full
/// T × T products, with the softmax fused in.
///
/// With `lengths`, sequence b attends only over its first lengths[b] positions: the
/// padding queries' outputs and probability rows are zeroed.
public func attentionForward(out: FPtr, att: FPtr, qkv: FPtr, B: Int, T: Int, C: Int, NH: Int, lengths: [Int]? = nil) {
    let hs = C / NH
    let scale = 1 / Float(hs).squareRoot()
    let C3 = 3 * C, Tp = (T + 15) / 16 * 16
    let parts = parallelParts(B * NH, costPerItem: 2 * T * T * hs)
    let scratchBuffer = FloatBuffer(count: parts * (hs * Tp + Tp))
    parallelFor(B * NH, parts: parts) { part, items in
        let kT = scratchBuffer.ptr + part * (hs * Tp + Tp), scores = kT + hs * Tp
        for item in items {
            let b = item / NH, h = item % NH
            let q = qkv + b * T * C3 + h * hs
            let k = q + C, v = q + 2 * C
            let a = att + (b * NH + h) * T * T
            let n = lengths?[b] ?? T
            for t in 0..<n { for d in 0..<hs { kT[d * Tp + t] = k[t * C3 + d] } }
            for t in 0..<n {
                let row = a + t * T
                singleQueryAttention(q: q + t * C3, keysT: kT, values: v, count: t + 1, timeStride: Tp, valueStride: C3,
                                     hs: hs, scale: scale, scores: scores, out: out + (b * T + t) * C + h * hs,
                                     probabilities: row)
                if t + 1 < T { (row + t + 1).update(repeating: 0, count: T - t - 1) }
            }
            if n < T {
                (a + n * T).update(repeating: 0, count: (T - n) * T)
                for t in n..<T { (out + (b * T + t) * C + h * hs).update(repeating: 0, count: hs) }
            }
        }
    }
}

/// One query attending over `count` positions: out (hs) = Σ_j p_j v_j, p = softmax_j(scale·q·k_j).
/// keysT is (hs, timeStride) (one row per head dimension: the decoder's key cache, or a
/// transposed block of the training forward), values (count, valueStride); `scores` holds
/// `count` rounded up to 16 floats. `probabilities`, if given, receives p (count floats).
@inline(__always)
func singleQueryAttention(q: FPtr, keysT: FPtr, values: FPtr, count: Int, timeStride: Int, valueStride: Int,
                          hs: Int, scale: Float, scores: FPtr, out: FPtr, probabilities: FPtr? = nil) {
    // Scores, four 16-position chunks at a time (independent accumulators keep the FMA
    // units busy). Lanes past `count` read stale cache entries and are overwritten below
    // (masked SIMD selects compile to lane loops, plain stores do not).
    let chunks = (count + 15) / 16, padded = chunks * 16
    var ch0 = 0
    while ch0 < chunks {
        let n = min(4, chunks - ch0), k = keysT + ch0 * 16
        var a0 = F16(), a1 = F16(), a2 = F16(), a3 = F16()
        for d in 0..<hs {
            let qd = F16(repeating: q[d]), kd = k + d * timeStride
            a0 = a0.addingProduct(qd, load16(kd))
            if n > 1 { a1 = a1.addingProduct(qd, load16(kd + 16)) }
            if n > 2 { a2 = a2.addingProduct(qd, load16(kd + 32)) }
            if n > 3 { a3 = a3.addingProduct(qd, load16(kd + 48)) }
        }
        let s = scores + ch0 * 16
        store16(a0 * scale, s)
        if n > 1 { store16(a1 * scale, s + 16) }
        if n > 2 { store16(a2 * scale, s + 32) }
        if n > 3 { store16(a3 * scale, s + 48) }
        ch0 += 4
    }
    for j in count..<padded { scores[j] = -.greatestFiniteMagnitude }
    var mx = load16(scores)
    for ch in 1..<chunks { mx = vmax(mx, load16(scores + ch * 16)) }
    let m = F16(repeating: hmax(mx))
    for ch in 0..<chunks { store16(vexp(load16(scores + ch * 16) - m), scores + ch * 16) }
    for j in count..<padded { scores[j] = 0 }
    var sum = F16()
    for ch in 0..<chunks { sum += load16(scores + ch * 16) }
    let inv = 1 / hsum(sum)
    if let probabilities {
        let iv = F16(repeating: inv), full = count / 16 * 16
        var j = 0
        while j < full { store16(load16(scores + j) * iv, probabilities + j); j += 16 }
        while j < count { probabilities[j] = scores[j] * inv; j += 1 }
    }
    // Weighted values: both 16-lane blocks of a 32-wide head in one pass over the positions.
    var u = 0
    while u + 32 <= hs {
        var o0 = F16(), o1 = F16()
        for j in 0..<count {
            let w = F16(repeating: scores[j]), v = values + j * valueStride + u
            o0 = o0.addingProduct(w, load16(v))
            o1 = o1.addingProduct(w, load16(v + 16))
        }
        store16(o0 * inv, out + u)
        store16(o1 * inv, out + u + 16)
        u += 32
    }
    while u + 16 <= hs {
        var o = F16()
        for j in 0..<count { o = o.addingProduct(F16(repeating: scores[j]), load16(values + j * valueStride + u)) }
        store16(o * inv, out + u)
        u += 16
    }
    while u < hs {
        var o: Float = 0
        for j in 0..<count { o += scores[j] * values[j * valueStride + u] }
        out[u] = o * inv
        u += 1
    }
}

/// Backward of causal attention: dqkv (B,T,3C) += …  given dout (B,T,C).
/// With `accumulate: false`, dqkv is overwritten (every entry is written exactly once).
/// With `lengths` (as in `attentionForward`), sequence b's products run over its first
/// lengths[b] positions; its padding rows of dqkv are zeroed when overwriting, else left.
public func attentionBackward(dqkv: FPtr, dout: FPtr, qkv: FPtr, att: FPtr, B: Int, T: Int, C: Int, NH: Int,
                              accumulate: Bool = true, lengths: [Int]? = nil) {
    let beta: Float = accumulate ? 1 : 0
    let hs = C / NH
    let scale = 1 / Float(hs).squareRoot()
    let C3 = 3 * C
    let parts = parallelParts(B * NH, costPerItem: 8 * T * T * hs)
    let scratchBuffer = FloatBuffer(count: parts * T * T)
    let scratch = scratchBuffer.ptr
    parallelFor(B * NH, parts: parts) { part, items in
        for item in items {
            let b = item / NH, h = item % NH, L = lengths?[b] ?? T
            let q = qkv + b * T * C3 + h * hs, k = q + C, v = q + 2 * C
            let dq = dqkv + b * T * C3 + h * hs, dk = dq + C, dv = dq + 2 * C
            let a = att + (b * NH + h) * T * T
            let dO = dout + b * T * C + h * hs
            let dA = scratch + part * T * T
            // dA (T,T) = dO vᵀ ; dv += attᵀ dO
            gemm(transA: false, transB: true, M: L, N: L, K: hs, alpha: 1, A: dO, lda: C,
                 B: v, ldb: C3, beta: 0, C: dA, ldc: T)
            gemm(transA: true, transB: false, M: L, N: hs, K: L, alpha: 1, A: a, lda: T,
                 B: dO, ldb: C, beta: beta, C: dv, ldc: C3)
            // softmax backward: dS = att ⊙ (dA − Σ_j att·dA), zero above the diagonal
            for t in 0..<L {
                // Whole 16-lane chunks up to the diagonal: att is zero above it, so the extra
                // lanes add nothing to the dot product and come out zero.
                let ar = a + t * T, dr = dA + t * T, n = t + 1
                let vec = min((n + 15) / 16 * 16, L / 16 * 16)
                var acc = F16()
                var j = 0
                while j < vec { acc = acc.addingProduct(load16(ar + j), load16(dr + j)); j += 16 }
                var dotS = hsum(acc)
                while j < n { dotS += ar[j] * dr[j]; j += 1 }
                let dot = F16(repeating: dotS)
                j = 0
                while j < vec { store16(load16(ar + j) * (load16(dr + j) - dot), dr + j); j += 16 }
                while j < n { dr[j] = ar[j] * (dr[j] - dotS); j += 1 }
                if j < L { (dr + j).update(repeating: 0, count: L - j) }
            }
            // dq += scale · dS k ; dk += scale · dSᵀ q
            gemm(transA: false, transB: false, M: L, N: hs, K: L, alpha: scale, A: dA, lda: T,
                 B: k, ldb: C3, beta: beta, C: dq, ldc: C3)
            gemm(transA: true, transB: false, M: L, N: hs, K: L, alpha: scale, A: dA, lda: T,
                 B: q, ldb: C3, beta: beta, C: dk, ldc: C3)
            if !accumulate {
                for t in L..<T {
                    (dq + t * C3).update(repeating: 0, count: hs)
                    (dk + t * C3).update(repeating: 0, count: hs)
                    (dv + t * C3).update(repeating: 0, count: hs)
                }
            }
        }
    }
}

// MARK: - GELU (tanh approximation)

private let geluScale: Float = (2 / Float.pi).squareRoot()

/// Calls `body(i, c)` for 16-lane blocks [i, i+c) covering 0..<n, in parallel. With `rows`
/// (of `width` values each), the blocks cover only those rows, each row's from its start.
@inline(__always)
func forEachBlock16(_ n: Int, rows: TokenRows? = nil, width: Int = 1, _ body: (Int, Int) -> Void) {
    guard let rows, rows.lengths != nil else {
        parallelFor((n + 15) / 16, costPerItem: 256) { _, blocks in
            for b in blocks { body(b * 16, min(16, n - b * 16)) }
        }
        return
    }
    rows.forEachRun(costPerRow: 16 * width) { r0, r1 in
        let end = r1 * width
        var i = r0 * width
        while i < end { body(i, min(16, end - i)); i += 16 }
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
/// With `rows` (of `width` values each), only those rows; the padding rows of both are zeroed.
public func geluForwardSavingDerivative(out: FPtr, inp: FPtr, n: Int, rows: TokenRows? = nil, width: Int = 1) {
    if let rows {
        precondition(rows.N * width == n, "geluForwardSavingDerivative: rows × width must be n")
        rows.zeroPadding(out, width: width); rows.zeroPadding(inp, width: width)
    }
    forEachBlock16(n, rows: rows, width: width) { i, c in
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
/// With `rows` (of `width` values each), only those rows are read and written.
public func geluBackward(dinp: FPtr, derivative: FPtr, dout: FPtr, n: Int, accumulate: Bool = true, rows: TokenRows? = nil,
                         width: Int = 1) {
    forEachBlock16(n, rows: rows, width: width) { i, c in
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

/// out = a + b on the given rows (of `width` values each); the padding rows of out are zeroed.
public func residualForward(out: FPtr, a: FPtr, b: FPtr, rows: TokenRows, width: Int) {
    rows.zeroPadding(out, width: width)
    rows.forEachRun(costPerRow: width) { r0, r1 in for i in (r0 * width)..<(r1 * width) { out[i] = a[i] + b[i] } }
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
