// BestOfNPicks.swift — the responses best-of-n selects, as readable examples: for a few
// prompts and several n, the sample the proxy picks among the prompt's first n samples.
//
// Written by the best-of-n stage under /bon/<variant>/picks/:
//   n (int64), prompt_id (int64, index into World.allPrompts), prompt, response (string),
//   proxy, gold, gold_<component> (float64) — one entry per (prompt, n), prompt-major.
// `overopt inspect FILE --samples` lists them (Experiments/Samples.swift).
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
