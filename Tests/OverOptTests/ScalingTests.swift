// ScalingTests.swift — reward-model size apart from the policy (`rm.base`), the preset
// ladder, bootstrap intervals of Gao et al.'s coefficients and the scaling summary of
// `collect`, against hand-computed values.

import Foundation
import Testing
import OverOptEngine
import OverOptHDF5
@testable import OverOpt

@Test func presetLadderSpansThirtyTimesAndKeepsSmallAndLarge() {
    let vocab = testWorld.vocabSize
    let counts = TransformerConfig.presetNames.map { Transformer(config: TransformerConfig.preset($0, vocabSize: vocab)!).parameterCount }
    #expect(counts == counts.sorted() && Set(counts).count == counts.count, "\(counts)")
    #expect(Double(counts.last!) / Double(counts.first!) >= 30, "\(counts)")
    #expect(TransformerConfig.presetNames.allSatisfy { TransformerConfig.preset($0, vocabSize: vocab)!.contextLength == 64 })
    // The committed results were made with these two; they must not move.
    #expect(TransformerConfig.preset("small", vocabSize: vocab) == TransformerConfig(vocabSize: vocab, contextLength: 64, width: 64, layers: 2, heads: 2))
    #expect(TransformerConfig.preset("large", vocabSize: vocab) == TransformerConfig(vocabSize: vocab, contextLength: 64, width: 128, layers: 4, heads: 4))
}

@Test func rewardModelBaseIsAnOptionalKeyThatKeepsOldHashes() throws {
    // Unset, it is not encoded: configs without it keep their hashes and cache keys.
    #expect(try encodeTree(RewardModelConfig())["base"] == nil)
    let plain = try ExperimentConfig.load(path: nil)
    #expect(try (encodeTree(plain)["rm"] as? [String: Any])?["base"] == nil)
    let tiny = try ExperimentConfig.load(path: nil, overrides: ["rm.base=\"tiny\""])
    #expect(tiny.variants.values.allSatisfy { $0.base == "tiny" })
    #expect(tiny.hash != plain.hash)
    #expect(StageCache.key(tiny.variants["bt"]!) != StageCache.key(plain.variants["bt"]!))
    let xl = try ExperimentConfig.load(path: nil, overrides: ["rm.base=\"xl\""])
    #expect(StageCache.key(tiny.variants["bt"]!) != StageCache.key(xl.variants["bt"]!))
    // A variant of its own size.
    let v = try ExperimentConfig.load(path: nil, overrides: ["proxies=[\"bt\",\"bt-xl\"]", "variants.bt-xl.base=\"xl\""])
    #expect(v.variants["bt"]!.base == nil && v.variants["bt-xl"]!.base == "xl")
    // Unknown presets are refused naming the key.
    #expect { try ExperimentConfig.load(path: nil, overrides: ["rm.base=\"huge\""]) } throws: { e in
        "\(e)".contains("rm.base") && "\(e)".contains("\"medium\"")
    }
    #expect { try ExperimentConfig.load(path: nil, overrides: ["proxies=[\"b\"]", "variants.b.base=\"huge\""]) } throws: { e in
        "\(e)".contains("variants.b.base")
    }
}

/// Scores exactly d(α − βd) at the KLs of best-of-n with n = 1, 2, 4.
func bonCurve(alpha: Double, beta: Double) -> [Double] {
    [1.0, 2, 4].map { n in let d = (log(n) - (n - 1) / n).squareRoot(); return d * (alpha - beta * d) }
}

@Test func bootstrapIntervalsOfGaoCoefficientsMatchHandComputedValues() {
    let kl = [1.0, 2, 4].map { log($0) - ($0 - 1) / $0 }
    // Identical seeds: the interval collapses onto the fit.
    let same = bootstrapGaoFit(.bestOfN, kl: kl, perSeed: [bonCurve(alpha: 2, beta: 1), bonCurve(alpha: 2, beta: 1)])
    #expect(abs(same.fit.alpha - 2) < 1e-9 && abs(same.fit.beta - 1) < 1e-9 && abs(same.alphaLow - 2) < 1e-9 && abs(same.betaHigh - 1) < 1e-9)
    // Two seeds: the fit is linear in the scores, so a resample's α is α₁, (α₁+α₂)/2 or α₂
    // (probabilities ¼, ½, ¼): the 95% interval runs from the smaller to the larger.
    let two = bootstrapGaoFit(.bestOfN, kl: kl, perSeed: [bonCurve(alpha: 1, beta: 0.5), bonCurve(alpha: 3, beta: 0.1)])
    #expect(abs(two.fit.alpha - 2) < 1e-9 && abs(two.fit.beta - 0.3) < 1e-9)
    #expect(abs(two.alphaLow - 1) < 1e-9 && abs(two.alphaHigh - 3) < 1e-9)
    #expect(abs(two.betaLow - 0.1) < 1e-9 && abs(two.betaHigh - 0.5) < 1e-9)
    #expect(abs(two.fit.r2 - 1) < 1e-9 && two.seeds == 2)
    // Reproducible (fixed resampling seed); one seed has no interval.
    #expect(bootstrapGaoFit(.rl, kl: [0, 1, 2, 3], perSeed: [[0, 1, 1.5, 1.2], [0, 0.5, 1, 2], [0, 2, 1, 0]])
            == bootstrapGaoFit(.rl, kl: [0, 1, 2, 3], perSeed: [[0, 1, 1.5, 1.2], [0, 0.5, 1, 2], [0, 2, 1, 0]]))
    #expect(bootstrapGaoFit(.bestOfN, kl: kl, perSeed: [bonCurve(alpha: 1, beta: 1)]).alphaLow.isNaN)
}

@Test func singleDifferingKeyFindsTheSweptKey() {
    #expect(singleDifferingKey([#"{"data": {"train_pairs": 1000}, "ppo": {"kl_coef": 0}}"#,
                                #"{"data": {"train_pairs": 4000}, "ppo": {"kl_coef": 0}}"#]) == "data.train_pairs")
    // rm.base moves the variants' settings too; an unset key counts as a value.
    #expect(singleDifferingKey([#"{"rm": {"alpha": 0.01}, "variants": {"bt": {"alpha": 0.01}}}"#,
                                #"{"rm": {"alpha": 0.01, "base": "tiny"}, "variants": {"bt": {"alpha": 0.01, "base": "tiny"}}}"#]) == "rm.base")
    #expect(singleDifferingKey([#"{"a": 1, "b": 1}"#, #"{"a": 2, "b": 2}"#]) == nil)
    #expect(singleDifferingKey([#"{"a": 1}"#]) == nil)
    #expect(configValue(#"{"ppo": {"kl_coef": 0.05}}"#, key: "ppo.kl_coef")?.number == 0.05)
    #expect(configValue(#"{"rm": {"base": "xl"}}"#, key: "rm.base")?.text == "xl")
    #expect(configValue(#"{"rm": {}}"#, key: "rm.base") == nil)
}

@Test func collectWritesTheScalingSummaryAcrossGroups() throws {
    let dir = try temporaryFolder("scaling")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // label_noise 0.25 (α 1 and 3, β 0.5 and 0.1) and 0 (α 4 and 6, β 0.2 and 0.2).
    try writeToyRun("\(dir)/a0.h5", seed: 0, noise: 0.25, goldAtN: bonCurve(alpha: 1, beta: 0.5))
    try writeToyRun("\(dir)/a1.h5", seed: 1, noise: 0.25, goldAtN: bonCurve(alpha: 3, beta: 0.1))
    try writeToyRun("\(dir)/b0.h5", seed: 0, noise: 0, goldAtN: bonCurve(alpha: 4, beta: 0.2))
    try writeToyRun("\(dir)/b1.h5", seed: 1, noise: 0, goldAtN: bonCurve(alpha: 6, beta: 0.2))
    let report = try collectResults(directory: dir, outputPath: "\(dir)/summary.h5", klPoints: 3)
    #expect(report.scalingKey == "data.label_noise")
    #expect(report.scalingLines.contains { $0.contains("bon/bt gold") })
    let f = try H5File.open("\(dir)/summary.h5")
    defer { f.close() }
    let s = try f.root.group("scaling")
    #expect(try s.stringAttribute("key") == "data.label_noise")
    let g = try s.group("bon/bt")
    #expect(try g.readDoubles("x").values == [0, 0.25])   // sorted by the key's value
    #expect(try g.readStrings("value") == ["0", "0.25"])
    let close = { (a: [Double], b: [Double]) in zip(a, b).allSatisfy { abs($0 - $1) < 1e-9 } }
    #expect(close(try g.readDoubles("gold_alpha").values, [5, 2]))
    #expect(close(try g.readDoubles("gold_alpha_low").values, [4, 1]))
    #expect(close(try g.readDoubles("gold_alpha_high").values, [6, 3]))
    #expect(close(try g.readDoubles("gold_beta").values, [0.2, 0.3]))
    #expect(close(try g.readDoubles("gold_beta_low").values, [0.2, 0.1]))
    #expect(try g.readInt64s("seeds").values == [2, 2])
    #expect(try g.stringAttribute("units", on: "gold_alpha") == "reward")
    // The scaling figure: α and β panels per stage, the fit and its two interval lines per variant.
    let fig = try figure(file: "\(dir)/summary.h5", options: FigureOptions(scaling: true))
    #expect(fig.rows.count == 2 && fig.rows.allSatisfy { $0.count == 2 })
    #expect(fig.rows[0][0].series.map(\.curve) == ["gold", "interval", "interval"])
    #expect(fig.rows[0][1].series[0].y.enumerated().allSatisfy { abs($1 - [0.2, 0.3][$0]) < 1e-9 })
    #expect(renderSVG(fig).contains("95% bootstrap interval"))
    // Per group, the same interval beside the fit.
    let name = try f.root.group("groups").children().sorted()[0]
    #expect(try f.root.group("groups/\(name)/bon/bt").hasAttribute("gold_alpha_low"))
}
