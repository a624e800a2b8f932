// Prompts.swift — the prompts: topic × tone word × phrasing × requested number of sentences.
//
// With the bundled lexicon: 8 topics × 2 tones × 3 tone words × 6 phrasings × 1…5 sentences
// = 1440 distinct prompts of 6–8 tokens, e.g. "write three cheerful sentences about cooking".
// The split into train and held-out prompts is a pure function of the prompt's fields (no
// randomness): a prompt is held out if its phrasing is a held-out phrasing (by default the
// last, "compose …") or its (topic, tone) is a held-out combination (by default
// music:negative and garden:positive). Held-out prompts serve OOD evaluation (prompt shift)
// and PPO evaluation; train prompts are the only ones reward models see in training.

import Foundation

/// One prompt with its meaning (what gold rewards) and its tokens.
public struct Prompt: Sendable, Hashable, Identifiable {
    /// Index in `World.allPrompts` (stable for a given lexicon and config).
    public let id: Int
    public let topic: Int
    public let tone: Tone
    /// Which of the tone's prompt words is used ("positive", "cheerful", "glowing").
    public let toneWord: Int
    /// Index into `PromptConfig.phrasings`.
    public let phrasing: Int
    /// The number of sentences the prompt asks for.
    public let requestedSentences: Int
    public let isHeldOut: Bool
    public let text: String
    /// Prompt tokens without BOS/SEP.
    public let tokens: [Int32]
}

/// Which prompts to draw from.
public enum PromptSplit: String, Sendable, Codable, CaseIterable {
    case train, heldOut, all
}

/// How prompts are built and split. All fields have documented defaults.
public struct PromptConfig: ConfigSection, Hashable {
    /// Phrasing templates with the slots {n} (number word), {tone} (tone word),
    /// {sentences} ("sentence"/"sentences") and {topic} (topic name).
    public var phrasings: [String] = PromptConfig.defaultPhrasings
    /// Requested numbers of sentences (must have number words: one … five).
    public var minRequestedSentences = 1
    public var maxRequestedSentences = 5
    /// Phrasings held out entirely (default: the last, "compose {n} {sentences} about {topic} , {tone}").
    public var heldOutPhrasings: [Int] = [5]
    /// "topic:tone" combinations held out in every phrasing.
    public var heldOutTopicTones: [String] = ["music:negative", "garden:positive"]

    public static let defaultPhrasings = [
        "write {n} {tone} {sentences} about {topic}",
        "describe {topic} in {n} {tone} {sentences}",
        "give me {n} {tone} {sentences} on {topic}",
        "tell me about {topic} : {n} {tone} {sentences}",
        "{topic} : {n} {tone} {sentences} please",
        "compose {n} {sentences} about {topic} , {tone}",
    ]

    public init() {}

    public static let section = "world.prompts"
    public static let jsonCamelCase = true

    public static var schema: [ConfigKey<PromptConfig>] { [
        .key("phrasings", \.phrasings, "templates with the slots {n}, {tone}, {sentences} and {topic}", .nonEmpty,
             default: "6 phrasings (`PromptConfig.defaultPhrasings`)"),
        .key("min_requested_sentences", \.minRequestedSentences, "fewest sentences a prompt asks for", .within(1, 9)),
        .key("max_requested_sentences", \.maxRequestedSentences, "most sentences a prompt asks for", .within(1, 9),
             .check("≥ min_requested_sentences", detail: { "\($0.minRequestedSentences)" }) { $1 >= $0.minRequestedSentences }),
        .key("held_out_phrasings", \.heldOutPhrasings, "phrasings (indices) held out entirely",
             .check("indices of phrasings", detail: { "0...\($0.phrasings.count - 1)" }) { r, v in v.allSatisfy { $0 >= 0 && $0 < r.phrasings.count } }),
        .key("held_out_topic_tones", \.heldOutTopicTones, "\"topic:tone\" combinations held out in every phrasing"),
    ] }
}

/// Number words used for the requested length, 1-based.
let _numberWords = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

/// Every prompt of the world, in a fixed order: topic, tone, tone word, phrasing, length.
func makePrompts(lexicon: Lexicon, tokenizer: Tokenizer, config: PromptConfig) throws -> [Prompt] {
    let heldOutCombos = Set(config.heldOutTopicTones)
    for combo in heldOutCombos {
        let parts = combo.split(separator: ":").map(String.init)
        guard parts.count == 2, lexicon.topics.contains(where: { $0.name == parts[0] }),
              Tone.allCases.contains(where: { $0.name == parts[1] })
        else { throw LexiconError.invalid("held-out combination '\(combo)' is not topic:tone") }
    }
    guard config.minRequestedSentences >= 1, config.maxRequestedSentences <= _numberWords.count,
          config.minRequestedSentences <= config.maxRequestedSentences
    else { throw LexiconError.invalid("requested sentences out of range") }
    var prompts: [Prompt] = []
    for (topic, t) in lexicon.topics.enumerated() {
        for tone in Tone.allCases {
            let combo = "\(t.name):\(tone.name)"
            for (toneWord, toneName) in lexicon.toneNames[tone.rawValue].enumerated() {
                for (phrasing, template) in config.phrasings.enumerated() {
                    for n in config.minRequestedSentences...config.maxRequestedSentences {
                        let text = template
                            .replacingOccurrences(of: "{n}", with: _numberWords[n - 1])
                            .replacingOccurrences(of: "{tone}", with: toneName)
                            .replacingOccurrences(of: "{sentences}", with: n == 1 ? "sentence" : "sentences")
                            .replacingOccurrences(of: "{topic}", with: t.name)
                        let tokens = tokenizer.encode(text)
                        guard !tokens.contains(Tokenizer.unk) else {
                            throw LexiconError.invalid("prompt '\(text)' has words outside the lexicon")
                        }
                        let heldOut = config.heldOutPhrasings.contains(phrasing) || heldOutCombos.contains(combo)
                        prompts.append(Prompt(id: prompts.count, topic: topic, tone: tone, toneWord: toneWord,
                                              phrasing: phrasing, requestedSentences: n, isHeldOut: heldOut,
                                              text: text, tokens: tokens))
                    }
                }
            }
        }
    }
    return prompts
}
