// Compare.swift — `overopt compare`: each variant against a baseline, paired by seed.
//
// Runs are grouped as `collect` groups them (the config minus the seed). Within a group,
// the variants of one seed share its base policy, preference data and best-of-n samples, so
// each metric is compared through its per-seed difference variant − baseline
// (PairedStatistics.swift). Metrics of one (run, variant):
//   rm/<scalar>           every accuracy of the proxy the run file stores (id_accuracy,
//                         ood_accuracy_mean, ood_accuracy/<set>, lm_preference_accuracy)
//   bon/gold@n=<n>        best-of-n gold (shifted: n = 1 is 0) at each n > 1 of the grid
//   bon/gold_peak, bon/kl_at_peak, bon/drop_from_peak (peak − value at the largest n),
//   bon/gold_area         ∫ gold dKL over the grid's KL range (trapezoids)
//   ppo/gold@kl=<k>       PPO gold (shifted: step 0 is 0) interpolated at KL = k on the
//                         seed's own curve; compared only where every run of the group
//                         reached KL ≥ k (else the row says how many did)
//   ppo/gold_peak, ppo/kl_at_peak, ppo/drop_from_peak (peak − last evaluation),
//   ppo/gold_area@kl<=K   ∫₀ᴷ gold dKL with K the smallest final KL over the group's runs
//                         (rounded down to 3 significant digits)
// Holm's correction runs over the variants compared on each metric of a group.
import Foundation
import OverOptEngine
import OverOptHDF5

/// What to compare.
public struct CompareOptions: Sendable {
    public var baseline: String
    /// Variants to compare with the baseline (nil: every other variant of the group).
    public var variants: [String]?
    /// KL points for PPO gold at matched KL.
    public var klPoints: [Double]
    /// Metric name prefixes to keep (nil: all), e.g. ["bon/gold@", "rm/"].
    public var metrics: [String]?

    public init(baseline: String, variants: [String]? = nil, klPoints: [Double] = [1, 2, 5, 10], metrics: [String]? = nil) {
        self.baseline = baseline
        self.variants = variants
        self.klPoints = klPoints
        self.metrics = metrics
    }
}

/// One row: a variant against the baseline on one metric.
public struct MetricComparison: Sendable, Codable, Equatable {
    public var metric: String
    public var variant: String
    /// The paired statistics, or nil when the metric could not be compared on every seed.
    public var difference: PairedDifference?
    /// Per-seed values (seed order) of the variant and of the baseline.
    public var variantValues: [Double]
    public var baselineValues: [Double]
    /// Why there are no statistics (e.g. "KL 10 reached by 2 of 3 runs").
    public var note: String?
}

/// The comparisons of one group of runs.
public struct GroupComparison: Sendable, Codable {
    public var group: String
    /// The config keys in which this group differs from the other groups compared, with this
    /// group's values as JSON text (e.g. "data.label_noise": "0.25"); empty for one group.
    public var settings: [String: String]
    public var seeds: [Int64]
    public var baseline: String
    public var variants: [String]
    public var rows: [MetricComparison]
}

extension GroupComparison {
    /// "data.label_noise=0.25, rm.base=\"xl\"": the settings that set this group apart.
    public var settingsLabel: String {
        settings.keys.sorted().map { "\($0)=\(settings[$0]!)" }.joined(separator: ", ")
    }
}

/// The metrics of `variant` in `run`; `ppoCommonKL` is the KL up to which PPO gold areas are
/// taken (the group's smallest final KL), `commonKL` the same for the other policy optimizers.
public func comparisonMetrics(_ run: CollectedRun, variant: String, klPoints: [Double], ppoCommonKL: Double?,
                              commonKL: [String: Double] = [:]) -> [String: Double] {
    var m: [String: Double] = [:]
    // The base model's own accuracies (base_lm_…) are the same for every variant.
    for (key, value) in run.rm[variant] ?? [:] where key.contains("accuracy") && !key.hasPrefix("base_") { m["rm/\(key)"] = value }
    if let bon = run.bon[variant], let gold = bon.curves["gold_shifted"], gold.count == bon.kl.count, !gold.isEmpty {
        for (n, g) in zip(bon.x, gold) where n > 1 { m["bon/gold@n=\(n)"] = g }   // n = 1 is 0 by construction
        m.merge(overOptimizationSummary(kl: bon.kl, gold: gold, upTo: bon.kl.max() ?? 0, prefix: "bon/", areaName: "gold_area")) { a, _ in a }
    }
    for stage in policyOptimizerStages {
        guard let c = run.optimizers[stage]?[variant], let gold = c.curves["gold_shifted"], gold.count == c.kl.count, !gold.isEmpty else { continue }
        let reached = c.kl.max() ?? 0
        for k in klPoints where reached >= k {
            m["\(stage)/gold@kl=\(formatKL(k))"] = interpolateLinear(x: c.kl, y: gold, at: [k])[0]
        }
        if let K = stage == "ppo" ? ppoCommonKL : commonKL[stage] {
            m.merge(overOptimizationSummary(kl: c.kl, gold: gold, upTo: K, prefix: "\(stage)/", areaName: "gold_area@kl<=\(formatKL(K))")) { a, _ in a }
        }
    }
    return m
}

/// Gold peak, the KL at the peak, the drop from the peak to the last point (in the curve's
/// order), and the area under gold against KL from 0 to `upTo` (the curve interpolated on
/// 201 points, trapezoids).
func overOptimizationSummary(kl: [Double], gold: [Double], upTo: Double, prefix: String, areaName: String) -> [String: Double] {
    let peak = gold.indices.max { gold[$0] < gold[$1] }!
    var out: [String: Double] = [:]
    out[prefix + "gold_peak"] = gold[peak]
    out[prefix + "kl_at_peak"] = kl[peak]
    out[prefix + "drop_from_peak"] = gold[peak] - gold[gold.count - 1]
    if upTo > 0 {
        let grid = (0...200).map { upTo * Double($0) / 200 }
        let y = interpolateLinear(x: kl, y: gold, at: grid)
        var area = 0.0
        for i in 1...200 { area += 0.5 * (y[i] + y[i - 1]) * (grid[i] - grid[i - 1]) }
        out[prefix + areaName] = area
    }
    return out
}

/// "10", "2.5": a KL point as metric names show it.
func formatKL(_ k: Double) -> String {
    k == k.rounded() && abs(k) < 1e15 ? String(Int(k)) : String(format: "%g", k)
}

/// Compares every group of `runs` (see the header).
public func compareRuns(_ runs: [CollectedRun], options: CompareOptions) throws -> [GroupComparison] {
    let groups = Dictionary(grouping: runs, by: \.groupName)
    let groupNames = groups.keys.sorted()
    let settings = Dictionary(uniqueKeysWithValues: zip(groupNames, differingSettings(groupNames.map { groups[$0]![0].groupConfig })))
    var out: [GroupComparison] = []
    for name in groupNames {
        let members = groups[name]!.sorted { $0.seed < $1.seed }
        let seeds = members.map(\.seed)
        if Set(seeds).count != seeds.count {
            throw CollectError("group \(name) has two runs of the same seed (\(seeds.map(String.init).joined(separator: ", ")))")
        }
        let present = Set(members.flatMap { Array($0.rm.keys) + Array($0.bon.keys) + Array($0.ppo.keys) })
        guard present.contains(options.baseline) else {
            throw CollectError("group \(name) has no variant '\(options.baseline)' to compare with (variants: \(present.sorted().joined(separator: ", ")))")
        }
        let variants = (options.variants ?? present.sorted()).filter { $0 != options.baseline }
        for v in variants where !present.contains(v) {
            throw CollectError("group \(name) has no variant '\(v)' (variants: \(present.sorted().joined(separator: ", ")))")
        }
        let compared = [options.baseline] + variants
        // Per optimizer, the smallest final KL, rounded down to 3 significant digits (so the
        // metric's name is exact).
        var commonKL: [String: Double] = [:]
        for stage in policyOptimizerStages {
            let finalKLs = members.flatMap { run in compared.compactMap { run.optimizers[stage]?[$0]?.kl.max() } }
            if let k = finalKLs.min() {
                guard k > 0 else { commonKL[stage] = k; continue }
                let scale = pow(10, 2 - floor(log10(k)))
                commonKL[stage] = floor(k * scale) / scale
            }
        }
        let metrics: [[String: [String: Double]]] = members.map { run in
            Dictionary(uniqueKeysWithValues: compared.map {
                ($0, comparisonMetrics(run, variant: $0, klPoints: options.klPoints, ppoCommonKL: commonKL["ppo"], commonKL: commonKL))
            })
        }
        var names = Set<String>()
        for seedMetrics in metrics { for (_, m) in seedMetrics { names.formUnion(m.keys) } }
        // PPO gold at a KL point is listed whenever any run reached it, so that a row can say how many did.
        for stage in policyOptimizerStages where names.contains(where: { $0.hasPrefix("\(stage)/") }) {
            for k in options.klPoints { names.insert("\(stage)/gold@kl=\(formatKL(k))") }
        }
        if let keep = options.metrics { names = names.filter { n in keep.contains { n.hasPrefix($0) } } }
        var rows: [MetricComparison] = []
        for metric in names.sorted(by: metricOrder) {
            var family: [Int] = []
            for v in variants {
                let a = metrics.map { $0[v]?[metric] }, b = metrics.map { $0[options.baseline]?[metric] }
                var row = MetricComparison(metric: metric, variant: v, difference: nil,
                                           variantValues: a.map { $0 ?? .nan }, baselineValues: b.map { $0 ?? .nan }, note: nil)
                let complete = zip(a, b).filter { $0 != nil && $1 != nil }.count
                if complete == members.count {
                    row.difference = pairedDifference(zip(a, b).map { $0! - $1! })
                    family.append(rows.count)
                } else if let r = metric.range(of: "/gold@kl=") {
                    row.note = "KL \(metric[r.upperBound...]) reached by \(complete) of \(members.count) seeds"
                } else if a.contains(where: { $0 != nil }) || b.contains(where: { $0 != nil }) {
                    row.note = "available for \(complete) of \(members.count) seeds"
                } else {
                    continue
                }
                rows.append(row)
            }
            let adjusted = holmAdjusted(family.map { rows[$0].difference!.pValue })
            for (i, r) in family.enumerated() { rows[r].difference!.pHolm = adjusted[i] }
        }
        out.append(GroupComparison(group: name, settings: settings[name] ?? [:], seeds: seeds, baseline: options.baseline, variants: variants, rows: rows))
    }
    return out
}

/// Metric order for tables: rm, bon, ppo; numbers within a name by value (n=2 before n=16).
func metricOrder(_ a: String, _ b: String) -> Bool {
    func key(_ s: String) -> (Int, String, Double) {
        let stage = s.hasPrefix("rm/") ? 0 : s.hasPrefix("bon/") ? 1
            : 2 + (policyOptimizerStages.firstIndex { s.hasPrefix("\($0)/") } ?? policyOptimizerStages.count)
        if let eq = s.lastIndex(of: "="), let v = Double(s[s.index(after: eq)...]) { return (stage, String(s[..<eq]), v) }
        return (stage, s, 0)
    }
    let ka = key(a), kb = key(b)
    return (ka.0, ka.1, ka.2) < (kb.0, kb.1, kb.2)
}

/// Complete run files directly in folders (as `collect` reads them, `readRunFolder`) or given
/// as files; files that are not complete run files are skipped with their reason.
public func readComparedRuns(_ paths: [String]) throws -> (runs: [CollectedRun], skipped: [(path: String, reason: String)]) {
    var runs: [CollectedRun] = [], skipped: [(path: String, reason: String)] = []
    for path in paths {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CollectError("no such file or folder: '\(path)'")
        }
        if isDirectory.boolValue {
            let folder = try readRunFolder(path)
            runs += folder.runs
            skipped += folder.skipped
        } else {
            do { runs.append(try readCollectedRun(path: path)) } catch { skipped.append((path, "\(error)")) }
        }
    }
    guard !runs.isEmpty else { throw CollectError("no complete run files in \(paths.joined(separator: ", "))") }
    return (runs, skipped)
}

// MARK: - Output

/// "+0.123" with three decimals, "–" for NaN.
private func signed(_ x: Double) -> String { x.isNaN ? "–" : String(format: "%+.3f", x) }
private func pValue(_ p: Double) -> String { p.isNaN ? "–" : String(format: "%.3f", p) }

/// The comparison as a text table (`markdown`: a Markdown table per group).
public func comparisonTable(_ groups: [GroupComparison], markdown: Bool = false) -> String {
    var lines: [String] = []
    for g in groups {
        let header = "\(g.group)\(g.settingsLabel.isEmpty ? "" : " (\(g.settingsLabel))"): \(g.variants.joined(separator: ", ")) against \(g.baseline), paired over seeds \(g.seeds.map(String.init).joined(separator: ", "))"
        let columns = ["metric", "variant", "Δ mean", "95% t interval", "95% bootstrap", "wins", "p", "p (Holm)"]
        var body: [[String]] = []
        for r in g.rows {
            if let d = r.difference {
                body.append([r.metric, r.variant, signed(d.mean), "[\(signed(d.tLow)), \(signed(d.tHigh))]",
                             "[\(signed(d.bootstrapLow)), \(signed(d.bootstrapHigh))]", "\(d.wins)/\(d.seeds)",
                             pValue(d.pValue), pValue(d.pHolm)])
            } else {
                body.append([r.metric, r.variant, "–", r.note ?? "", "", "", "", ""])
            }
        }
        if markdown {
            lines.append("**\(header)**\n")
            lines.append("| " + columns.joined(separator: " | ") + " |")
            lines.append("|" + columns.map { _ in "---" }.joined(separator: "|") + "|")
            for row in body { lines.append("| " + row.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |") }
        } else {
            lines.append(header)
            let widths = columns.indices.map { c in ([columns[c]] + body.map { $0[c] }).map(\.count).max()! }
            func line(_ cells: [String]) -> String {
                cells.enumerated().map { c, s in c < 2 ? s.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[c] - s.count) + s }.joined(separator: "  ")
            }
            lines.append(line(columns))
            body.forEach { lines.append(line($0)) }
        }
        lines.append("")
    }
    lines.append("Δ = variant − baseline per seed; p: two-sided sign-flip permutation test over seeds (exact), Holm-corrected over the variants on each metric.")
    return lines.joined(separator: "\n")
}

/// Writes the comparison under `group` (e.g. a file's root or /compare): one subgroup per
/// run group and variant, holding per-metric datasets in row order.
public func writeComparison(_ groups: [GroupComparison], to parent: H5Group) throws {
    for g in groups {
        let gg = try parent.createGroup(g.group)
        try gg.setAttribute("baseline", g.baseline)
        try gg.setAttribute("settings", g.settingsLabel)
        try gg.write("seeds", g.seeds)
        for v in g.variants {
            let rows = g.rows.filter { $0.variant == v && $0.difference != nil }
            let vg = try gg.createGroup(v)
            try vg.write("metric", strings: rows.map(\.metric))
            let d = rows.map { $0.difference! }
            try vg.write("mean_difference", d.map(\.mean))
            try vg.write("t_low", d.map(\.tLow))
            try vg.write("t_high", d.map(\.tHigh))
            try vg.write("bootstrap_low", d.map(\.bootstrapLow))
            try vg.write("bootstrap_high", d.map(\.bootstrapHigh))
            try vg.write("wins", d.map { Int64($0.wins) })
            try vg.write("losses", d.map { Int64($0.losses) })
            try vg.write("p_value", d.map(\.pValue))
            try vg.write("p_holm", d.map(\.pHolm))
            if !rows.isEmpty {
                try vg.write("variant_values", rows.flatMap(\.variantValues), shape: [rows.count, g.seeds.count])
                try vg.write("baseline_values", rows.flatMap(\.baselineValues), shape: [rows.count, g.seeds.count])
            }
        }
    }
}
