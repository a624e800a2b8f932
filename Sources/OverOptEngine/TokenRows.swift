// TokenRows.swift — which rows of a padded batch a training step computes.
//
// A batch of B sequences is stored as (B·T, ·) buffers, each sequence right-padded to the
// longest one's T tokens. Attention is causal, so nothing a token computes depends on the
// padding after it; in the world's batches a third to a half of the rows are padding.
// The forward therefore computes only each sequence's token rows and writes zeros to the
// padding rows, and the backward's products, attention and elementwise passes read only
// the token rows too (a head's gradient at a padding row stops at the head,
// `Transformer.backward`); a padding row of a backward buffer may hold anything.
// The forward's kernels compute a row the same way whichever rows are computed beside it
// (PackedLinear, LayerNorm, GELU, attention's one-query kernel), so the forward gives bit
// for bit what the full padded forward gives. The backward's weight gradients and
// attention products are OpenBLAS products over fewer rows, which round differently
// (OpenBLAS rounds a row by its place in a product), so gradients agree with the padded
// computation to rounding; a test checks both on a whole training step.

/// The rows a forward computes: rows b·T ..< b·T + lengths[b] of each sequence b, or every
/// row of an unpadded buffer.
public struct TokenRows: Sendable {
    public let B: Int, T: Int
    /// Tokens per sequence; nil when every row is computed.
    public let lengths: [Int]?

    /// Every one of N rows (one block, no padding).
    public init(all N: Int) { B = 1; T = N; lengths = nil }

    /// The token rows of a batch: nil lengths when no sequence is padded.
    public init(B: Int, T: Int, lengths: [Int]) {
        precondition(lengths.count == B && lengths.allSatisfy { (1...T).contains($0) }, "TokenRows: one length in 1...T per sequence")
        self.B = B; self.T = T
        self.lengths = lengths.allSatisfy { $0 == T } ? nil : lengths
    }

    /// The number of rows of the buffers (B·T).
    public var N: Int { B * T }

    /// The number of rows computed.
    public var count: Int { lengths?.reduce(0, +) ?? N }

    /// Calls `body(r0, r1)` for runs of computed rows covering all of them, in parallel
    /// (`costPerRow` as `parallelFor`'s cost per item): each sequence's token rows, or
    /// contiguous blocks of all rows.
    func forEachRun(costPerRow: Int, _ body: (Int, Int) -> Void) {
        guard let lengths else {
            parallelFor(N, costPerItem: costPerRow) { _, r in body(r.lowerBound, r.upperBound) }
            return
        }
        let T = T
        parallelFor(B, costPerItem: costPerRow * T) { _, seqs in
            for b in seqs { body(b * T, b * T + lengths[b]) }
        }
    }

    /// The runs of computed rows in order: each sequence's token rows, or all rows as one.
    var runs: [Range<Int>] {
        guard let lengths else { return [0..<N] }
        return lengths.indices.map { b in b * T ..< b * T + lengths[b] }
    }

    /// Calls `body` with the computed rows of `x` (N rows of `width`) one after another:
    /// `x` itself when every row is computed, else a copy in this thread's scratch memory.
    func withGathered<R>(_ x: UnsafePointer<Float>, width: Int, _ body: (UnsafePointer<Float>) -> R) -> R {
        guard lengths != nil else { return body(x) }
        return withScratch(count * width) { dst in
            var k = 0
            for run in runs {
                (dst + k * width).update(from: x + run.lowerBound * width, count: run.count * width)
                k += run.count
            }
            return body(dst)
        }
    }

    /// Sets the padding rows of `x` (N rows of `width`) to zero.
    func zeroPadding(_ x: FPtr, width: Int) {
        guard let lengths else { return }
        for b in 0..<B where lengths[b] < T {
            (x + (b * T + lengths[b]) * width).update(repeating: 0, count: (T - lengths[b]) * width)
        }
    }
}
