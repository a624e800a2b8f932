// FastMath.swift — vectorized exp and tanh for the elementwise layers.
//
// glibc's scalar tanhf costs ~20 ns, which made GELU the most expensive part of a
// training step. `vexp` is the Cephes expf scheme on 16 lanes: x = n·ln2 + r with
// |r| ≤ ln2/2, exp(r) by a degree-6 polynomial, 2ⁿ by building the float's exponent
// bits (accurate to ~2 ulp over the clamped range [−87.3, 88.7]).
// tanh(u) = sign(u)·(1 − 2/(exp(2|u|) + 1)), absolute error ~1e-7.

public typealias F16 = SIMD16<Float>

@inline(__always)
public func vexp(_ x0: F16) -> F16 {
    let lo = F16(repeating: -87.3), hi = F16(repeating: 88.7)
    let x = vmax(vmin(x0, hi), lo)
    // Round x·log2(e) to the nearest integer n with the 1.5·2²³ trick (SSE2-friendly):
    // after the add, the low mantissa bits of t hold n.
    let magic: Float = 12_582_912
    let t: F16 = x * 1.442_695_04 + magic
    let n: F16 = t - magic
    var r: F16 = x - n * 0.693_359_375
    r = r - n * -2.121_944_4e-4
    var p = F16(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    let r2: F16 = r * r
    p = p * r2 + r + 1
    let tb = unsafeBitCast(t, to: SIMD16<UInt32>.self)
    let mb = SIMD16<UInt32>(repeating: magic.bitPattern)
    let e2n = ((tb &- mb) &+ 127) &<< 23
    return p * unsafeBitCast(e2n, to: F16.self)
}

/// tanh(u) = 1 − 2/(exp(2u) + 1); absolute error ≲ 1e-7.
@inline(__always)
public func vtanh(_ u: F16) -> F16 {
    let e = vexp(2 * u)
    return 1 - 2 / (e + 1)
}

/// Loads 16 floats (or the first `count` and zeros) from p.
@inline(__always)
func load16(_ p: UnsafePointer<Float>, _ count: Int = 16) -> F16 {
    if count >= 16 { return UnsafeRawPointer(p).loadUnaligned(as: F16.self) }
    var v = F16()
    for i in 0..<count { v[i] = p[i] }
    return v
}

/// Stores the first `count` lanes of v to p.
@inline(__always)
func store16(_ v: F16, _ p: FPtr, _ count: Int = 16) {
    if count >= 16 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: F16.self); return }
    for i in 0..<count { p[i] = v[i] }
}

// Lane-wise min and max. The standard library's `replacing(with:where:)`, `pointwiseMin/Max`
// and SIMDMask conversions compile to per-lane loops through memory; a mask taken from the
// sign bit of a difference compiles to one subtract and one blend.

public typealias I16 = SIMD16<Int32>

/// All ones in the lanes where a < b (the sign of a − b), zeros elsewhere.
@inline(__always) func lessMask(_ a: F16, _ b: F16) -> I16 { unsafeBitCast(a - b, to: I16.self) &>> 31 }

/// m ? x : y, lane-wise, for a mask of all-ones/zero lanes.
@inline(__always) func pick(_ m: I16, _ x: F16, _ y: F16) -> F16 {
    unsafeBitCast((unsafeBitCast(x, to: I16.self) & m) | (unsafeBitCast(y, to: I16.self) & ~m), to: F16.self)
}

/// Lane-wise max and min (exact selections; NaN handling unspecified).
@inline(__always) func vmax(_ a: F16, _ b: F16) -> F16 { pick(lessMask(a, b), b, a) }
@inline(__always) func vmin(_ a: F16, _ b: F16) -> F16 { pick(lessMask(b, a), b, a) }

/// Horizontal sum and max of 16 lanes.
@inline(__always)
func hsum(_ v: F16) -> Float {
    let a = v.lowHalf + v.highHalf, b = a.lowHalf + a.highHalf, c = b.lowHalf + b.highHalf
    return c[0] + c[1]
}

@inline(__always)
func hmax(_ v: F16) -> Float {
    var r = v[0]
    for i in 1..<16 { r = max(r, v[i]) }
    return r
}
