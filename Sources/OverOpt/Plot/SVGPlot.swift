// SVGPlot.swift — the paper-style over-optimization figure as a self-contained SVG.
//
// Gold (solid) and proxy (dashed) score against KL (nats), one colour per proxy variant,
// a panel for best-of-n and one for PPO, scores shifted so the initial policy (best-of-n
// n = 1, PPO step 0) is at 0, as in Gao et al.'s and the GRM paper's figures. From a
// collect summary, the mean across seeds with a shaded ± sem band; one row per group.
//
// `figure(file:)` reads a run or summary file into plain series (the schema is in
// Experiment.swift / Collect.swift); `renderSVG` draws them with no dependencies.
import Foundation
import OverOptEngine
import OverOptHDF5

/// One line of a panel.
public struct PlotSeries: Sendable {
    public var variant: String
    /// "gold" (solid), "proxy" (dashed), "gold_fit" / "proxy_fit" (Gao et al.'s fit, thin
    /// dotted), "id" (solid) or "ood" (dashed) accuracy.
    public var curve: String
    public var x: [Double]
    public var y: [Double]
    /// Half-width of the shaded band at each point (e.g. sem across seeds); nil or NaN = none.
    public var band: [Double]?
    public init(variant: String, curve: String, x: [Double], y: [Double], band: [Double]? = nil) {
        self.variant = variant; self.curve = curve; self.x = x; self.y = y; self.band = band
    }
}

/// One set of axes.
public struct PlotPanel: Sendable {
    public var title: String
    public var series: [PlotSeries]
    public var xLabel: String
    public var yLabel: String
    /// Whether the axes always include 0 (the initial policy of a Δ-score panel).
    public var includesZero: Bool
    public init(title: String, series: [PlotSeries], xLabel: String = "KL (nats)",
                yLabel: String = "Δ score (vs initial policy)", includesZero: Bool = true) {
        self.title = title; self.series = series; self.xLabel = xLabel; self.yLabel = yLabel
        self.includesZero = includesZero
    }
}

/// Rows of panels and a title.
public struct Figure: Sendable {
    public var title: String
    public var rows: [[PlotPanel]]
    public init(title: String, rows: [[PlotPanel]]) { self.title = title; self.rows = rows }
    /// Variant names in order of first appearance (one colour each).
    public var variants: [String] {
        var seen: [String] = []
        for p in rows.joined() { for s in p.series where !seen.contains(s.variant) { seen.append(s.variant) } }
        return seen
    }
    /// Curve kinds present (one line style each): gold, proxy, ID, OOD, then the fits.
    public var curves: [String] {
        let present = Set(rows.joined().flatMap { $0.series.map(\.curve) })
        return present.sorted { (curveRank($0), $0) < (curveRank($1), $1) }
    }
}

/// What `figure(file:options:)` draws.
public struct FigureOptions: Sendable {
    /// Only these variants, in this order (nil: all).
    public var variants: [String]?
    /// Plot against √KL (Gao et al.'s axis) instead of KL.
    public var sqrtKL = false
    /// Overlay Gao et al.'s fits: d(α − βd) for best-of-n, d(α − β log d) for PPO, d = √KL.
    public var fits = false
    /// The figure's title (nil: the file name).
    public var title: String?
    /// Draw a summary's `/scaling` instead: gold α and β against the swept key.
    public var scaling = false
    public init(variants: [String]? = nil, sqrtKL: Bool = false, fits: Bool = false, title: String? = nil, scaling: Bool = false) {
        self.variants = variants; self.sqrtKL = sqrtKL; self.fits = fits; self.title = title; self.scaling = scaling
    }
}

/// Errors of `figure(file:options:)`, one line each.
public struct PlotError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

// MARK: - Reading files

/// The figure of a run file (one seed) or of a collect summary (`@kind = "summary"`): KL
/// curves of best-of-n and PPO or, for a summary of reward models only (Fig. 1 style),
/// accuracy against the config key that differs between its groups.
public func figure(file path: String, options: FigureOptions = FigureOptions()) throws -> Figure {
    guard FileManager.default.fileExists(atPath: path) else { throw PlotError("\(path): no such file") }
    let f: H5File
    do { f = try H5File.open(path) } catch { throw PlotError("\(path): not a readable HDF5 file") }
    defer { f.close() }
    let root = f.root
    let name = (path as NSString).lastPathComponent
    if root.hasAttribute("schema_version"), let v = try? root.intAttribute("schema_version"), v > resultSchemaVersion {
        throw PlotError("\(path): schema version \(v), newer than this build's \(resultSchemaVersion) (update overopt)")
    }
    if let wanted = options.variants {
        let present = try availableVariants(root)
        if let missing = wanted.first(where: { !present.contains($0) }) {
            throw PlotError("\(path): no variant '\(missing)' (has: \(present.sorted().joined(separator: ", ")))")
        }
    }
    var fig: Figure
    if options.scaling {
        guard root.contains("scaling") else {
            throw PlotError("\(path): no /scaling (a collect summary whose groups differ in exactly one config key has one)")
        }
        fig = try scalingFigure(try root.group("scaling"), options: options, fileName: name)
    } else if root.hasAttribute("kind"), (try? root.stringAttribute("kind")) == "summary" {
        guard root.contains("groups") else { throw PlotError("\(path): a summary without /groups") }
        let groups = try root.group("groups")
        let unordered = try groups.children().filter { groups.isGroup($0) }
        let unorderedConfigs = try unordered.map { try groups.group($0).stringAttribute("config") }
        let order = naturalGroupOrder(configs: unorderedConfigs)
        let names = order.map { unordered[$0] }, configs = order.map { unorderedConfigs[$0] }
        let runNames = names.map { g in (try? groups.group(g).stringAttribute("name")) ?? g }
        let labels = groupLabels(names: runNames, configs: configs)
        var rows: [[PlotPanel]] = []
        for (g, label) in zip(names, labels) {
            let row = try panels(try groups.group(g), summary: true, suffix: " · \(label)", options: options)
            if !row.isEmpty { rows.append(row) }
        }
        fig = Figure(title: "\(name): mean ± sem across seeds", rows: rows)
        if rows.isEmpty { fig = try accuracyFigure(groups, names: names, configs: configs, options: options, fileName: name) }
    } else {
        guard root.hasAttribute("config") else {
            throw PlotError("\(path): not an OverOpt run or summary file (no root attribute config or kind)")
        }
        let seed = (try? root.intAttribute("seed")).map { ", seed \($0)" } ?? ""
        fig = Figure(title: "\(name)\(seed)", rows: [try panels(root, summary: false, suffix: "", options: options)].filter { !$0.isEmpty })
    }
    if let title = options.title { fig.title = title }
    return fig
}

/// The variants with best-of-n, PPO or reward-model results in a run file or any group of a summary.
func availableVariants(_ root: H5Group) throws -> Set<String> {
    var out: Set<String> = []
    let holders = root.contains("groups") ? try root.group("groups").children().map { try root.group("groups/\($0)") } : [root]
    for g in holders {
        for section in ["bon", "rm"] + policyOptimizerStages where g.contains(section) {
            let sg = try g.group(section)
            out.formUnion(try sg.children().filter { sg.isGroup($0) })
        }
    }
    return out
}

/// The best-of-n and PPO panels of a run's root or a summary's group (those present).
func panels(_ g: H5Group, summary: Bool, suffix: String, options: FigureOptions = FigureOptions()) throws -> [PlotPanel] {
    var out: [PlotPanel] = []
    for (section, title) in [("bon", "Best-of-n")] + policyOptimizerStages.map({ ($0, $0.uppercased()) }) where g.contains(section) {
        let sg = try g.group(section)
        var series: [PlotSeries] = []
        let variants = try sg.children().filter { sg.isGroup($0) }
        for v in options.variants?.filter(variants.contains) ?? variants {
            let vg = try sg.group(v)
            let kl = try vg.readDoubles("kl").values
            for curve in ["gold", "proxy"] {
                var line: PlotSeries
                if summary {
                    guard let names = summaryCurveNames(vg, "\(curve)_shifted") else { continue }
                    line = PlotSeries(variant: v, curve: curve, x: kl, y: try vg.readDoubles(names.mean).values,
                                      band: try vg.readDoubles(names.sem).values)
                } else {
                    guard vg.contains(curve) else { continue }
                    let raw = try vg.readDoubles(curve).values
                    // The initial policy: n = 1 (the first grid point) or step 0.
                    var start = 0
                    if section != "bon", vg.contains("step") { start = try vg.readInt64s("step").values.firstIndex(of: 0) ?? 0 }
                    guard start < raw.count else { continue }
                    line = PlotSeries(variant: v, curve: curve, x: kl, y: raw.map { $0 - raw[start] })
                }
                if options.fits { series.append(fitSeries(line, form: section == "bon" ? .bestOfN : .rl)) }
                series.append(line)
            }
        }
        if options.sqrtKL {
            series = series.map { var s = $0; s.x = s.x.map { $0 > 0 ? $0.squareRoot() : 0 }; return s }
        }
        if !series.isEmpty {
            out.append(PlotPanel(title: title + suffix, series: series,
                                 xLabel: options.sqrtKL ? "√KL (√nats)" : "KL (nats)"))
        }
    }
    return out
}

/// Gao et al.'s fit of `line` (`fitGao` on its points), drawn on 60 points from 0 to its last KL.
func fitSeries(_ line: PlotSeries, form: GaoForm) -> PlotSeries {
    let fit = fitGao(form, kl: line.x, y: line.y)
    let top = line.x.filter(\.isFinite).max() ?? 0
    let xs = (0...60).map { top * Double($0) / 60 }
    let ys = xs.map { form.value(d: $0.squareRoot(), alpha: fit.alpha, beta: fit.beta) }
    return PlotSeries(variant: line.variant, curve: "\(line.curve)_fit", x: xs, y: ys)
}

// MARK: - Groups and accuracy figures

/// A config JSON as dotted keys → value text for labels ("data.label_noise" → "0.25",
/// "rm.base" → "xl", "proxies" → "[bt, grm-sft]": `flatConfigJSON` without quotes).
func flatConfig(_ json: String) -> [String: String] {
    flatConfigJSON(json).mapValues { v in
        v.hasPrefix("[") ? v.replacingOccurrences(of: "\"", with: "").replacingOccurrences(of: ",", with: ", ")
            : v.count >= 2 && v.hasPrefix("\"") && v.hasSuffix("\"") ? String(v.dropFirst().dropLast()) : v
    }
}

/// The config keys (dotted, sorted) whose values differ between `configs`, other than seed.
/// A variant's resolved settings (`variants.…`) follow from the run's keys (`rm.base` sets
/// every `variants.<name>.base`), so they count only when nothing else differs.
public func differingConfigKeys(_ configs: [String]) -> [String] { differingKeys(configs.map(flatConfig)) }

/// `differingConfigKeys` of configs already flattened by `flatConfig`.
func differingKeys(_ flat: [[String: String]]) -> [String] {
    let keys = Set(flat.flatMap(\.keys)).subtracting(["seed"])
    let differing = keys.filter { k in Set(flat.map { $0[k] ?? "–" }).count > 1 }.sorted()
    let ownKeys = differing.filter { !$0.hasPrefix("variants.") }
    return ownKeys.isEmpty ? differing : ownKeys
}

/// The order in which a summary's groups are drawn: by the values of the keys that differ,
/// first key first — numerically where every value is a number, along the preset ladder
/// (tiny … xl) where every value is a preset, else as text.
public func naturalGroupOrder(configs: [String]) -> [Int] {
    let flat = configs.map(flatConfig)
    let keys = differingKeys(flat)
    func rank(_ key: String) -> (Int, Int) -> Bool {
        let values = flat.map { $0[key] ?? "" }
        if values.allSatisfy({ Double($0) != nil }) { return { Double(values[$0])! < Double(values[$1])! } }
        let ladder = TransformerConfig.presetNames
        if values.allSatisfy(ladder.contains) { return { ladder.firstIndex(of: values[$0])! < ladder.firstIndex(of: values[$1])! } }
        return { values[$0] < values[$1] }
    }
    let before = keys.map(rank)
    let equal = keys.map { k in { (a: Int, b: Int) in flat[a][k] == flat[b][k] } }
    return configs.indices.sorted { a, b in
        for (less, same) in zip(before, equal) where !same(a, b) { return less(a, b) }
        return a < b
    }
}

/// A readable label per group: the differing config keys with their values
/// ("label_noise = 0.25"; the last part of the key unless two keys share it or it names a
/// section), else `names`
/// (the groups' run names, without the config hash).
public func groupLabels(names: [String], configs: [String]) -> [String] {
    let flat = configs.map(flatConfig)
    let keys = differingKeys(flat)
    guard !keys.isEmpty else { return names }
    // "rm.base" stays whole: "base" would read as the [base] section.
    let sections = Set(flat.flatMap { $0.keys.compactMap { k in k.contains(".") ? k.split(separator: ".").first.map(String.init) : nil } })
    let lasts = keys.map { String($0.split(separator: ".").last ?? Substring($0)) }
    let short = Set(lasts).count == lasts.count && sections.isDisjoint(with: lasts) ? lasts : keys
    return flat.map { f in zip(keys, short).map { "\($1) = \(f[$0] ?? "–")" }.joined(separator: ", ") }
}

/// Fig. 1 style: each reward model's ID (solid) and mean OOD (dashed) accuracy, mean ± sem
/// over seeds, against the one numeric config key that differs between the groups.
func accuracyFigure(_ groups: H5Group, names: [String], configs: [String], options: FigureOptions,
                    fileName: String) throws -> Figure {
    let flat = configs.map(flatConfig)
    let keys = differingKeys(flat)
    guard let key = keys.first(where: { k in flat.allSatisfy { Double($0[k] ?? "") != nil } }), keys.count == 1 else {
        throw PlotError("\(fileName): no best-of-n or PPO curves, and its groups do not differ in exactly one numeric config key (they differ in: \(keys.isEmpty ? "nothing" : keys.joined(separator: ", "))) to plot accuracy against")
    }
    var points: [String: [(x: Double, curve: String, mean: Double, sem: Double)]] = [:]
    for (g, config) in zip(names, flat) {
        let group = try groups.group(g)
        guard group.contains("rm"), let x = Double(config[key] ?? "") else { continue }
        let rm = try group.group("rm")
        for v in try rm.children() where rm.isGroup(v) && (options.variants?.contains(v) ?? true) {
            let vg = try rm.group(v)
            for (curve, scalar) in [("id", "id_accuracy"), ("ood", "ood_accuracy_mean")] {
                guard let names = summaryCurveNames(vg, scalar) else { continue }
                points[v, default: []].append((x, curve, try vg.readDoubles(names.mean).values[0],
                                               try vg.readDoubles(names.sem).values[0]))
            }
        }
    }
    let order = options.variants ?? points.keys.sorted()
    var series: [PlotSeries] = []
    for v in order {
        for curve in ["id", "ood"] {
            let p = (points[v] ?? []).filter { $0.curve == curve }.sorted { $0.x < $1.x }
            if !p.isEmpty { series.append(PlotSeries(variant: v, curve: curve, x: p.map(\.x), y: p.map(\.mean), band: p.map(\.sem))) }
        }
    }
    guard !series.isEmpty else { throw PlotError("\(fileName): no best-of-n, PPO or reward-model results") }
    let panel = PlotPanel(title: "Reward-model accuracy vs \(key)", series: series, xLabel: key,
                          yLabel: "accuracy against gold labels", includesZero: false)
    return Figure(title: "\(fileName): mean ± sem across seeds", rows: [[panel]])
}

/// Gao et al.'s scaling figure from a summary's `/scaling`: a row per stage (best-of-n,
/// PPO), panels for α and β of the gold fit against the swept key — log₁₀ of the proxies'
/// parameters for rm.base, log₁₀ of the value for data.train_pairs, the value otherwise —
/// each with its 95% bootstrap interval over seeds (thin dashed lines).
func scalingFigure(_ g: H5Group, options: FigureOptions, fileName: String) throws -> Figure {
    let key = try g.stringAttribute("key")
    let logX = key == "rm.base" || key == "data.train_pairs"
    let xLabel = key == "rm.base" ? "log₁₀ reward-model parameters" : logX ? "log₁₀ \(key)" : key
    var rows: [[PlotPanel]] = []
    for (stage, title) in [("bon", "best-of-n"), ("ppo", "PPO")] where g.contains(stage) {
        let sg = try g.group(stage)
        var alpha: [PlotSeries] = [], beta: [PlotSeries] = []
        let variants = try sg.children().filter { sg.isGroup($0) }
        for v in options.variants ?? variants.sorted() where variants.contains(v) {
            let vg = try sg.group(v)
            guard vg.contains("gold_alpha") else { continue }
            let x = try vg.readDoubles("x").values.map { logX ? log10($0) : $0 }
            for (coefficient, out) in [("alpha", 0), ("beta", 1)] {
                let series = [PlotSeries(variant: v, curve: "gold", x: x, y: try vg.readDoubles("gold_\(coefficient)").values),
                              PlotSeries(variant: v, curve: "interval", x: x, y: try vg.readDoubles("gold_\(coefficient)_low").values),
                              PlotSeries(variant: v, curve: "interval", x: x, y: try vg.readDoubles("gold_\(coefficient)_high").values)]
                if out == 0 { alpha += series } else { beta += series }
            }
        }
        guard !alpha.isEmpty else { continue }
        rows.append([PlotPanel(title: "\(title): gold α", series: alpha, xLabel: xLabel, yLabel: "α", includesZero: false),
                     PlotPanel(title: "\(title): gold β", series: beta, xLabel: xLabel, yLabel: "β", includesZero: false)])
    }
    guard !rows.isEmpty else { throw PlotError("\(fileName): /scaling has no gold fits") }
    return Figure(title: "\(fileName): Gao et al.'s coefficients vs \(key) (95% bootstrap intervals over seeds)", rows: rows)
}

/// The datasets of a summary curve's mean and sem over seeds: `<c>` and `<c>_sem_over_seeds`
/// (schema 2) or `<c>_mean` and `<c>_sem` (schema 1); nil when the curve is missing.
func summaryCurveNames(_ g: H5Group, _ curve: String) -> (mean: String, sem: String)? {
    if g.contains("\(curve)_sem_over_seeds"), g.contains(curve) { return (curve, "\(curve)_sem_over_seeds") }
    if g.contains("\(curve)_mean"), g.contains("\(curve)_sem") { return ("\(curve)_mean", "\(curve)_sem") }
    return nil
}

// MARK: - Drawing

/// Colours of the variants, in order (Tableau 10).
let plotPalette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

/// About `count` evenly spaced "nice" tick values covering [lo, hi]: multiples of the
/// smallest step of 1, 2 or 5 × 10^k that gives at most `count` + 1 intervals.
public func niceTicks(lo: Double, hi: Double, count: Int = 5) -> [Double] {
    guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
    let mag = pow(10, floor(log10((hi - lo) / Double(max(1, count)))))
    let step = [1.0, 2, 5, 10, 20].map { $0 * mag }.first { (hi - lo) / $0 <= Double(count + 1) } ?? 20 * mag
    let first = Int((lo / step).rounded(.up)), last = Int((hi / step + 1e-9).rounded(.down))
    return first <= last ? (first...last).map { Double($0) * step } : [lo]
}

/// Tick label with as many decimals as the spacing needs.
func tickLabel(_ v: Double, step: Double) -> String {
    let decimals = max(0, min(6, Int(-floor(log10(step)))))
    return String(format: "%.\(decimals)f", v)
}

func xmlEscaped(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}

func f1(_ v: Double) -> String { String(format: "%.1f", v) }

/// The legend order of curve kinds.
func curveRank(_ curve: String) -> Int { ["gold": 0, "proxy": 1, "id": 2, "ood": 3][curve] ?? 4 }

/// How a curve kind is drawn and named in the legend: gold and ID accuracy solid, proxy and
/// OOD accuracy dashed, fits thin and dotted.
func lineStyle(_ curve: String) -> (dash: String, width: String, fit: Bool, label: String) {
    switch curve {
    case "proxy": return (#" stroke-dasharray="6 4""#, "2", false, "proxy")
    case "ood": return (#" stroke-dasharray="6 4""#, "2", false, "OOD accuracy")
    case "id": return ("", "2", false, "ID accuracy")
    case let c where c.hasSuffix("_fit"): return (#" stroke-dasharray="1.5 3""#, "1.5", true, "Gao et al. fit")
    case "interval": return (#" stroke-dasharray="4 3""#, "1", true, "95% bootstrap interval")
    default: return ("", "2", false, curve)
    }
}

/// The figure as a standalone SVG document: each curve is one `<path class="curve"
/// data-variant=… data-curve=gold|proxy>`, each band one `<path class="band" …>`.
public func renderSVG(_ fig: Figure) -> String {
    let panelW = 440.0, panelH = 320.0, left = 62.0, right = 16.0, top = 34.0, bottom = 48.0
    // The legend is wide enough for its longest label (12-px Helvetica: ≈ 7 px a character).
    let labels = fig.variants + fig.curves.map { lineStyle($0).label }
    let legendW = max(170.0, 46 + 7 * Double(labels.map(\.count).max() ?? 0)), titleH = 30.0
    let cols = Double(max(1, fig.rows.map(\.count).max() ?? 1))
    let width = cols * panelW + legendW, height = titleH + Double(max(1, fig.rows.count)) * panelH
    let variants = fig.variants
    func colour(_ v: String) -> String { plotPalette[(variants.firstIndex(of: v) ?? 0) % plotPalette.count] }

    var out = [
        #"<?xml version="1.0" encoding="UTF-8"?>"#,
        #"<svg xmlns="http://www.w3.org/2000/svg" width="\#(Int(width))" height="\#(Int(height))" viewBox="0 0 \#(Int(width)) \#(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">"#,
        #"<rect x="0" y="0" width="\#(Int(width))" height="\#(Int(height))" fill="white"/>"#,
        #"<text x="\#(f1(width / 2))" y="20" text-anchor="middle" font-size="14">\#(xmlEscaped(fig.title))</text>"#,
    ]
    for (r, row) in fig.rows.enumerated() {
        for (c, panel) in row.enumerated() {
            let x0 = Double(c) * panelW + left, y0 = titleH + Double(r) * panelH + top
            let w = panelW - left - right, h = panelH - top - bottom
            // Data range: every finite point and band edge, with 0 on both axes for Δ scores.
            var xs = panel.includesZero ? [0.0] : [], ys = panel.includesZero ? [0.0] : []
            for s in panel.series {
                for (i, (x, y)) in zip(s.x, s.y).enumerated() where x.isFinite && y.isFinite {
                    xs.append(x); ys.append(y)
                    if let b = s.band, i < b.count, b[i].isFinite { ys += [y - b[i], y + b[i]] }
                }
            }
            var (xlo, xhi) = (xs.min() ?? 0, xs.max() ?? 1), (ylo, yhi) = (ys.min() ?? 0, ys.max() ?? 1)
            if xhi <= xlo { xhi = xlo + 1 }
            if yhi <= ylo { yhi = ylo + 1; ylo -= 1 }
            let pad = 0.05 * (yhi - ylo)
            ylo -= pad; yhi += pad
            if !panel.includesZero { let xpad = 0.05 * (xhi - xlo); xlo -= xpad; xhi += xpad }
            func px(_ x: Double) -> Double { x0 + (x - xlo) / (xhi - xlo) * w }
            func py(_ y: Double) -> Double { y0 + h - (y - ylo) / (yhi - ylo) * h }

            out.append(#"<g class="panel">"#)
            out.append(#"<text x="\#(f1(x0 + w / 2))" y="\#(f1(y0 - 10))" text-anchor="middle" font-size="13">\#(xmlEscaped(panel.title))</text>"#)
            let xt = niceTicks(lo: xlo, hi: xhi), yt = niceTicks(lo: ylo, hi: yhi)
            let xs_ = xt.count > 1 ? xt[1] - xt[0] : 1, ys_ = yt.count > 1 ? yt[1] - yt[0] : 1
            for t in yt {
                out.append(#"<line x1="\#(f1(x0))" y1="\#(f1(py(t)))" x2="\#(f1(x0 + w))" y2="\#(f1(py(t)))" stroke="\#(t == 0 ? "#999" : "#e5e5e5")" stroke-width="1"/>"#)
                out.append(#"<text x="\#(f1(x0 - 6))" y="\#(f1(py(t) + 4))" text-anchor="end">\#(tickLabel(t, step: ys_))</text>"#)
            }
            for t in xt {
                out.append(#"<line x1="\#(f1(px(t)))" y1="\#(f1(y0 + h))" x2="\#(f1(px(t)))" y2="\#(f1(y0 + h + 5))" stroke="black"/>"#)
                out.append(#"<text x="\#(f1(px(t)))" y="\#(f1(y0 + h + 18))" text-anchor="middle">\#(tickLabel(t, step: xs_))</text>"#)
            }
            out.append(#"<rect x="\#(f1(x0))" y="\#(f1(y0))" width="\#(f1(w))" height="\#(f1(h))" fill="none" stroke="black"/>"#)
            out.append(#"<text x="\#(f1(x0 + w / 2))" y="\#(f1(y0 + h + 38))" text-anchor="middle">\#(xmlEscaped(panel.xLabel))</text>"#)
            out.append(#"<text x="\#(f1(x0 - 46))" y="\#(f1(y0 + h / 2))" text-anchor="middle" transform="rotate(-90 \#(f1(x0 - 46)) \#(f1(y0 + h / 2)))">\#(xmlEscaped(panel.yLabel))</text>"#)
            // Bands first, curves on top.
            for s in panel.series {
                guard let b = s.band else { continue }
                let idx = s.x.indices.filter { $0 < s.y.count && $0 < b.count && s.x[$0].isFinite && s.y[$0].isFinite && b[$0].isFinite }
                guard idx.count > 1 else { continue }
                let upper = idx.map { "\(f1(px(s.x[$0]))),\(f1(py(s.y[$0] + b[$0])))" }
                let lower = idx.reversed().map { "\(f1(px(s.x[$0]))),\(f1(py(s.y[$0] - b[$0])))" }
                out.append(#"<path class="band" data-variant="\#(xmlEscaped(s.variant))" data-curve="\#(s.curve)" d="M\#(upper.joined(separator: " L"))  L\#(lower.joined(separator: " L")) Z" fill="\#(colour(s.variant))" fill-opacity="0.15" stroke="none"/>"#)
            }
            for s in panel.series {
                var d = "", pen = false
                for (x, y) in zip(s.x, s.y) {
                    guard x.isFinite && y.isFinite else { pen = false; continue }
                    d += (pen ? " L" : (d.isEmpty ? "M" : " M")) + "\(f1(px(x))),\(f1(py(y)))"
                    pen = true
                }
                let style = lineStyle(s.curve)
                out.append(#"<path class="\#(style.fit ? "fit" : "curve")" data-variant="\#(xmlEscaped(s.variant))" data-curve="\#(s.curve)" d="\#(d)" fill="none" stroke="\#(colour(s.variant))" stroke-width="\#(style.width)"\#(style.dash)/>"#)
            }
            out.append("</g>")
        }
    }
    // Legend: a colour per variant, then the line styles.
    let lx = cols * panelW + 10
    var ly = titleH + top + 6
    out.append(#"<g class="legend">"#)
    for v in variants {
        out.append(#"<line x1="\#(f1(lx))" y1="\#(f1(ly))" x2="\#(f1(lx + 28))" y2="\#(f1(ly))" stroke="\#(colour(v))" stroke-width="3"/>"#)
        out.append(#"<text x="\#(f1(lx + 36))" y="\#(f1(ly + 4))">\#(xmlEscaped(v))</text>"#)
        ly += 20
    }
    ly += 8
    var drawn: Set<String> = []
    for curve in fig.curves {
        let style = lineStyle(curve)
        guard drawn.insert(style.label).inserted else { continue }
        out.append(#"<line x1="\#(f1(lx))" y1="\#(f1(ly))" x2="\#(f1(lx + 28))" y2="\#(f1(ly))" stroke="black" stroke-width="\#(style.width)"\#(style.dash)/>"#)
        out.append(#"<text x="\#(f1(lx + 36))" y="\#(f1(ly + 4))">\#(xmlEscaped(style.label))</text>"#)
        ly += 20
    }
    out.append("</g>")
    out.append("</svg>")
    return out.joined(separator: "\n") + "\n"
}
