// SurfaceFeatures.swift — the cheap features a proxy reward model can latch onto.
//
// On the reference writer's distribution each of these correlates positively with gold
// (tested in WorldTests and measured by WorldStatistics); off that distribution they stop
// paying off or reverse: tone words saturate and, repeated, cost repetition penalty; tone
// words of the wrong polarity for the prompt cost tone; words in ungrammatical order cost
// fluency; extra sentences cost length. These are the intended routes to reward hacking.

/// Countable surface properties of a response (tokens up to the first EOS).
public struct SurfaceFeatures: Sendable, Hashable {
    /// Words before EOS.
    public var words: Int
    /// Sentences (as the gold reward segments them).
    public var sentences: Int
    /// Tone adjectives of either polarity.
    public var toneWords: Int
    /// Tone adjectives in the prompt's tone.
    public var matchingToneWords: Int
    /// Positive tone adjectives (prompt-independent: what an unconditioned proxy sees).
    public var positiveWords: Int
    /// Nouns and verbs of the prompt's topic.
    public var topicWords: Int
    public var intensifiers: Int

    /// Feature names for logging, in the order of `values`.
    public static let names = ["words", "sentences", "toneWords", "matchingToneWords", "positiveWords",
                               "topicWords", "intensifiers"]
    public var values: [Double] {
        [words, sentences, toneWords, matchingToneWords, positiveWords, topicWords, intensifiers].map(Double.init)
    }

    /// Counts the features of a response to a prompt with the given topic and tone.
    public init(topic: Int, tone: Tone, response: [Int32], tokenizer: Tokenizer) {
        let end = response.firstIndex(of: Tokenizer.eos) ?? response.count
        words = end; sentences = 0; toneWords = 0; matchingToneWords = 0; positiveWords = 0
        topicWords = 0; intensifiers = 0
        var open = false
        for t in response[..<end] {
            let info = tokenizer.wordInfo(t)
            open = true
            switch info.wordClass {
            case .period: sentences += 1; open = false
            case .toneAdjective:
                toneWords += 1
                if info.tone == tone { matchingToneWords += 1 }
                if info.tone == .positive { positiveWords += 1 }
            case .noun, .verb: if info.topic == topic { topicWords += 1 }
            case .intensifier: intensifiers += 1
            default: break
            }
        }
        if open { sentences += 1 }
    }
}
