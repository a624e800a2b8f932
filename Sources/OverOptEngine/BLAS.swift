// BLAS.swift — the only place the engine talks to OpenBLAS.
//
// All matrices are row-major. `gemm` computes C = alpha·op(A)·op(B) + beta·C with
// op(X) = X or Xᵀ, using leading dimensions so that strided views (one head's columns
// inside a fused QKV buffer) need no copies.
//
// OpenBLAS always runs on one thread. Its own threading splits a product by the thread
// count, and its kernels round edge tiles differently from full ones, so a product's last
// bits would depend on how many threads computed it. Instead `gemm` cuts C into blocks
// fixed by the product's shape alone (`gemmBlocks`) and hands the blocks to the engine's
// threads; each block is one single-threaded OpenBLAS call, so every element is computed
// the same way at any thread count, and no process-wide setting is ever switched while
// another thread runs a product. Inside a parallel loop's body a product is one call.
import CBLAS
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// Pins OpenBLAS to one thread (once, before the first product).
private let openBLASPinnedToOneThread: Void = { openblas_set_num_threads(1) }()

/// Products below this many multiply-adds run as one block: a block's fixed cost (OpenBLAS
/// packs both operands per call) outweighs what a second core would save.
let gemmMinBlockWork = 1 << 18

/// The number of blocks C (M,N) is cut into along `rows` (M) or columns (N): a power of two
/// (so that 2 threads get equal shares) with at least `gemmMinBlockWork` multiply-adds and
/// 16 rows or columns per block, at most 16 blocks. A function of the shape only.
public func gemmBlocks(M: Int, N: Int, K: Int) -> (count: Int, alongRows: Bool) {
    let alongRows = M >= N
    let extent = alongRows ? M : N
    var count = 1
    while count < 16, M * N * K / (2 * count) >= gemmMinBlockWork, extent / (2 * count) >= 16 { count *= 2 }
    return (count, alongRows)
}

/// Row-major single-precision GEMM: C(M,N) = alpha·op(A)·op(B) + beta·C.
/// op(A) is (M,K), op(B) is (K,N); lda/ldb/ldc are row strides of the stored matrices.
/// Large products run as shape-fixed blocks on the engine's threads (see the header).
public func gemm(transA: Bool, transB: Bool, M: Int, N: Int, K: Int,
                 alpha: Float, A: UnsafePointer<Float>, lda: Int,
                 B: UnsafePointer<Float>, ldb: Int,
                 beta: Float, C: FPtr, ldc: Int) {
    // Inside a parallel loop's body (a replica's part, one attention head) the loop already
    // spreads the work, at any thread count, so the product stays one call.
    let blocks = insideParallelPart ? (count: 1, alongRows: true) : gemmBlocks(M: M, N: N, K: K)
    if blocks.count == 1 {
        gemmOneThread(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda,
                      B: B, ldb: ldb, beta: beta, C: C, ldc: ldc)
        return
    }
    let a = UncheckedSendable(A), b = UncheckedSendable(B), c = UncheckedSendable(C)
    parallelForEachDynamic(blocks.count) { i in
        if blocks.alongRows {
            // Rows r0..<r1 of C need rows r0..<r1 of op(A).
            let r0 = i * M / blocks.count, r1 = (i + 1) * M / blocks.count
            let aBlock = transA ? a.value + r0 : a.value + r0 * lda
            gemmOneThread(transA: transA, transB: transB, M: r1 - r0, N: N, K: K, alpha: alpha, A: aBlock, lda: lda,
                          B: b.value, ldb: ldb, beta: beta, C: c.value + r0 * ldc, ldc: ldc)
        } else {
            // Columns c0..<c1 of C need columns c0..<c1 of op(B).
            let c0 = i * N / blocks.count, c1 = (i + 1) * N / blocks.count
            let bBlock = transB ? b.value + c0 * ldb : b.value + c0
            gemmOneThread(transA: transA, transB: transB, M: M, N: c1 - c0, K: K, alpha: alpha, A: a.value, lda: lda,
                          B: bBlock, ldb: ldb, beta: beta, C: c.value + c0, ldc: ldc)
        }
    }
}

/// One single-threaded OpenBLAS sgemm call.
@inline(__always)
func gemmOneThread(transA: Bool, transB: Bool, M: Int, N: Int, K: Int,
                   alpha: Float, A: UnsafePointer<Float>, lda: Int,
                   B: UnsafePointer<Float>, ldb: Int,
                   beta: Float, C: FPtr, ldc: Int) {
    _ = openBLASPinnedToOneThread
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                blasint(M), blasint(N), blasint(K), alpha, A, blasint(lda), B, blasint(ldb),
                beta, C, blasint(ldc))
}

/// The OpenBLAS core (kernel family) the library chose at load time, e.g. "Haswell".
public func openBLASCoreName() -> String {
    guard let name = openblas_get_corename() else { return "unknown" }
    return String(cString: name)
}

/// OpenBLAS's build configuration string (version, DYNAMIC_ARCH, …).
public func openBLASConfig() -> String {
    guard let config = openblas_get_config() else { return "unknown" }
    return String(cString: config)
}

/// The largest error of `gemm` on a few products with edge tiles, both transposes, alpha and
/// beta, relative to the sum of the absolute terms of a Double reference: ≈ 1e-7 for a
/// correct kernel. Run at start-up, so that a wrong OpenBLAS core is refused before any work.
public func gemmSelfCheckError() -> Double {
    var worst = 0.0
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
    }
    for (M, N, K, transA, transB) in [(37, 29, 53, false, true), (64, 96, 128, true, false), (5, 131, 17, true, true)] {
        let a = (0..<(M * K)).map { _ in next() }, b = (0..<(K * N)).map { _ in next() }
        var c = (0..<(M * N)).map { _ in next() }
        let c0 = c
        let alpha: Float = 0.75, beta: Float = 0.5
        c.withUnsafeMutableBufferPointer { cp in
            gemm(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: a, lda: transA ? M : K,
                 B: b, ldb: transB ? K : N, beta: beta, C: cp.baseAddress!, ldc: N)
        }
        for i in 0..<M {
            for j in 0..<N {
                var sum = 0.0, scale = 0.0
                for k in 0..<K {
                    let x = Double(transA ? a[k * M + i] : a[i * K + k]), y = Double(transB ? b[j * K + k] : b[k * N + j])
                    sum += x * y
                    scale += abs(x * y)
                }
                let ref = Double(alpha) * sum + Double(beta) * Double(c0[i * N + j])
                let err = abs(Double(c[i * N + j]) - ref) / (Double(alpha) * scale + abs(Double(beta) * Double(c0[i * N + j])) + 1e-30)
                worst = max(worst, err.isNaN ? .infinity : err)
            }
        }
    }
    return worst
}
