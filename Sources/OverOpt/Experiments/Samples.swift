// Samples.swift — the texts a run records so a user can read what the policy learned to
// exploit: best-of-n picks (the response the proxy selects among the first n samples of a
// prompt, at several n) and PPO's evaluation samples; and their readable listing
// (`overopt inspect FILE --samples`).
//
// Best-of-n picks are written by the best-of-n stage under /bon/<variant>/picks/:
//   n (int64), prompt_id (int64, index into World.allPrompts), prompt, response (string),
//   proxy, gold, gold_<component> (float64) — one entry per (prompt, n), prompt-major.
// PPO samples are /ppo/<variant>/sample_step (int64) and sample_text ("prompt → response").
import Foundation
import OverOptEngine
import OverOptHDF5

/// The responses a proxy selects by best-of-n for a few prompts at a few n.
public struct BestOfNPicks: Sendable, Equatable {
    public var n: [Int64] = []
    public var promptID: [Int64] = []
    public var prompt: [String] = []
    public var response: [String] = []
    public var proxy: [Double] = []
    public var gold: [Double] = []
    /// [component][pick], `GoldScore.componentNames` order.
    public var goldComponents: [[Double]] = []

    public init() {}

    /// For the first `prompts` evaluation prompts and each n in `ns` (those ≤ N), the sample
    /// with the highest proxy score among the prompt's first n samples (the first of ties) —
    /// one draw of best-of-n, as an example of what the estimator averages over.
    public init(proxyScores: [Double], samples: BestOfNSamples, world: World, prompts: Int = 4,
                ns: [Int] = [1, 4, 16, 64]) {
        let N = samples.samplesPerPrompt
        let grid = Array(Set(ns.filter { $0 <= N } + [N])).sorted()
        goldComponents = [[Double]](repeating: [], count: samples.goldComponents.count)
        for p in 0..<min(prompts, samples.promptCount) {
            let r = samples.range(ofPrompt: p)
            let prompt = world.allPrompts[samples.promptIDs[p]]
            for m in grid {
                let j = (r.lowerBound..<(r.lowerBound + m)).max { proxyScores[$0] < proxyScores[$1] || (proxyScores[$0] == proxyScores[$1] && $0 > $1) }!
                let y = samples.responses[j]
                let end = y.firstIndex(of: Tokenizer.eos) ?? y.count
                n.append(Int64(m)); promptID.append(Int64(prompt.id))
                self.prompt.append(prompt.text); response.append(world.tokenizer.decode(y[..<end]))
                proxy.append(proxyScores[j]); gold.append(samples.gold[j])
                for k in goldComponents.indices { goldComponents[k].append(samples.goldComponents[k][j]) }
            }
        }
    }

    /// Writes the layout in the file header.
    public func write(to g: H5Group) throws {
        try g.write("n", n)
        try g.write("prompt_id", promptID)
        try g.write("prompt", strings: prompt)
        try g.write("response", strings: response)
        try g.write("proxy", proxy)
        try g.write("gold", gold)
        for (name, c) in zip(GoldScore.componentNames, goldComponents) { try g.write("gold_\(name)", c) }
    }

    /// Reads what `write(to:)` wrote.
    public static func read(from g: H5Group) throws -> BestOfNPicks {
        var p = BestOfNPicks()
        p.n = try g.readInt64s("n").values
        p.promptID = try g.readInt64s("prompt_id").values
        p.prompt = try g.readStrings("prompt")
        p.response = try g.readStrings("response")
        p.proxy = try g.readDoubles("proxy").values
        p.gold = try g.readDoubles("gold").values
        p.goldComponents = try GoldScore.componentNames.map { try g.readDoubles("gold_\($0)").values }
        // Every column has one entry per pick: check before anything indexes them.
        let counts = [p.promptID.count, p.prompt.count, p.response.count, p.proxy.count, p.gold.count] + p.goldComponents.map(\.count)
        guard counts.allSatisfy({ $0 == p.n.count }) else {
            throw ExperimentError("\(g.path): the picks' datasets have different lengths (n: \(p.n.count), others: "
                                  + "\(counts.map(String.init).joined(separator: ", "))); the file is damaged")
        }
        return p
    }
}

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
