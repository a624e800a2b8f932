// BLAS.swift — the only place the engine talks to OpenBLAS.
//
// All matrices are row-major. `gemm` computes C = alpha·op(A)·op(B) + beta·C with
// op(X) = X or Xᵀ, using leading dimensions so that strided views (one head's columns
// inside a fused QKV buffer) need no copies.
import CBLAS
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// The process's OpenBLAS thread setting: the count asked for, and how many single-threaded
/// regions are running. While any runs, OpenBLAS stays at one thread, so that a region's
/// workers (each calling sgemm at once) never see it switched back mid-call by a region
/// that ended or by `setBLASThreads`.
private final class BLASThreadSetting: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var requested: Int?
    private var singleRegions = 0
    init() { pthread_mutex_init(&mutex, nil) }

    func set(_ n: Int) {
        pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }
        requested = n
        if singleRegions == 0 { openblas_set_num_threads(Int32(n)) }
    }

    func enterSingle() {
        pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }
        if requested == nil { requested = Int(openblas_get_num_threads()) }
        if singleRegions == 0 { openblas_set_num_threads(1) }
        singleRegions += 1
    }

    func leaveSingle() {
        pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }
        singleRegions -= 1
        if singleRegions == 0, let n = requested { openblas_set_num_threads(Int32(n)) }
    }
}

private let blasThreadSetting = BLASThreadSetting()

/// Sets OpenBLAS's thread count (the engine's one level of parallelism; see README). Inside
/// single-threaded regions it takes effect when the last one ends.
public func setBLASThreads(_ n: Int) { blasThreadSetting.set(max(1, n)) }

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

/// Runs `body` with OpenBLAS on one thread, then restores the requested count: for regions
/// where each of the engine's own threads runs its own matrix products. Regions may overlap
/// (from different threads); OpenBLAS stays at one thread until the last one ends.
public func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
    blasThreadSetting.enterSingle()
    defer { blasThreadSetting.leaveSingle() }
    return try body()
}
