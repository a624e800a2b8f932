// Parallel.swift — the engine's own threads for the non-BLAS work.
//
// The engine uses one level of parallelism per phase. In a one-pass training step the
// backward's weight-gradient products run as shape-fixed blocks of single-threaded OpenBLAS
// calls (BLAS.swift), and the packed products (PackedLinear.swift: the forward's and the
// backward's input gradients) and the elementwise,
// normalization, attention and softmax loops between them run on the same threads through
// `parallelFor`. In decoding, each thread runs whole groups of rows with products on packed
// weights (`parallelForEachDynamic`; see Sampler.swift), and in data-parallel steps each
// replica's part runs on one thread (DataParallel.swift); any `parallelFor` inside runs
// serially.
// Work is split into ranges that depend only on the item count and the thread count, and
// no result depends on which thread computed it or on the thread count (reductions use
// splits fixed by the item count), so results are bitwise identical for a given seed at
// any thread count set once per process (README, Architecture).
import Dispatch
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// Number of worker threads for `parallelFor` and the blocks of `gemm`.
nonisolated(unsafe) var engineThreads = 1

/// Sets the engine's thread count (OpenBLAS itself always runs on one thread; BLAS.swift).
public func setEngineThreads(_ n: Int) {
    engineThreads = max(1, n)
}

/// The engine's current thread count.
public func engineThreadCount() -> Int { engineThreads }

/// Calls `body(part, range)` for `parts` contiguous ranges covering 0..<n, in parallel
/// when worthwhile (`n·costPerItem` above a threshold). `part` is the range's index.
@inline(__always)
public func parallelFor(_ n: Int, costPerItem: Int = 1, _ body: (Int, Range<Int>) -> Void) {
    parallelFor(n, parts: parallelParts(n, costPerItem: costPerItem), body)
}

/// Calls `body(part, range)` for exactly `parts` contiguous ranges covering 0..<n. Kernels
/// that keep per-part scratch read `parallelParts` once and pass it here, so a concurrent
/// change of the thread count cannot make them overrun their scratch.
/// Inside a part, nested calls run serially on that part's thread (one level at a time);
/// a loop that runs as one part still marks its body as a part, so what runs inside does
/// not depend on the thread count.
public func parallelFor(_ n: Int, parts requested: Int, _ body: (Int, Range<Int>) -> Void) {
    let nested = insideParallelPart
    let parts = nested ? 1 : max(1, min(requested, n))
    if parts == 1 {
        if nested {
            body(0, 0..<n)
        } else {
            asParallelPart { body(0, 0..<n) }
        }
        return
    }
    withoutActuallyEscaping(body) { b in
        let box = UncheckedSendable(b)
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            pthread_setspecific(partKey, UnsafeRawPointer(bitPattern: 1))
            box.value(p, (p * n / parts)..<((p + 1) * n / parts))
            pthread_setspecific(partKey, nil)
        }
    }
}

/// Calls `body(i)` for every i in 0..<n on up to the engine's thread count, each thread
/// taking the next index when it finishes one: for few, large, uneven items (or cores of
/// different speeds). Nothing may depend on which thread ran an item.
public func parallelForEachDynamic(_ n: Int, _ body: (Int) -> Void) {
    let nested = insideParallelPart
    let threads = nested ? 1 : min(engineThreads, n)
    if threads <= 1 {
        if nested {
            for i in 0..<n { body(i) }
        } else {
            asParallelPart { for i in 0..<n { body(i) } }
        }
        return
    }
    let next = NextIndex()
    parallelFor(threads, parts: threads) { _, _ in
        while let i = next.take(below: n) { body(i) }
    }
}

/// A shared counter handing out 0, 1, 2, … to competing threads.
final class NextIndex: @unchecked Sendable {
    private var value = 0
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func take(below n: Int) -> Int? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard value < n else { return nil }
        value += 1
        return value - 1
    }
}

/// Thread-specific marker of a thread running a part of `parallelFor`.
private let partKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, nil)
    return key
}()

/// Runs `body` marked as a part of a parallel loop, as the loops do when they run on one
/// thread: code inside a loop's body behaves the same at any thread count (matrix products
/// there stay whole; see `gemm`).
@inline(__always)
func asParallelPart(_ body: () -> Void) {
    pthread_setspecific(partKey, UnsafeRawPointer(bitPattern: 1))
    body()
    pthread_setspecific(partKey, nil)
}

/// Whether the calling thread is running a part of `parallelFor` (or of
/// `parallelForEachDynamic`), on any number of threads.
var insideParallelPart: Bool { pthread_getspecific(partKey) != nil }

/// Lets a closure or buffers cross into worker threads; it is safe when the workers touch
/// disjoint ranges or elements, as everywhere it is used.
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}

/// The number of parts `parallelFor` would use for n items (for per-part scratch buffers).
public func parallelParts(_ n: Int, costPerItem: Int = 1) -> Int {
    let threads = engineThreads
    if threads <= 1 || insideParallelPart || n < 2 || n * costPerItem < 32_768 { return 1 }
    return min(threads, n)
}
