// BLAS.swift — the only place the engine talks to OpenBLAS.
//
// All matrices are row-major. `gemm` computes C = alpha·op(A)·op(B) + beta·C with
// op(X) = X or Xᵀ, using leading dimensions so that strided views (one head's columns
// inside a fused QKV buffer) need no copies.
import CBLAS

/// Sets OpenBLAS's thread count (the engine's one level of parallelism; see README).
public func setBLASThreads(_ n: Int) {
    openblas_set_num_threads(Int32(max(1, n)))
}

/// OpenBLAS's current thread count.
public func blasThreads() -> Int { Int(openblas_get_num_threads()) }

/// Row-major single-precision GEMM: C(M,N) = alpha·op(A)·op(B) + beta·C.
/// op(A) is (M,K), op(B) is (K,N); lda/ldb/ldc are row strides of the stored matrices.
@inline(__always)
public func gemm(transA: Bool, transB: Bool, M: Int, N: Int, K: Int,
                 alpha: Float, A: UnsafePointer<Float>, lda: Int,
                 B: UnsafePointer<Float>, ldb: Int,
                 beta: Float, C: FPtr, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                blasint(M), blasint(N), blasint(K), alpha, A, blasint(lda), B, blasint(ldb),
                beta, C, blasint(ldc))
}

/// Runs `body` with OpenBLAS on one thread, then restores the previous count: for regions
/// where each of the engine's own threads runs its own matrix products.
public func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
    let previous = blasThreads()
    if previous > 1 { setBLASThreads(1) }
    defer { if previous > 1 { setBLASThreads(previous) } }
    return try body()
}
