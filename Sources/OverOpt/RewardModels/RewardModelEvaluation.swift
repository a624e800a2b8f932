// RewardModelEvaluation.swift — how good a proxy is: gold accuracy ID and OOD, the kept
// LM head's own preferences and likelihood, and reward statistics for normalization.
//
// Accuracy is always against GOLD, never against the (possibly noisy) labels: a pair
// counts as correct when the response with the higher gold score gets the strictly higher
// proxy score; pairs with equal gold are skipped. The LM metrics read the proxy's LM head
// (kept by every variant; trained only by GRM): its preference accuracy
// (log π(y_better|x) > log π(y_worse|x)) and its NLL per token on the better response —
// whether the regularizer kept the language model intact.

import OverOptEngine

/// Share of pairs whose gold-better response scores strictly higher; pairs with equal gold
/// are skipped (NaN if none remain). Scores are of each pair's `chosen` and `rejected`.
public func goldAccuracy(pairs: [PreferencePair], chosenScores: [Double], rejectedScores: [Double]) -> Double {
    precondition(pairs.count == chosenScores.count && pairs.count == rejectedScores.count, "one score per response")
    var correct = 0, counted = 0
    for (i, p) in pairs.enumerated() where p.chosenGold != p.rejectedGold {
        counted += 1
        let chosenIsBetter = p.chosenGold > p.rejectedGold
        if chosenIsBetter ? chosenScores[i] > rejectedScores[i] : rejectedScores[i] > chosenScores[i] { correct += 1 }
    }
    return counted == 0 ? .nan : Double(correct) / Double(counted)
}

/// Gold accuracy of a proxy (members combined) on `pairs`.
public func proxyGoldAccuracy(_ proxy: ProxyRewardModel, world: World, pairs: [PreferencePair], batchSize: Int = 256) -> Double {
    if pairs.isEmpty { return .nan }
    let scores = proxy.score(world: world, prompts: pairs.map(\.prompt) + pairs.map(\.prompt),
                             responses: pairs.map(\.chosen) + pairs.map(\.rejected), batchSize: batchSize)
    return goldAccuracy(pairs: pairs, chosenScores: Array(scores[..<pairs.count]), rejectedScores: Array(scores[pairs.count...]))
}

/// What a model's LM head thinks of a set of pairs.
public struct LanguageModelMetrics: Sendable, Equatable {
    /// Share of pairs (unequal gold) with log π(y_better|x) > log π(y_worse|x).
    public var preferenceAccuracy: Double
    /// −Σ log π(y_better|x) / Σ |y_better|: NLL per response token (EOS included).
    public var nllPerToken: Double
}

/// LM-head metrics of `model` on `pairs`.
public func languageModelMetrics(_ model: Transformer, world: World, pairs: [PreferencePair], batchSize: Int = 256) -> LanguageModelMetrics {
    if pairs.isEmpty { return LanguageModelMetrics(preferenceAccuracy: .nan, nllPerToken: .nan) }
    let enc = EncodedPairs(world: world, pairs: pairs)
    let lc = responseLogProbs(model, sequences: enc.chosen, responseStart: enc.responseStart, batchSize: batchSize)
    let lr = responseLogProbs(model, sequences: enc.rejected, responseStart: enc.responseStart, batchSize: batchSize)
    var nll = 0.0, tokens = 0
    for (i, p) in pairs.enumerated() {
        let chosenIsBetter = p.chosenGold >= p.rejectedGold
        nll -= chosenIsBetter ? lc[i] : lr[i]
        tokens += (chosenIsBetter ? enc.chosen[i].count : enc.rejected[i].count) - enc.responseStart[i]
    }
    return LanguageModelMetrics(preferenceAccuracy: goldAccuracy(pairs: pairs, chosenScores: lc, rejectedScores: lr),
                                nllPerToken: nll / Double(max(1, tokens)))
}

/// Mean and (population) standard deviation of the proxy's scores on responses — the
/// base-policy samples downstream stages normalize rewards with.
public func rewardStatistics(_ proxy: ProxyRewardModel, world: World, prompts: [Prompt], responses: [[Int32]],
                             batchSize: Int = 256) -> (mean: Double, std: Double) {
    let s = proxy.score(world: world, prompts: prompts, responses: responses, batchSize: batchSize)
    if s.isEmpty { return (.nan, .nan) }
    return Statistics.meanAndStandardDeviation(s)
}

extension RewardModelResult {
    /// Fills the evaluation fields of a freshly trained proxy: gold accuracy on the ID and
    /// OOD sets, its and the base model's LM metrics, and (given base-policy samples) its
    /// reward mean and std.
    mutating func evaluate(base: Transformer, world: World, data: PreferenceDataset,
                           normalizationSamples: (prompts: [Prompt], responses: [[Int32]])?) {
        let bs = config.evalBatchSize
        idAccuracy = proxyGoldAccuracy(proxy, world: world, pairs: data.idEval, batchSize: bs)
        oodAccuracy = data.oodEval.map { ($0.name, proxyGoldAccuracy(proxy, world: world, pairs: $0.pairs, batchSize: bs)) }
        oodAccuracyMean = Statistics.mean(oodAccuracy.map(\.accuracy).filter { !$0.isNaN })   // NaN without OOD sets
        // LM metrics: mean over members (an ensemble has k LM heads).
        let lm = proxy.members.map { languageModelMetrics($0, world: world, pairs: data.idEval, batchSize: bs) }
        lmPreferenceAccuracy = Statistics.mean(lm.map(\.preferenceAccuracy))
        lmNLL = Statistics.mean(lm.map(\.nllPerToken))
        let b = languageModelMetrics(base, world: world, pairs: data.idEval, batchSize: bs)
        baseLMPreferenceAccuracy = b.preferenceAccuracy
        baseLMNLL = b.nllPerToken
        if let n = normalizationSamples {
            (rewardMean, rewardStd) = rewardStatistics(proxy, world: world, prompts: n.prompts, responses: n.responses, batchSize: bs)
        }
    }
}
