// WorldStatistics.swift — summary statistics of gold on a set of responses (a writer's or,
// later, the base policy's samples): moments of gold and its components, sentence-level
// error rates, and how strongly the cheap surface features correlate with gold (the
// hackability that a proxy can pick up). Also best-of-n by gold itself, an upper bound.

import Foundation
import OverOptEngine

/// Mean and standard deviation (population).
public struct Moments: Sendable, Hashable {
    public var mean: Double
    public var std: Double

    public init(_ xs: [Double]) {
        (mean, std) = xs.isEmpty ? (0, 0) : Statistics.meanAndStandardDeviation(xs)
    }
}

/// Pearson correlation of two equally long samples (0 if either is constant).
public func pearsonCorrelation(_ x: [Double], _ y: [Double]) -> Double {
    precondition(x.count == y.count, "pearsonCorrelation needs samples of equal length")
    let mx = Moments(x), my = Moments(y)
    guard mx.std > 0, my.std > 0 else { return 0 }
    let cov = zip(x, y).map { ($0 - mx.mean) * ($1 - my.mean) }.reduce(0, +) / Double(x.count)
    return cov / (mx.std * my.std)
}

/// Gold statistics of (prompt, response) samples.
public struct WorldStatistics: Sendable {
    public let count: Int
    public let gold: Moments
    /// Per `GoldScore.componentNames`.
    public let components: [Moments]
    public let words: Moments
    public let sentences: Moments
    /// Fractions of all sentences.
    public let offToneSentences: Double
    public let offTopicSentences: Double
    public let fluentSentences: Double
    /// Pearson correlation of each `SurfaceFeatures.names` feature with gold.
    public let featureCorrelations: [Double]

    public init(world: World, samples: [(prompt: Prompt, response: [Int32])]) {
        var totals: [Double] = [], comps: [[Double]] = Array(repeating: [], count: GoldScore.componentNames.count)
        var feats: [[Double]] = Array(repeating: [], count: SurfaceFeatures.names.count)
        var words: [Double] = [], sentences: [Double] = []
        var nSentences = 0, offTone = 0, offTopic = 0, fluent = 0
        for (p, y) in samples {
            let a = world.analyze(prompt: p, response: y)
            let g = GoldReward.goldReward(a, requestedSentences: p.requestedSentences, config: world.config.gold)
            totals.append(g.total)
            for (i, c) in g.components.enumerated() { comps[i].append(c) }
            for (i, f) in world.surfaceFeatures(prompt: p, response: y).values.enumerated() { feats[i].append(f) }
            words.append(Double(a.wordCount))
            sentences.append(Double(a.sentences.count))
            nSentences += a.sentences.count
            offTone += a.sentences.filter(\.isOffTone).count
            offTopic += a.sentences.filter(\.isOffTopic).count
            fluent += a.sentences.filter(\.parses).count
        }
        count = samples.count
        gold = Moments(totals)
        components = comps.map(Moments.init)
        self.words = Moments(words)
        self.sentences = Moments(sentences)
        let n = Double(max(nSentences, 1))
        offToneSentences = Double(offTone) / n
        offTopicSentences = Double(offTopic) / n
        fluentSentences = Double(fluent) / n
        featureCorrelations = feats.map { pearsonCorrelation($0, totals) }
    }

    /// Statistics of `count` responses of a writer on prompts drawn uniformly from `split`.
    public static func ofWriter(_ world: World, style: WriterStyle = .reference, count: Int = 5000,
                                split: PromptSplit = .all, seed: UInt64 = 0) -> WorldStatistics {
        var rng = RNG(seed: seed).split("statistics")
        let prompts = world.prompts(split)
        let samples = (0..<count).map { _ -> (prompt: Prompt, response: [Int32]) in
            let p = prompts[rng.int(below: prompts.count)]
            return (p, world.writeResponse(for: p, rng: &rng, style: style))
        }
        return WorldStatistics(world: world, samples: samples)
    }

    /// Mean over `promptCount` prompts of max gold among n writer samples (best-of-n by gold
    /// itself: the "oracle" that no proxy can beat), and the mean gold of a single sample.
    public static func bestOfNByGold(_ world: World, n: Int, promptCount: Int = 200, style: WriterStyle = .reference,
                                     split: PromptSplit = .all, seed: UInt64 = 0) -> (best: Double, single: Double) {
        var rng = RNG(seed: seed).split("best-of-n")
        let prompts = world.prompts(split)
        var best = 0.0, single = 0.0
        for _ in 0..<promptCount {
            let p = prompts[rng.int(below: prompts.count)]
            let golds = (0..<n).map { _ in world.gold(prompt: p, response: world.writeResponse(for: p, rng: &rng, style: style)).total }
            best += golds.max()!
            single += golds.reduce(0, +) / Double(n)
        }
        return (best / Double(promptCount), single / Double(promptCount))
    }

    /// A few lines for the CLI.
    public var summary: String {
        func f(_ m: Moments) -> String { String(format: "%.2f ± %.2f", m.mean, m.std) }
        var lines = ["\(count) samples: gold \(f(gold)), words \(f(words)), sentences \(f(sentences))"]
        lines.append("  components: " + zip(GoldScore.componentNames, components).map { "\($0) \(f($1))" }.joined(separator: ", "))
        lines.append(String(format: "  sentences: %.1f%% fluent, %.1f%% off tone, %.1f%% off topic",
                            100 * fluentSentences, 100 * offToneSentences, 100 * offTopicSentences))
        lines.append("  corr(feature, gold): " + zip(SurfaceFeatures.names, featureCorrelations)
            .map { "\($0) \(String(format: "%+.2f", $1))" }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }
}
