// GaoFit.swift — Gao et al.'s functional forms of gold (or proxy) score against KL, fitted
// by least squares, and the statistics across seeds used by `collect`.
//
// Gao, Schulman & Hilton 2022 (arXiv 2210.10760), with d = sqrt(KL) and score(0) = 0:
//   best-of-n:  R(d) = d (α − β d)       = α·d − β·d²
//   RL (PPO):   R(d) = d (α − β log d)   = α·d − β·d·log d
// Both are linear in (α, β), so the fit through the origin is ordinary linear least squares
// in the two basis functions f(d) = d and g(d) = −d² (best-of-n) or −d·log d (RL, with
// g(0) = 0, its limit). See docs/paper.md §1.

import Foundation
import OverOptEngine

/// Which of Gao et al.'s forms.
public enum GaoForm: String, Sendable {
    /// R(d) = d (α − β d).
    case bestOfN = "bon"
    /// R(d) = d (α − β log d).
    case rl = "ppo"

    /// The two basis functions (f, g) at d: R = α f + β g.
    public func basis(_ d: Double) -> (f: Double, g: Double) {
        switch self {
        case .bestOfN: return (d, -d * d)
        case .rl: return (d, d > 0 ? -d * log(d) : 0)
        }
    }

    /// R(d) for given α, β.
    public func value(d: Double, alpha: Double, beta: Double) -> Double {
        let (f, g) = basis(d)
        return alpha * f + beta * g
    }
}

/// α, β and the coefficient of determination of a fit.
public struct GaoFit: Sendable, Equatable {
    public var alpha: Double
    public var beta: Double
    /// R² = 1 − SS_res / SS_tot, SS_tot about the mean of the scores (NaN when all scores are equal).
    public var r2: Double
}

/// Fits `form` to scores `y` at KLs `kl` (nats; negative KL estimates count as 0) by least
/// squares through the origin: the 2×2 normal equations
///   [Σf² Σfg; Σfg Σg²] [α; β] = [Σfy; Σgy]
/// solved in closed form. NaN α, β when the basis is degenerate (fewer than two distinct
/// positive d) or an input is not finite.
public func fitGao(_ form: GaoForm, kl: [Double], y: [Double]) -> GaoFit {
    precondition(kl.count == y.count, "one score per KL")
    var sff = 0.0, sfg = 0.0, sgg = 0.0, sfy = 0.0, sgy = 0.0
    for (k, v) in zip(kl, y) {
        let (f, g) = form.basis(max(0, k).squareRoot())
        sff += f * f; sfg += f * g; sgg += g * g; sfy += f * v; sgy += g * v
    }
    let det = sff * sgg - sfg * sfg
    guard det.isFinite, abs(det) > 1e-12 * max(1e-300, sff * sgg) else { return GaoFit(alpha: .nan, beta: .nan, r2: .nan) }
    let alpha = (sfy * sgg - sgy * sfg) / det
    let beta = (sgy * sff - sfy * sfg) / det
    let mean = y.reduce(0, +) / Double(y.count)
    var ssRes = 0.0, ssTot = 0.0
    for (k, v) in zip(kl, y) {
        let r = v - form.value(d: max(0, k).squareRoot(), alpha: alpha, beta: beta)
        ssRes += r * r; ssTot += (v - mean) * (v - mean)
    }
    return GaoFit(alpha: alpha, beta: beta, r2: ssTot > 0 ? 1 - ssRes / ssTot : .nan)
}

// MARK: - Statistics across seeds

/// Mean, standard deviation (n − 1 denominator) and standard error of the mean (std / √n)
/// of a sample (values across seeds, or across prompts for best-of-n). With one value, std
/// and sem are NaN (no spread is known).
public struct SeedStatistics: Sendable, Equatable {
    public var mean: Double
    public var std: Double
    public var sem: Double

    public init(_ values: [Double]) {
        let n = Double(values.count)
        mean = Statistics.mean(values)
        if values.count < 2 {
            std = .nan; sem = .nan
        } else {
            std = Statistics.variance(values, mean: mean, sample: true).squareRoot()
            sem = std / n.squareRoot()
        }
    }
}

/// Piecewise-linear interpolation of the points (x, y) at `at`, after sorting the points by
/// x (ties keep their order; a later point at the same x wins). Outside the points' range
/// the nearest end value is used (constant extrapolation).
public func interpolateLinear(x: [Double], y: [Double], at grid: [Double]) -> [Double] {
    precondition(x.count == y.count && !x.isEmpty, "interpolation needs points")
    let order = x.indices.sorted { (x[$0], $0) < (x[$1], $1) }
    let xs = order.map { x[$0] }, ys = order.map { y[$0] }
    return grid.map { t in
        if t <= xs[0] { return ys[0] }
        if t >= xs[xs.count - 1] { return ys[ys.count - 1] }
        var hi = 1
        while xs[hi] < t { hi += 1 }
        let lo = hi - 1
        let w = xs[hi] > xs[lo] ? (t - xs[lo]) / (xs[hi] - xs[lo]) : 1
        return ys[lo] + w * (ys[hi] - ys[lo])
    }
}

/// The common KL grid of PPO curves across seeds: `points` values evenly spaced from 0 to
/// the smallest (over seeds) largest KL, so every seed's curve covers the grid. `[0]` when
/// that KL is not positive.
public func commonKLGrid(maxKLs: [Double], points: Int = 50) -> [Double] {
    let top = maxKLs.min() ?? 0
    guard top > 0, top.isFinite, points > 1 else { return [0] }
    return (0..<points).map { top * Double($0) / Double(points - 1) }
}

// MARK: - Intervals over seeds

/// A fit with percentile bootstrap intervals of α and β over seeds.
public struct GaoFitInterval: Sendable, Equatable {
    /// The fit to the mean curve over every seed.
    public var fit: GaoFit
    public var alphaLow = Double.nan, alphaHigh = Double.nan
    public var betaLow = Double.nan, betaHigh = Double.nan
    /// Seeds the curves came from.
    public var seeds: Int
}

/// Fits `form` to the mean over seeds of `perSeed` curves (rows: seeds, on the KLs `kl`),
/// with 95% percentile bootstrap intervals of α and β: `resamples` times, the seeds are
/// drawn with replacement, their mean curve fitted; the 2.5% and 97.5% quantiles of the
/// fitted α and β (resamples whose fit is degenerate are left out). A fixed resampling
/// seed makes the intervals reproducible. With one seed the intervals are NaN.
public func bootstrapGaoFit(_ form: GaoForm, kl: [Double], perSeed: [[Double]], resamples: Int = 2000,
                            seed: UInt64 = 0x6761_6f2d_626f_6f74, level: Double = 0.95) -> GaoFitInterval {
    let n = perSeed.count
    precondition(n > 0 && perSeed.allSatisfy { $0.count == kl.count }, "one curve per seed on the KL grid")
    func meanCurve(_ rows: [Int]) -> [Double] {
        kl.indices.map { j in rows.reduce(0) { $0 + perSeed[$1][j] } / Double(rows.count) }
    }
    var out = GaoFitInterval(fit: fitGao(form, kl: kl, y: meanCurve(Array(0..<n))), seeds: n)
    guard n > 1 else { return out }
    var rng = RNG(seed: seed)
    var alphas: [Double] = [], betas: [Double] = []
    for _ in 0..<resamples {
        let f = fitGao(form, kl: kl, y: meanCurve((0..<n).map { _ in rng.int(below: n) }))
        if f.alpha.isFinite && f.beta.isFinite { alphas.append(f.alpha); betas.append(f.beta) }
    }
    guard !alphas.isEmpty else { return out }
    alphas.sort(); betas.sort()
    let lo = (1 - level) / 2, hi = 1 - lo
    out.alphaLow = quantile(sorted: alphas, lo); out.alphaHigh = quantile(sorted: alphas, hi)
    out.betaLow = quantile(sorted: betas, lo); out.betaHigh = quantile(sorted: betas, hi)
    return out
}

// MARK: - Scaling across groups

/// Keys a scaling summary runs along (Gao et al.'s axes): the reward model's size, the
/// number of preference pairs, the KL penalty.
public let scalingKeys = ["rm.base", "data.train_pairs", "ppo.kl_coef"]

/// The config key whose value differs across `configs` (JSON objects), when exactly one
/// leaf key outside `variants` differs (a variant's settings follow `[rm]`, so they move
/// with it); a key absent from some configs counts as differing. nil otherwise.
public func singleDifferingKey(_ configs: [String]) -> String? {
    let differing = differingSettings(configs)
    return configs.count > 1 && differing.first?.count == 1 ? differing.first?.keys.first : nil
}

/// For each config JSON of `configs`, the dotted keys (outside `variants.`) whose values
/// differ among them, with this config's value as canonical JSON text ("0.25", "\"xl\"",
/// "∅" where the key is absent). Empty dictionaries for fewer than two configs.
public func differingSettings(_ configs: [String]) -> [[String: String]] {
    let flat = configs.map(flatConfigJSON)
    guard flat.count > 1 else { return flat.map { _ in [:] } }
    let keys = Set(flat.flatMap(\.keys)).filter { !$0.hasPrefix("variants.") }
    let differing = keys.filter { k in Set(flat.map { $0[k] ?? "∅" }).count > 1 }
    return flat.map { f in Dictionary(uniqueKeysWithValues: differing.map { k in (k, f[k] ?? "∅") }) }
}

/// A config JSON object as dotted leaf keys → the value as canonical JSON text ("0.25",
/// "\"xl\"", "[\"bt\",\"grm-sft\"]"); empty for text that is not a JSON object.
public func flatConfigJSON(_ text: String) -> [String: String] {
    guard let tree = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return [:] }
    var out: [String: String] = [:]
    func walk(_ node: [String: Any], _ prefix: String) {
        for (k, v) in node {
            let key = prefix.isEmpty ? k : "\(prefix).\(k)"
            if let t = v as? [String: Any] { walk(t, key); continue }
            // Serialized inside a one-element array (JSON text needs a container), then unwrapped.
            if let data = try? JSONSerialization.data(withJSONObject: [v], options: [.sortedKeys]) {
                out[key] = String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
            } else {
                out[key] = "\(v)"
            }
        }
    }
    walk(tree, "")
    return out
}

/// The value of the dotted `key` in a config JSON object, as a number when it is one,
/// else its text (strings unquoted); nil when absent.
public func configValue(_ text: String, key: String) -> (number: Double?, text: String)? {
    guard var node = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as Any? else { return nil }
    for part in key.split(separator: ".") {
        guard let t = node as? [String: Any], let next = t[String(part)] else { return nil }
        node = next
    }
    if let n = node as? NSNumber { return (n.doubleValue, n.stringValue) }
    if let s = node as? String { return (nil, s) }
    return (nil, "\(node)")
}
