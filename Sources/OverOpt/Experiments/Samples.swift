// Samples.swift — the readable listing of the texts a run records (`overopt inspect FILE
// --samples`): best-of-n picks (BestOfN/BestOfNPicks.swift: the response the proxy selects
// among the first n samples of a prompt, at several n) and the policy optimizers'
// evaluation samples, /<optimizer>/<variant>/sample_step (int64) and sample_text
// ("prompt → response").
import Foundation
import OverOptEngine
import OverOptHDF5

/// The recorded sample texts of a run file as readable lines, grouped by variant, then by
/// prompt and n (best-of-n) or by step (PPO). `variant` restricts to one proxy.
public func describeSamples(file path: String, variant: String? = nil) throws -> String {
    let f = try H5File.open(path)
    defer { f.close() }
    let root = f.root
    var lines: [String] = []
    var found = false
    func variants(_ section: String) throws -> [String] {
        guard root.contains(section) else { return [] }
        let g = try root.group(section)
        return try g.children().filter { g.isGroup($0) && (variant == nil || $0 == variant) }
    }
    for v in try variants("bon") {
        let g = try root.group("bon/\(v)")
        guard g.contains("picks") else { continue }
        found = true
        let p = try BestOfNPicks.read(from: try g.group("picks"))
        lines.append("best-of-n · \(v): the response the proxy picks among the first n samples")
        var lastPrompt: Int64 = -1
        for i in p.n.indices {
            if p.promptID[i] != lastPrompt {
                lines.append("  prompt \(p.promptID[i]): \(p.prompt[i])")
                lastPrompt = p.promptID[i]
            }
            let parts = zip(GoldScore.componentNames, p.goldComponents.map { $0[i] })
                .map { String(format: "%@ %+.2f", $0, $1) }.joined(separator: ", ")
            lines.append(String(format: "    n=%-4d proxy %+.3f  gold %+.3f (%@)", Int(p.n[i]), p.proxy[i], p.gold[i], parts))
            lines.append("           → " + (p.response[i].isEmpty ? "(empty response)" : p.response[i]))
        }
    }
    for stage in policyOptimizerStages {
        for v in try variants(stage) {
            let g = try root.group("\(stage)/\(v)")
            guard g.contains("sample_text") else { continue }
            let steps = try g.readInt64s("sample_step").values
            let texts = try g.readStrings("sample_text")
            guard !texts.isEmpty else { continue }
            guard steps.count == texts.count else {
                throw ExperimentError("\(g.path): sample_step has \(steps.count) entries and sample_text \(texts.count); the file is damaged")
            }
            found = true
            // Gold and proxy are recorded per evaluation (means over the held-out prompts).
            let evalSteps = g.contains("step") ? try g.readInt64s("step").values : []
            let gold = g.contains("gold") ? try g.readDoubles("gold").values : []
            let proxy = g.contains("proxy") ? try g.readDoubles("proxy").values : []
            let kl = g.contains("kl") ? try g.readDoubles("kl").values : []
            lines.append("\(stage.uppercased()) · \(v): evaluation samples by step")
            var last: Int64 = -1
            for (s, t) in zip(steps, texts) {
                if s != last {
                    var head = "  step \(s)"
                    if let e = evalSteps.firstIndex(of: s), e < gold.count, e < proxy.count, e < kl.count {
                        head += String(format: " (mean over evaluation prompts: KL %.2f, proxy %+.3f, gold %+.3f)", kl[e], proxy[e], gold[e])
                    }
                    lines.append(head)
                    last = s
                }
                lines.append("    \(t)")
            }
        }
    }
    if !found {
        lines.append(variant.map { "no recorded samples for variant '\($0)' in \(path)" } ?? "no recorded samples in \(path)")
    }
    return lines.joined(separator: "\n")
}
