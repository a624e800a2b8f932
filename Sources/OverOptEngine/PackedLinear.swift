// PackedLinear.swift — the decoder's matrix products, with weights packed once.
//
// A decode step multiplies a few dozen rows by every weight matrix. OpenBLAS repacks the
// weight into its panel layout on each call, and at 64 rows that packing costs about as
// much as 20% of the product. The decoder's weights do not change during a `generate`
// call, so they are packed once here, into panels of 16 output features (for each input
// feature k, the panel's 16 weights side by side), and a 6 × 16 register-blocked kernel
// runs over them: twelve 8-lane accumulators, two weight loads and six broadcasts per k.
// Measured on one core of an AMD EPYC (AVX2 FMA), at the `large` preset's shapes:
// 113 GFLOP/s at 66 rows against 89 for OpenBLAS's sgemm with its packing, and 108–113
// against 96–102 at 1 020 rows. On CPUs with AVX-512, pairs of panels run through a
// 12 × 32 kernel on 512-bit registers instead (PanelKernel.swift), with the same results.
//
// The kernel is single-threaded: the sampler runs each decode group on one thread, and
// the training forward (`packedLinearForward`) packs its weights once per call, in scratch
// memory (Scratch.swift), and spreads blocks of rows over the engine's threads; the
// backward's input gradients (`linearBackward`) run the same way on the transposed weight.
// Without the per-call packing of the rows, the small preset's reward-model steps run ≈ 8%
// faster than on OpenBLAS. The sum over k runs in order with fused multiply-adds, starting
// from the bias (and the previous output, when accumulating), so results differ from
// OpenBLAS's only by rounding, and a row's result does not depend on how the rows are split.

import OverOptKernelsAVX512

typealias F8 = SIMD8<Float>

/// A 12-row × 32-output micro-kernel over two adjacent panels (PanelKernel.swift).
typealias WideKernel = @Sendable (UnsafePointer<Float>, Int, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                        FPtr, Int, Int, Bool) -> Void

/// The wide kernel the packed products use on this machine: the AVX-512 build of
/// `panelKernel12x32` where the CPU has AVX-512 (`engineKernelVariant`), else none (the
/// 6 × 16 AVX2 kernel does all the work).
let hostWideKernel: WideKernel? = engineKernelVariant == .avx512
    ? { @Sendable x, ldx, w0, w1, b, c, ldc, C, acc in
        OverOptKernelsAVX512.panelKernel12x32(x, ldx: ldx, w0, w1, bias: b, c, ldc: ldc, C: C, accumulate: acc)
    }
    : nil

@inline(__always) private func load8(_ p: UnsafePointer<Float>) -> F8 { UnsafeRawPointer(p).loadUnaligned(as: F8.self) }
@inline(__always) private func store8(_ v: F8, _ p: FPtr) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self) }

/// The weight (OC, C) and bias (OC) of a linear layer, repacked into ⌈OC/16⌉ panels of
/// (C, 16): panel p holds W[16p + j, k] at (k·16 + j); missing outputs are zero.
struct PackedLinear: @unchecked Sendable {
    /// The memory when this value owns it (nil when it lives in a caller's scratch).
    private let storage: FloatBuffer?
    let panels: FPtr
    let bias: FPtr          // ⌈OC/16⌉·16 floats, zero where the layer has no bias
    let C, OC: Int
    var panelCount: Int { (OC + 15) / 16 }

    /// The floats a packed layer with C inputs and OC outputs occupies.
    static func floats(C: Int, OC: Int) -> Int { (OC + 15) / 16 * 16 * (C + 1) }

    /// A layer of C inputs and OC outputs in `memory` (or in storage of its own when nil),
    /// with every panel and bias value still to be written.
    private init(C: Int, OC: Int, memory: FPtr?) {
        self.C = C; self.OC = OC
        let owned = memory == nil ? FloatBuffer(count: Self.floats(C: C, OC: OC)) : nil
        storage = owned
        panels = memory ?? owned!.ptr
        bias = panels + (OC + 15) / 16 * 16 * C
    }

    /// Packs `weight` (OC, C) and `bias` (OC, or nil) into storage of its own.
    init(weight: UnsafePointer<Float>, bias b: UnsafePointer<Float>?, C: Int, OC: Int) {
        self.init(weight: weight, bias: b, C: C, OC: OC, memory: nil)
    }

    private init(weight: UnsafePointer<Float>, bias b: UnsafePointer<Float>?, C: Int, OC: Int, memory: FPtr?) {
        self.init(C: C, OC: OC, memory: memory)
        let P = panelCount
        if OC % 16 != 0 { (panels + (P - 1) * C * 16).update(repeating: 0, count: C * 16) }
        for o in 0..<OC {
            let dst = panels + (o / 16) * C * 16 + o % 16, src = weight + o * C
            for k in 0..<C { dst[k * 16] = src[k] }
        }
        bias.update(repeating: 0, count: P * 16)
        if let b { bias.update(from: b, count: OC) }
    }

    /// Packs a (K, M) row-major matrix `a` as the weight of a layer with C = K inputs, OC = M
    /// outputs and no bias: panel p holds a[k, 16p + j] at (k·16 + j). The backward's
    /// dinp = dout · W packs W (OC, C) so.
    private init(transposing a: UnsafePointer<Float>, K: Int, M: Int, memory: FPtr?) {
        self.init(C: K, OC: M, memory: memory)
        let P = panelCount, tail = M % 16
        for k in 0..<K {
            let src = a + k * M
            for p in 0..<P { (panels + (p * K + k) * 16).update(from: src + p * 16, count: min(16, M - p * 16)) }
            if tail != 0 { (panels + ((P - 1) * K + k) * 16 + tail).update(repeating: 0, count: 16 - tail) }
        }
        bias.update(repeating: 0, count: P * 16)
    }

    /// Calls `body` with `weight` and `bias` packed in this thread's scratch memory.
    static func withPacked<R>(weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, C: Int, OC: Int,
                              _ body: (PackedLinear) -> R) -> R {
        withScratch(floats(C: C, OC: OC)) { body(PackedLinear(weight: weight, bias: bias, C: C, OC: OC, memory: $0)) }
    }

    /// Calls `body` with `a` (K, M) packed transposed (`init(transposing:)`) in this thread's
    /// scratch memory.
    static func withPacked<R>(transposing a: UnsafePointer<Float>, K: Int, M: Int, _ body: (PackedLinear) -> R) -> R {
        withScratch(floats(C: K, OC: M)) { body(PackedLinear(transposing: a, K: K, M: M, memory: $0)) }
    }

    /// out (N, OC) = inp (N, C) · Wᵀ + bias, or `out +=` that with `accumulate`. With a
    /// `wide` kernel, pairs of full panels run 12 rows at a time through it; the rest (and
    /// everything without one) runs through the 6 × 16 kernel. Both give the same bits.
    func forward(out: FPtr, inp: UnsafePointer<Float>, N: Int, accumulate: Bool = false, wide: WideKernel? = hostWideKernel) {
        let fullPanels = OC / 16, full = N / 6 * 6, rest = N - full
        // The last N mod 6 rows go through a zero-padded copy, so that the kernel always
        // reads six rows at one stride.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 6 * C + 6 * 16) { tmp in
            let padded = tmp.baseAddress!, tile = padded + 6 * C
            if rest > 0 {
                padded.update(from: inp + full * C, count: rest * C)
                (padded + rest * C).update(repeating: 0, count: (6 - rest) * C)
            }
            /// Rows r..<r+n against panel p, into c (row stride ldc).
            func block(_ r: Int, _ n: Int, _ p: Int, _ c: FPtr, _ ldc: Int) {
                let x = r < full ? inp + r * C : UnsafePointer(padded), w = panels + p * C * 16, b = bias + p * 16
                if n > 4 {
                    kernel(x, rows: n, computing: 6, w, b, c, ldc: ldc, accumulate: accumulate)
                } else {
                    kernel(x, rows: n, computing: 4, w, b, c, ldc: ldc, accumulate: accumulate)
                }
            }
            // Row blocks of 96 keep their inputs in L2 while every panel passes over them.
            var r0 = 0
            while r0 < N {
                let r1 = min(N, r0 + 96)
                var firstPanel = 0
                if let wide {
                    while firstPanel + 1 < fullPanels {
                        let p = firstPanel, w0 = panels + p * C * 16, w1 = w0 + C * 16
                        var r = r0
                        while r + 12 <= r1 {
                            wide(inp + r * C, C, w0, w1, bias + p * 16, out + r * OC + p * 16, OC, C, accumulate)
                            r += 12
                        }
                        for q in [p, p + 1] {
                            var rr = r
                            while rr + 6 <= r1 { block(rr, 6, q, out + rr * OC + q * 16, OC); rr += 6 }
                            if rr < r1 { block(rr, r1 - rr, q, out + rr * OC + q * 16, OC) }
                        }
                        firstPanel += 2
                    }
                }
                for p in firstPanel..<fullPanels {
                    var r = r0
                    while r + 6 <= r1 { block(r, 6, p, out + r * OC + p * 16, OC); r += 6 }
                    if r < r1 { block(r, r1 - r, p, out + r * OC + p * 16, OC) }
                }
                // The last OC mod 16 outputs, through a 6 × 16 tile.
                if fullPanels < panelCount {
                    let p = fullPanels, cols = OC - p * 16
                    var r = r0
                    while r < r1 {
                        let n = min(6, r1 - r)
                        if accumulate { for i in 0..<n { (tile + i * 16).update(from: out + (r + i) * OC + p * 16, count: cols) } }
                        block(r, n, p, tile, 16)
                        for i in 0..<n { (out + (r + i) * OC + p * 16).update(from: tile + i * 16, count: cols) }
                        r += 6
                    }
                }
                r0 = r1
            }
        }
    }

    /// c (n ≤ R rows of 16, row stride ldc) = [c +] bias + x (R rows of C) · panel; only the
    /// first n rows are read from and stored to c. R, 4 or 6, is a constant at each call site,
    /// so the rows it leaves out cost nothing.
    @inline(__always)
    private func kernel(_ x: UnsafePointer<Float>, rows n: Int, computing R: Int, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                        _ c: FPtr, ldc: Int, accumulate: Bool) {
        let b0 = load8(b), b1 = load8(b + 8)
        var c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1
        var c30 = b0, c31 = b1, c40 = b0, c41 = b1, c50 = b0, c51 = b1
        if accumulate {
            c00 += load8(c); c01 += load8(c + 8)
            if n > 1 { c10 += load8(c + ldc); c11 += load8(c + ldc + 8) }
            if n > 2 { c20 += load8(c + 2 * ldc); c21 += load8(c + 2 * ldc + 8) }
            if n > 3 { c30 += load8(c + 3 * ldc); c31 += load8(c + 3 * ldc + 8) }
            if n > 4 { c40 += load8(c + 4 * ldc); c41 += load8(c + 4 * ldc + 8) }
            if n > 5 { c50 += load8(c + 5 * ldc); c51 += load8(c + 5 * ldc + 8) }
        }
        let x0 = x, x1 = x + C, x2 = x + 2 * C, x3 = x + 3 * C, x4 = x + 4 * C, x5 = x + 5 * C   // x4, x5 read only when R = 6
        var wk = w
        for k in 0..<C {
            let w0 = load8(wk), w1 = load8(wk + 8)
            var s = F8(repeating: x0[k]); c00 = c00.addingProduct(s, w0); c01 = c01.addingProduct(s, w1)
            s = F8(repeating: x1[k]); c10 = c10.addingProduct(s, w0); c11 = c11.addingProduct(s, w1)
            s = F8(repeating: x2[k]); c20 = c20.addingProduct(s, w0); c21 = c21.addingProduct(s, w1)
            s = F8(repeating: x3[k]); c30 = c30.addingProduct(s, w0); c31 = c31.addingProduct(s, w1)
            if R > 4 {
                s = F8(repeating: x4[k]); c40 = c40.addingProduct(s, w0); c41 = c41.addingProduct(s, w1)
                s = F8(repeating: x5[k]); c50 = c50.addingProduct(s, w0); c51 = c51.addingProduct(s, w1)
            }
            wk += 16
        }
        store8(c00, c); store8(c01, c + 8)
        if n > 1 { store8(c10, c + ldc); store8(c11, c + ldc + 8) }
        if n > 2 { store8(c20, c + 2 * ldc); store8(c21, c + 2 * ldc + 8) }
        if n > 3 { store8(c30, c + 3 * ldc); store8(c31, c + 3 * ldc + 8) }
        if n > 4 { store8(c40, c + 4 * ldc); store8(c41, c + 4 * ldc + 8) }
        if n > 5 { store8(c50, c + 5 * ldc); store8(c51, c + 5 * ldc + 8) }
    }
}

/// out (N, OC) = inp (N, C) · weightᵀ + bias (the training forward's products) by a
/// PackedLinear packed for this call in scratch memory, rows spread over the engine's
/// threads in blocks of 96.
/// With `rows`, each sequence's token rows are one block and the padding rows of out are
/// zeroed.
func packedLinearForward(out: FPtr, inp: FPtr, weight: FPtr, bias: FPtr?, N: Int, C: Int, OC: Int, rows: TokenRows? = nil) {
    PackedLinear.withPacked(weight: weight, bias: bias, C: C, OC: OC) { packed in
        if let rows, rows.lengths != nil {
            precondition(rows.N == N, "packedLinearForward: rows cover \(rows.N) rows, not N = \(N)")
            rows.zeroPadding(out, width: OC)
            rows.forEachRun(costPerRow: C * OC) { r0, r1 in packed.forward(out: out + r0 * OC, inp: inp + r0 * C, N: r1 - r0) }
        } else {
            let blocks = (N + 95) / 96
            parallelFor(blocks, costPerItem: 96 * C * OC) { _, range in
                let r0 = range.lowerBound * 96, r1 = min(N, range.upperBound * 96)
                packed.forward(out: out + r0 * OC, inp: inp + r0 * C, N: r1 - r0)
            }
        }
    }
}
