// GoldReward.swift — the gold reward r*(x, y): deterministic, prompt-dependent, and made of
// interpretable components that are logged separately.
//
//   r*(x, y) = w_rel · relevance                       Σ over sentences of the share of content
//                                                       words (nouns, verbs) from x's topic,
//                                                       / max(sentences, requested(x))
//            + w_tone · toneMatch                      tanh(match/τ) − tanh(mismatch/τ), where
//                                                       match = Σ strengths of adjectives in x's
//                                                       tone, mismatch = Σ in the other tone
//                                                       (×intensifierBoost after an intensifier)
//            + w_flu · fluency                         share of sentences Grammar.standard parses
//            − w_len · |sentences − requested(x)|       length shaping
//            − w_rep · repeats                          content words already used in the response
//
// Defaults (GoldConfig): w_rel 1, w_tone 3, τ 5, boost 1.5, w_flu 1.5, w_len 0.5, w_rep 0.15;
// range ≈ [−∞, 5.5]. A response is the tokens up to its first EOS; a sentence ends at "."
// and a trailing fragment without "." counts as a (non-parsing) sentence.
// Why it is hackable (see docs/world.md): tone words count wherever they stand — grammatical
// or not — but saturate (tanh) while repeats, disfluency and extra sentences cost linearly;
// on the writer's distribution more tone words, more topic words and more sentences go with
// higher gold, outside it they stop paying off or reverse.

import Foundation

/// Weights of the gold reward's components. Defaults: docs/world.md, "Gold reward".
public struct GoldConfig: ConfigSection, Hashable {
    public var relevanceWeight = 1.0
    public var toneWeight = 3.0
    /// τ: strength at which tone saturates (tanh(match/τ)); diminishing returns.
    public var toneScale = 5.0
    /// A tone adjective right after an intensifier counts this many times its strength.
    public var intensifierBoost = 1.5
    public var fluencyWeight = 1.5
    /// Per sentence too many or too few.
    public var lengthWeight = 0.5
    /// Per repeated content word.
    public var repetitionWeight = 0.15

    public init() {}

    public static let section = "world.gold"
    public static let jsonCamelCase = true

    public static var schema: [ConfigKey<GoldConfig>] { [
        .key("relevance_weight", \.relevanceWeight, "w_rel: weight of relevance"),
        .key("tone_weight", \.toneWeight, "w_tone: weight of the tone match"),
        .key("tone_scale", \.toneScale, "τ: strength at which tone saturates, tanh(match/τ)", .above(0)),
        .key("intensifier_boost", \.intensifierBoost, "a tone adjective right after an intensifier counts this many times its strength"),
        .key("fluency_weight", \.fluencyWeight, "w_flu: weight of the share of sentences that parse"),
        .key("length_weight", \.lengthWeight, "w_len: cost per sentence too many or too few"),
        .key("repetition_weight", \.repetitionWeight, "w_rep: cost per repeated content word"),
    ] }
}

/// The gold reward of one response and its weighted components (they sum to `total`).
public struct GoldScore: Sendable, Hashable {
    public var relevance: Double
    public var tone: Double
    public var fluency: Double
    /// ≤ 0.
    public var length: Double
    /// ≤ 0.
    public var repetition: Double

    public var total: Double { relevance + tone + fluency + length + repetition }

    /// Component names for logging, in the order of `components`.
    public static let componentNames = ["relevance", "tone", "fluency", "length", "repetition"]
    /// Weighted components in the order of `componentNames`.
    public var components: [Double] { [relevance, tone, fluency, length, repetition] }
}

extension GoldScore: CustomStringConvertible {
    /// "gold 3.21 = relevance +0.83 tone +2.10 fluency +1.50 length -0.50 repetition -0.15".
    public var description: String {
        let parts = zip(GoldScore.componentNames, components).map { "\($0) \(String(format: "%+.2f", $1))" }
        return "gold \(String(format: "%.2f", total)) = " + parts.joined(separator: " ")
    }
}

/// What the gold reward sees in one sentence.
public struct SentenceAnalysis: Sendable, Hashable {
    /// Token positions in the response.
    public let range: Range<Int>
    /// Parsed exactly by the true grammar.
    public let parses: Bool
    /// Nouns and verbs.
    public let contentWords: Int
    /// Nouns and verbs of the prompt's topic.
    public let onTopicWords: Int
    /// Tone adjectives in the prompt's tone / in the other tone.
    public let matchingToneWords: Int
    public let mismatchingToneWords: Int

    /// Share of the content words that belong to the prompt's topic (0 without content words).
    public var relevance: Double { contentWords > 0 ? Double(onTopicWords) / Double(contentWords) : 0 }
    public var isOffTone: Bool { mismatchingToneWords > 0 }
    public var isOffTopic: Bool { onTopicWords < contentWords }
}

/// The gold reward's reading of a response: sentences, tone strengths, repeats.
public struct ResponseAnalysis: Sendable, Hashable {
    public let sentences: [SentenceAnalysis]
    /// Σ strength of adjectives in the prompt's tone (with intensifier boost).
    public let matchStrength: Double
    /// Σ strength of adjectives in the other tone (with intensifier boost).
    public let mismatchStrength: Double
    /// Content words that already occurred earlier in the response.
    public let repeats: Int
    /// Words before EOS.
    public let wordCount: Int
}

/// The gold reward's pure functions, named after what they measure.
public enum GoldReward {
    /// Σ over sentences of the on-topic share of content words, divided by
    /// max(sentences, requested): on-topic sentences pay up to the requested number, and
    /// further ones do not; 0 for an empty response.
    public static func relevance(_ sentences: [SentenceAnalysis], requested: Int) -> Double {
        let denominator = max(sentences.count, requested, 1)
        return sentences.map(\.relevance).reduce(0, +) / Double(denominator)
    }

    /// tanh(match/τ) − tanh(mismatch/τ) ∈ (−1, 1): diminishing returns in each direction.
    public static func toneMatch(match: Double, mismatch: Double, scale: Double) -> Double {
        tanh(match / scale) - tanh(mismatch / scale)
    }

    /// Share of sentences that parse exactly; 0 for an empty response.
    public static func fluency(_ sentences: [SentenceAnalysis]) -> Double {
        sentences.isEmpty ? 0 : Double(sentences.filter(\.parses).count) / Double(sentences.count)
    }

    /// −|sentences − requested|.
    public static func lengthShaping(sentences: Int, requested: Int) -> Double {
        -Double(abs(sentences - requested))
    }

    /// Words whose class carries content (not function words or punctuation) and whose
    /// token already occurred earlier in the response.
    public static func repetitions(_ words: ArraySlice<Int32>, tokenizer: Tokenizer) -> Int {
        var seen = Set<Int32>()
        var repeats = 0
        for t in words where isContentClass(tokenizer.wordClass(t)) {
            if !seen.insert(t).inserted { repeats += 1 }
        }
        return repeats
    }

    static func isContentClass(_ c: WordClass) -> Bool {
        switch c {
        case .noun, .verb, .toneAdjective, .neutralAdjective, .intensifier, .topicName, .toneName, .promptWord: true
        default: false
        }
    }

    /// Reads a response (tokens up to the first EOS) against a prompt.
    public static func analyze(topic: Int, tone: Tone, response: [Int32], tokenizer: Tokenizer,
                               grammar: Grammar, config: GoldConfig) -> ResponseAnalysis {
        let end = response.firstIndex(of: Tokenizer.eos) ?? response.count
        let words = response[..<end]
        let classes = words.map(tokenizer.wordClass)
        var sentences: [SentenceAnalysis] = []
        var match = 0.0, mismatch = 0.0
        var start = 0
        while start < end {
            var stop = start
            while stop < end && classes[stop] != .period { stop += 1 }
            stop = min(stop + 1, end)  // include the period, or end at the fragment's end
            var content = 0, onTopic = 0, matching = 0, mismatching = 0
            for i in start..<stop {
                let info = tokenizer.wordInfo(words[i])
                switch info.wordClass {
                case .noun, .verb:
                    content += 1
                    if info.topic == topic { onTopic += 1 }
                case .toneAdjective:
                    let boost = i > start && classes[i - 1] == .intensifier ? config.intensifierBoost : 1
                    if info.tone == tone { matching += 1; match += info.strength * boost }
                    else { mismatching += 1; mismatch += info.strength * boost }
                default: break
                }
            }
            sentences.append(SentenceAnalysis(
                range: start..<stop, parses: grammar.recognizes(classes[start..<stop]),
                contentWords: content, onTopicWords: onTopic,
                matchingToneWords: matching, mismatchingToneWords: mismatching))
            start = stop
        }
        return ResponseAnalysis(sentences: sentences, matchStrength: match, mismatchStrength: mismatch,
                                repeats: repetitions(words, tokenizer: tokenizer), wordCount: end)
    }

    /// r*(x, y) from an analysis (see the file header for the formula).
    public static func goldReward(_ a: ResponseAnalysis, requestedSentences: Int, config c: GoldConfig) -> GoldScore {
        GoldScore(
            relevance: c.relevanceWeight * relevance(a.sentences, requested: requestedSentences),
            tone: c.toneWeight * toneMatch(match: a.matchStrength, mismatch: a.mismatchStrength, scale: c.toneScale),
            fluency: c.fluencyWeight * fluency(a.sentences),
            length: c.lengthWeight * lengthShaping(sentences: a.sentences.count, requested: requestedSentences),
            repetition: -c.repetitionWeight * Double(a.repeats))
    }
}
