// PreferencePair.swift — the preference data every proxy reward model trains on.
//
// A pair (x, y_c, y_r) is labelled by the gold reward: y_c is the response with the higher
// gold score, unless label noise swapped them (`flipped`). Gold scores are kept so that
// accuracy is always measured against gold and the `margin` objective can use the gap.

/// How a pair's two responses were produced.
public enum PairKind: String, Codable, Sendable, CaseIterable {
    /// Two samples of the base policy for the same prompt.
    case baseVsBase
    /// A base-policy sample against a perturbed copy of it (wrong tone, topic, length, fluency).
    case baseVsPerturbed
    /// Two responses of the high-variance OOD writer.
    case oodWriter
}

/// One labelled comparison.
public struct PreferencePair: Sendable {
    public let prompt: Prompt
    /// The response labelled as preferred (tokens, EOS included).
    public let chosen: [Int32]
    /// The response labelled as dispreferred.
    public let rejected: [Int32]
    public let chosenGold: Double
    public let rejectedGold: Double
    /// True when label noise swapped the gold order (then chosenGold < rejectedGold).
    public let flipped: Bool
    public let kind: PairKind

    public init(prompt: Prompt, chosen: [Int32], rejected: [Int32], chosenGold: Double, rejectedGold: Double,
                flipped: Bool, kind: PairKind) {
        self.prompt = prompt; self.chosen = chosen; self.rejected = rejected
        self.chosenGold = chosenGold; self.rejectedGold = rejectedGold; self.flipped = flipped; self.kind = kind
    }

    /// Gold difference of the labelled order, r*(y_c) − r*(y_r) (negative when flipped).
    public var goldMargin: Double { chosenGold - rejectedGold }

    /// Builds the pair labelled by gold from two responses; `flip` swaps the label (noise).
    /// Ties in gold keep `a` as chosen.
    public static func labelled(prompt: Prompt, a: [Int32], b: [Int32], goldA: Double, goldB: Double,
                                flip: Bool, kind: PairKind) -> PreferencePair {
        var aFirst = goldA >= goldB
        if flip { aFirst.toggle() }
        return aFirst
            ? PreferencePair(prompt: prompt, chosen: a, rejected: b, chosenGold: goldA, rejectedGold: goldB, flipped: flip, kind: kind)
            : PreferencePair(prompt: prompt, chosen: b, rejected: a, chosenGold: goldB, rejectedGold: goldA, flipped: flip, kind: kind)
    }
}

/// The preference data of one run: training pairs, an in-distribution evaluation set and
/// named out-of-distribution evaluation sets. Evaluation sets never carry label noise.
public struct PreferenceDataset: Sendable {
    public var train: [PreferencePair]
    public var idEval: [PreferencePair]
    /// e.g. "heldout_prompts" (prompt shift), "ood_writer" (response shift).
    public var oodEval: [(name: String, pairs: [PreferencePair])]

    public init(train: [PreferencePair], idEval: [PreferencePair], oodEval: [(name: String, pairs: [PreferencePair])]) {
        self.train = train; self.idEval = idEval; self.oodEval = oodEval
    }
}
