// RNG.swift — the project's own seeded, splittable random number generator.
//
// xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom number generators",
// 2018) seeded through SplitMix64, so that initialization and sampling are reproducible
// on every machine and independent of the platform generator. `split(_:)` derives an
// independent child stream from a label, so stages (init, data order, sampling, …) do not
// perturb each other's streams when one of them draws more numbers.

/// A seeded xoshiro256** generator. Value type: copying it forks the stream.
public struct RNG: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// Creates a generator from a 64-bit seed (expanded with SplitMix64).
    public init(seed: UInt64) {
        var sm = seed
        s0 = RNG.splitMix64(&sm); s1 = RNG.splitMix64(&sm)
        s2 = RNG.splitMix64(&sm); s3 = RNG.splitMix64(&sm)
    }

    @inline(__always)
    static func splitMix64(_ x: inout UInt64) -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// The next 64 random bits.
    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = RNG.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = RNG.rotl(s3, 45)
        return result
    }

    /// An independent child generator named by `label`; the parent is not advanced.
    public func split(_ label: UInt64) -> RNG {
        var h = s0 ^ RNG.rotl(s1, 13) ^ RNG.rotl(s2, 29) ^ RNG.rotl(s3, 47)
        var l = label &+ 0x632B_E59B_D9B4_E019
        return RNG(seed: RNG.splitMix64(&h) ^ RNG.splitMix64(&l))
    }

    /// An independent child generator named by a string label (stable FNV-1a hash).
    public func split(_ label: String) -> RNG { split(RNG.stableHash(label)) }

    /// FNV-1a 64-bit hash of a string: stable across runs and platforms.
    public static func stableHash(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    /// Uniform Float in [0, 1) with 24 random bits.
    @inline(__always)
    public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform Double in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func uniformDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Uniform integer in 0..<n (Lemire's nearly-divisionless method), n > 0.
    @inline(__always)
    public mutating func int(below n: Int) -> Int {
        precondition(n > 0, "RNG.int(below:) needs n > 0")
        let bound = UInt64(n)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return Int(m.high)
    }

    /// True with probability p.
    @inline(__always)
    public mutating func bernoulli(_ p: Double) -> Bool { uniformDouble() < p }

    /// Standard normal sample (Box–Muller, one value per call).
    public mutating func normal() -> Float {
        var u1 = uniformDouble()
        if u1 < 1e-300 { u1 = 1e-300 }
        let u2 = uniformDouble()
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }

    /// Fisher–Yates shuffle in place.
    public mutating func shuffle<T>(_ a: inout [T]) {
        if a.count < 2 { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            let j = int(below: i + 1)
            if i != j { a.swapAt(i, j) }
        }
    }

    /// An index drawn from unnormalized non-negative weights.
    public mutating func categorical(_ weights: [Double]) -> Int {
        let total = weights.reduce(0, +)
        var u = uniformDouble() * total
        for (i, w) in weights.enumerated() {
            u -= w
            if u < 0 { return i }
        }
        return weights.count - 1
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
import Foundation
@inline(__always) func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Foundation.cos(x) }
#endif
