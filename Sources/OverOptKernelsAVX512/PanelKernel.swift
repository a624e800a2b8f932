// PanelKernel.swift — the packed products' AVX-512 micro-kernel: 12 rows × 32 outputs.
//
// This file is compiled twice: in OverOptKernelsAVX512 for AVX-512 (`-target-cpu
// skylake-avx512`), where each SIMD16 is one 512-bit register, and, through a symbolic
// link, inside OverOptEngine for AVX2, where the tests check it against a Double reference
// on any x86-64 machine. It reads two adjacent 16-output panels of a PackedLinear (for each
// input feature k, the panel's 16 weights side by side) and keeps 24 accumulators, two
// weight vectors and a broadcast in 27 of the 32 vector registers.
//
// Every output is bias [+ previous output] followed by one fused multiply-add per k in
// order, as in PackedLinear's AVX2 kernel, so both kernels give bitwise-identical results.

/// c (12 rows × 32, row stride ldc) = [c +] bias + x (12 rows × C, row stride ldx) · (w0 | w1),
/// where w0 and w1 are two (C, 16) panels and bias holds 32 values.
@inline(never)
public func panelKernel12x32(_ x: UnsafePointer<Float>, ldx: Int, _ w0: UnsafePointer<Float>, _ w1: UnsafePointer<Float>,
                             bias: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, ldc: Int, C: Int,
                             accumulate: Bool) {
    typealias V = SIMD16<Float>
    @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }
    let b0 = load(bias), b1 = load(bias + 16)
    var a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1
    var a30 = b0, a31 = b1, a40 = b0, a41 = b1, a50 = b0, a51 = b1
    var a60 = b0, a61 = b1, a70 = b0, a71 = b1, a80 = b0, a81 = b1
    var a90 = b0, a91 = b1, a100 = b0, a101 = b1, a110 = b0, a111 = b1
    if accumulate {
        a00 += load(c + 0 * ldc); a01 += load(c + 0 * ldc + 16)
        a10 += load(c + 1 * ldc); a11 += load(c + 1 * ldc + 16)
        a20 += load(c + 2 * ldc); a21 += load(c + 2 * ldc + 16)
        a30 += load(c + 3 * ldc); a31 += load(c + 3 * ldc + 16)
        a40 += load(c + 4 * ldc); a41 += load(c + 4 * ldc + 16)
        a50 += load(c + 5 * ldc); a51 += load(c + 5 * ldc + 16)
        a60 += load(c + 6 * ldc); a61 += load(c + 6 * ldc + 16)
        a70 += load(c + 7 * ldc); a71 += load(c + 7 * ldc + 16)
        a80 += load(c + 8 * ldc); a81 += load(c + 8 * ldc + 16)
        a90 += load(c + 9 * ldc); a91 += load(c + 9 * ldc + 16)
        a100 += load(c + 10 * ldc); a101 += load(c + 10 * ldc + 16)
        a110 += load(c + 11 * ldc); a111 += load(c + 11 * ldc + 16)
    }
    let x0 = x + 0 * ldx, x1 = x + 1 * ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx
    let x4 = x + 4 * ldx, x5 = x + 5 * ldx, x6 = x + 6 * ldx, x7 = x + 7 * ldx
    let x8 = x + 8 * ldx, x9 = x + 9 * ldx, x10 = x + 10 * ldx, x11 = x + 11 * ldx
    var k = 0
    while k < C {
        let u = load(w0 + 16 * k), v = load(w1 + 16 * k)
        var s: V
        s = V(repeating: x0[k]); a00 = a00.addingProduct(s, u); a01 = a01.addingProduct(s, v)
        s = V(repeating: x1[k]); a10 = a10.addingProduct(s, u); a11 = a11.addingProduct(s, v)
        s = V(repeating: x2[k]); a20 = a20.addingProduct(s, u); a21 = a21.addingProduct(s, v)
        s = V(repeating: x3[k]); a30 = a30.addingProduct(s, u); a31 = a31.addingProduct(s, v)
        s = V(repeating: x4[k]); a40 = a40.addingProduct(s, u); a41 = a41.addingProduct(s, v)
        s = V(repeating: x5[k]); a50 = a50.addingProduct(s, u); a51 = a51.addingProduct(s, v)
        s = V(repeating: x6[k]); a60 = a60.addingProduct(s, u); a61 = a61.addingProduct(s, v)
        s = V(repeating: x7[k]); a70 = a70.addingProduct(s, u); a71 = a71.addingProduct(s, v)
        s = V(repeating: x8[k]); a80 = a80.addingProduct(s, u); a81 = a81.addingProduct(s, v)
        s = V(repeating: x9[k]); a90 = a90.addingProduct(s, u); a91 = a91.addingProduct(s, v)
        s = V(repeating: x10[k]); a100 = a100.addingProduct(s, u); a101 = a101.addingProduct(s, v)
        s = V(repeating: x11[k]); a110 = a110.addingProduct(s, u); a111 = a111.addingProduct(s, v)
        k += 1
    }
    store(a00, c + 0 * ldc); store(a01, c + 0 * ldc + 16)
    store(a10, c + 1 * ldc); store(a11, c + 1 * ldc + 16)
    store(a20, c + 2 * ldc); store(a21, c + 2 * ldc + 16)
    store(a30, c + 3 * ldc); store(a31, c + 3 * ldc + 16)
    store(a40, c + 4 * ldc); store(a41, c + 4 * ldc + 16)
    store(a50, c + 5 * ldc); store(a51, c + 5 * ldc + 16)
    store(a60, c + 6 * ldc); store(a61, c + 6 * ldc + 16)
    store(a70, c + 7 * ldc); store(a71, c + 7 * ldc + 16)
    store(a80, c + 8 * ldc); store(a81, c + 8 * ldc + 16)
    store(a90, c + 9 * ldc); store(a91, c + 9 * ldc + 16)
    store(a100, c + 10 * ldc); store(a101, c + 10 * ldc + 16)
    store(a110, c + 11 * ldc); store(a111, c + 11 * ldc + 16)
}
