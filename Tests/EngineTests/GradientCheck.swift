// Shared helpers for finite-difference gradient checks.
import OverOptEngine

/// Random values in a buffer.
func randomBuffer(_ n: Int, _ rng: inout RNG, scale: Float = 1) -> FloatBuffer {
    let b = FloatBuffer(count: n)
    for i in 0..<n { b[i] = scale * rng.normal() }
    return b
}

/// Σ w·x in double precision: turns a tensor output into a scalar test loss.
func weightedSum(_ x: FPtr, _ w: FloatBuffer) -> Double {
    var s: Double = 0
    for i in 0..<w.count { s += Double(x[i]) * Double(w[i]) }
    return s
}

/// Worst-case mismatch between analytic and central-difference gradients of `loss` with
/// respect to the `n` floats at `x`, as max |a − f| / max(floor, |a| + |f|).
/// `indices` limits the check to a subset (all when nil).
func gradientError(x: FPtr, n: Int, analytic: [Float], eps: Float = 1e-2, floor: Double = 1e-2,
                   indices: [Int]? = nil, loss: () -> Double) -> Double {
    var worst: Double = 0
    for i in indices ?? Array(0..<n) {
        let orig = x[i]
        x[i] = orig + eps
        let lp = loss()
        x[i] = orig - eps
        let lm = loss()
        x[i] = orig
        let fd = (lp - lm) / (2 * Double(eps))
        let a = Double(analytic[i])
        let err = abs(a - fd) / max(floor, abs(a) + abs(fd))
        worst = max(worst, err)
    }
    return worst
}

/// A spread-out subset of `count` indices out of n (all of them when n ≤ count).
func sampleIndices(_ n: Int, _ count: Int, _ rng: inout RNG) -> [Int] {
    if n <= count { return Array(0..<n) }
    return (0..<count).map { _ in rng.int(below: n) }
}
