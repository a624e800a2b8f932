// Report.swift — `overopt report`: one self-contained HTML page for a folder of run files
// (a sweep or an experiment over seeds).
//
// The page holds, in order: the mean figure of every group (the folder collected into a
// temporary summary, drawn as `overopt plot` draws it, with Gao et al.'s fits), the paired
// comparison of every variant with the baseline (`compareRuns`), one small figure per seed
// so that a seed lottery is visible, and a few sample texts of each policy optimizer (PPO,
// GRPO, RLOO, DPO) per variant at the first and the last evaluation (lowest and highest KL)
// with their gold and proxy scores. The comparison shows best-of-n gold at n = 4, 16, 64, …
// and the largest n. Figures are
// inline SVG; the page needs no other file and no script.
import Foundation
import OverOptEngine
import OverOptHDF5

/// What a report shows besides the figures.
public struct ReportOptions: Sendable {
    public var baseline: String
    public var klPoints: [Double]
    /// Sample texts per variant at each end of the PPO run.
    public var samplesPerEnd: Int
    public var title: String?
    public init(baseline: String = "bt", klPoints: [Double] = [1, 2, 5, 10], samplesPerEnd: Int = 3, title: String? = nil) {
        self.baseline = baseline
        self.klPoints = klPoints
        self.samplesPerEnd = samplesPerEnd
        self.title = title
    }
}

/// A PPO sample text with its scores, at one evaluation.
public struct ReportSample: Sendable, Equatable {
    public var variant: String
    public var kl: Double
    public var text: String
    public var gold: Double?
    public var proxy: Double?
}

/// The sample texts of a run file's policy optimizers (PPO, GRPO, RLOO, DPO) at their first
/// and last evaluation, `perEnd` of each, per optimizer and variant (scores from
/// `sample_gold`/`sample_proxy` where the file has them).
public func reportSamples(path: String, perEnd: Int) throws -> [ReportSample] {
    let file = try H5File.open(path)
    defer { file.close() }
    var out: [ReportSample] = []
    for stage in policyOptimizerStages where file.root.contains(stage) {
        let section = try file.root.group(stage)
        for v in try section.children() where section.isGroup(v) {
            let g = try section.group(v)
            guard g.contains("sample_step"), g.contains("sample_text"), g.contains("step"), g.contains("kl") else { continue }
            let steps = try g.readInt64s("sample_step").values, texts = try g.readStrings("sample_text")
            let evalSteps = try g.readInt64s("step").values, kl = try g.readDoubles("kl").values
            guard steps.count == texts.count, evalSteps.count == kl.count, let first = steps.min(), let last = steps.max() else { continue }
            let gold = g.contains("sample_gold") ? try g.readDoubles("sample_gold").values : nil
            let proxy = g.contains("sample_proxy") ? try g.readDoubles("sample_proxy").values : nil
            let label = stage == "ppo" ? v : "\(stage) \(v)"
            for step in Set([first, last]).sorted() {
                let klAt = evalSteps.firstIndex(of: step).map { kl[$0] } ?? .nan
                for i in steps.indices.filter({ steps[$0] == step }).prefix(perEnd) {
                    out.append(ReportSample(variant: label, kl: klAt, text: texts[i],
                                            gold: gold.flatMap { $0.count == texts.count ? $0[i] : nil },
                                            proxy: proxy.flatMap { $0.count == texts.count ? $0[i] : nil }))
                }
            }
        }
    }
    return out
}

/// The report page for the run files directly in `directory`.
public func renderReport(directory: String, options: ReportOptions = ReportOptions()) throws -> String {
    let (runs, skipped) = try readComparedRuns([directory])
    let title = options.title ?? "OverOpt report: \((directory as NSString).lastPathComponent)"
    var html = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
                "<title>\(escapeHTML(title))</title>", "<style>\(reportStyle)</style></head><body>",
                "<h1>\(escapeHTML(title))</h1>",
                "<p>\(runs.count) run file(s) in \(escapeHTML(directory))" + (skipped.isEmpty ? "" : ", \(skipped.count) skipped")
                    + "; written by overopt \(overOptVersion).</p>"]

    // Mean figures: the runs summarized into a temporary file.
    html.append("<h2>Gold and proxy against KL, mean over seeds</h2>")
    let scratch = NSTemporaryDirectory() + "overopt-report-\(getpid())-\(UInt64(monotonicSeconds() * 1e6)).h5"
    defer { unlink(scratch) }
    _ = try writeSummary(of: runs, source: directory, outputPath: scratch)
    let mean = try figure(file: scratch, options: FigureOptions(fits: true, title: "mean ± sem over seeds"))
    html.append(mean.rows.isEmpty ? "<p>No best-of-n or PPO curves.</p>" : inlineSVG(renderSVG(mean)))

    // Paired comparisons.
    html.append("<h2>Each variant against \(escapeHTML(options.baseline)), paired by seed</h2>")
    do {
        let groups = try compareRuns(runs, options: CompareOptions(baseline: options.baseline, klPoints: options.klPoints))
        for var g in groups {
            // Best-of-n gold at n = 4, 16, 64, … and the largest n keeps the table readable.
            let ns = g.rows.compactMap { r in r.metric.hasPrefix("bon/gold@n=") ? Int64(r.metric.dropFirst("bon/gold@n=".count)) : nil }
            let largest = ns.max() ?? 0
            g.rows = g.rows.filter { r in
                guard r.metric.hasPrefix("bon/gold@n="), let n = Int64(r.metric.dropFirst("bon/gold@n=".count)) else { return true }
                return n == largest || (n.nonzeroBitCount == 1 && n.trailingZeroBitCount % 2 == 0)
            }
            html.append(comparisonHTML(g))
        }
        html.append("<p class=\"note\">Δ = variant − baseline per seed; intervals at 95%; p: two-sided sign-flip "
                    + "permutation test over seeds (exact), Holm-corrected over the variants on each metric. "
                    + "With n seeds the smallest possible p is 2/2ⁿ.</p>")
    } catch let e as CollectError {
        html.append("<p>No comparison: \(escapeHTML(e.description)).</p>")
    }

    // One small figure per seed.
    html.append("<h2>Every seed</h2><div class=\"seeds\">")
    for run in runs.sorted(by: { ($0.groupName, $0.seed) < ($1.groupName, $1.seed) }) {
        let fig = try figure(file: run.path, options: FigureOptions(title: "\(run.groupName), seed \(run.seed)"))
        if !fig.rows.isEmpty { html.append("<div class=\"seed\">\(inlineSVG(renderSVG(fig)))</div>") }
    }
    html.append("</div>")

    // Sample texts.
    html.append("<h2>What the optimized policies wrote, at the lowest and the highest KL</h2>")
    for run in runs.sorted(by: { ($0.groupName, $0.seed) < ($1.groupName, $1.seed) }) {
        let samples = try reportSamples(path: run.path, perEnd: options.samplesPerEnd)
        guard !samples.isEmpty else { continue }
        html.append("<h3>\(escapeHTML(run.groupName)), seed \(run.seed)</h3><table><tr><th>optimizer · variant</th><th>KL</th>"
                    + "<th>gold</th><th>proxy</th><th>prompt → response</th></tr>")
        for s in samples {
            let number = { (x: Double?) in x.map { String(format: "%+.2f", $0) } ?? "–" }
            html.append("<tr><td>\(escapeHTML(s.variant))</td><td>\(String(format: "%.2f", s.kl))</td><td>\(number(s.gold))</td>"
                        + "<td>\(number(s.proxy))</td><td class=\"text\">\(escapeHTML(s.text))</td></tr>")
        }
        html.append("</table>")
    }
    html.append("</body></html>")
    return html.joined(separator: "\n") + "\n"
}

/// One group's comparison as an HTML table; rows whose interval excludes zero are marked.
func comparisonHTML(_ g: GroupComparison) -> String {
    var rows = ["<h3>\(escapeHTML(g.group)) — seeds \(g.seeds.map(String.init).joined(separator: ", "))</h3>",
                "<table><tr><th>metric</th><th>variant</th><th>Δ mean</th><th>95% t interval</th><th>95% bootstrap</th>"
                    + "<th>wins</th><th>p</th><th>p (Holm)</th></tr>"]
    let f = { (x: Double) in x.isNaN ? "–" : String(format: "%+.3f", x) }
    let p = { (x: Double) in x.isNaN ? "–" : String(format: "%.3f", x) }
    for r in g.rows {
        if let d = r.difference {
            rows.append("<tr\(d.decided ? " class=\"decided\"" : "")><td>\(escapeHTML(r.metric))</td><td>\(escapeHTML(r.variant))</td>"
                        + "<td>\(f(d.mean))</td><td>[\(f(d.tLow)), \(f(d.tHigh))]</td><td>[\(f(d.bootstrapLow)), \(f(d.bootstrapHigh))]</td>"
                        + "<td>\(d.wins)/\(d.seeds)</td><td>\(p(d.pValue))</td><td>\(p(d.pHolm))</td></tr>")
        } else {
            rows.append("<tr><td>\(escapeHTML(r.metric))</td><td>\(escapeHTML(r.variant))</td><td colspan=\"6\">\(escapeHTML(r.note ?? ""))</td></tr>")
        }
    }
    return rows.joined(separator: "\n") + "\n</table>"
}

/// An SVG document without its XML declaration, for inlining in HTML.
func inlineSVG(_ svg: String) -> String {
    guard svg.hasPrefix("<?xml"), let end = svg.range(of: "?>") else { return svg }
    return String(svg[end.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Text with &, <, > and " escaped for HTML.
public func escapeHTML(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}

private let reportStyle = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1em; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
td:first-child, td:nth-child(2), td.text, th { text-align: left; }
td.text { font-family: monospace; max-width: 60em; }
tr.decided td { background: #eef6ee; }
.seeds { display: flex; flex-wrap: wrap; gap: 8px; } .seed svg { width: 460px; height: auto; }
.note { font-size: 0.85em; color: #555; }
svg { max-width: 100%; height: auto; }
"""
