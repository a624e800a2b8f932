// Lexicon.swift — the world's words, in categories, loaded from Resources/lexicon.json.
//
// The lexicon is data, not code: topics (a prompt name, nouns and past-tense verbs), two
// tones (the words a prompt uses to ask for them, and response adjectives with strengths),
// and closed classes (determiners, pronouns, connectives, punctuation, prompt words).
// Every word belongs to exactly one category, so a token's grammatical class is a lookup.
// This file knows nothing of token ids; the tokenizer numbers the words in file order.

import Foundation

/// The grammatical category of a word: the terminal symbols of the grammar.
public enum WordClass: UInt8, Sendable, Hashable, CaseIterable {
    case special            // <pad>, <bos>, <sep>, <eos>, <unk>: never part of a sentence
    case noun, verb         // topic content words
    case toneAdjective      // positive or negative, with a strength
    case neutralAdjective   // carries no tone
    case intensifier        // "very": multiplies the next tone adjective's strength
    case determiner, pronoun, it, copula, feelVerb, about, connective, opener, comma, period
    case topicName, toneName, promptWord  // words only prompts use
}

/// The tone a prompt asks for, and the polarity of a tone adjective.
public enum Tone: Int, Sendable, Hashable, Codable, CaseIterable {
    case positive = 0, negative = 1
    public var opposite: Tone { self == .positive ? .negative : .positive }
    public var name: String { self == .positive ? "positive" : "negative" }
}

/// One word of the lexicon with everything the grammar and the gold reward need.
public struct WordInfo: Sendable, Hashable {
    public let word: String
    public let wordClass: WordClass
    /// Topic index for nouns, verbs and topic names.
    public let topic: Int?
    /// Polarity of tone adjectives and tone names.
    public let tone: Tone?
    /// Tone strength of a tone adjective (0 for every other word).
    public let strength: Double
}

/// A topic: its name in prompts, its nouns and verbs in responses.
public struct Topic: Sendable, Hashable {
    public let name: String
    public let nouns: [String]
    public let verbs: [String]
}

/// The words of the lexicon in categories, in file order.
public struct Lexicon: Sendable, Hashable {
    public let topics: [Topic]
    /// Prompt words for each tone, e.g. ["positive", "cheerful", "glowing"]; indexed by Tone.rawValue.
    public let toneNames: [[String]]
    /// Tone adjectives with strengths; indexed by Tone.rawValue.
    public let toneAdjectives: [[(word: String, strength: Double)]]
    /// Every word, each exactly once, in file order (the tokenizer's order).
    public let entries: [WordInfo]
    /// Words of each closed class, e.g. closedClass[.determiner] = ["the", "a", …].
    public let closedClasses: [WordClass: [String]]
    /// Prompt-only function words ("write", "sentences", "one", …).
    public let promptWords: [String]

    public static func == (a: Lexicon, b: Lexicon) -> Bool { a.entries == b.entries }
    public func hash(into h: inout Hasher) { h.combine(entries) }

    /// Words of a closed class (empty for open classes).
    public func words(_ c: WordClass) -> [String] { closedClasses[c] ?? [] }

    /// The lexicon shipped in the module's resources (`Resources/<name>.json`).
    public static func bundled(named name: String = "lexicon") throws -> Lexicon {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json")
                ?? Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Resources")
        else { throw LexiconError.missingResource(name) }
        return try Lexicon(json: Data(contentsOf: url))
    }

    /// Parses a lexicon file; throws if a word appears twice or a category is empty.
    public init(json: Data) throws {
        let file = try JSONDecoder().decode(_LexiconFile.self, from: json)
        guard file.tones.count == 2 else { throw LexiconError.invalid("need exactly two tones") }
        var entries: [WordInfo] = []
        var seen = Set<String>()
        func add(_ w: String, _ c: WordClass, topic: Int? = nil, tone: Tone? = nil, strength: Double = 0) throws {
            guard !w.isEmpty, !w.contains(where: \.isWhitespace) else { throw LexiconError.invalid("bad word '\(w)'") }
            guard seen.insert(w).inserted else { throw LexiconError.invalid("duplicate word '\(w)'") }
            entries.append(WordInfo(word: w, wordClass: c, topic: topic, tone: tone, strength: strength))
        }
        var topics: [Topic] = []
        for (i, t) in file.topics.enumerated() {
            guard !t.nouns.isEmpty, !t.verbs.isEmpty else { throw LexiconError.invalid("topic \(t.name) is empty") }
            try add(t.name, .topicName, topic: i)
            for w in t.nouns { try add(w, .noun, topic: i) }
            for w in t.verbs { try add(w, .verb, topic: i) }
            topics.append(Topic(name: t.name, nouns: t.nouns, verbs: t.verbs))
        }
        var toneNames: [[String]] = [], toneAdjectives: [[(word: String, strength: Double)]] = []
        for (i, t) in file.tones.enumerated() {
            let tone = Tone(rawValue: i)!
            guard t.name == tone.name else { throw LexiconError.invalid("tones must be positive, negative in that order") }
            for w in t.promptWords { try add(w, .toneName, tone: tone) }
            for a in t.adjectives { try add(a.word, .toneAdjective, tone: tone, strength: a.strength) }
            toneNames.append(t.promptWords)
            toneAdjectives.append(t.adjectives.map { ($0.word, $0.strength) })
        }
        // Perturbation.flipTone maps the i-th adjective of one tone to the i-th of the other.
        guard toneAdjectives[0].map(\.strength) == toneAdjectives[1].map(\.strength) else {
            throw LexiconError.invalid("the tones' adjective lists must be parallel (equal strengths rank by rank)")
        }
        let closed: [(WordClass, [String])] = [
            (.neutralAdjective, file.neutralAdjectives), (.intensifier, file.intensifiers),
            (.determiner, file.determiners), (.pronoun, file.pronouns), (.it, file.it),
            (.copula, file.copulas), (.feelVerb, file.feelVerbs), (.about, file.about),
            (.connective, file.connectives), (.opener, file.openers), (.comma, file.comma),
            (.period, file.period),
        ]
        var closedClasses: [WordClass: [String]] = [:]
        for (c, words) in closed {
            guard !words.isEmpty else { throw LexiconError.invalid("empty class \(c)") }
            for w in words { try add(w, c) }
            closedClasses[c] = words
        }
        for w in file.promptWords { try add(w, .promptWord) }
        self.topics = topics
        self.toneNames = toneNames
        self.toneAdjectives = toneAdjectives
        self.entries = entries
        self.closedClasses = closedClasses
        self.promptWords = file.promptWords
    }
}

public enum LexiconError: Error, CustomStringConvertible {
    case missingResource(String), invalid(String)
    public var description: String {
        switch self {
        case .missingResource(let n): "lexicon resource '\(n).json' not found in the module bundle"
        case .invalid(let m): "invalid lexicon: \(m)"
        }
    }
}

/// The on-disk layout of lexicon.json.
struct _LexiconFile: Decodable {
    struct TopicEntry: Decodable { let name: String; let nouns: [String]; let verbs: [String] }
    struct Adjective: Decodable { let word: String; let strength: Double }
    struct ToneEntry: Decodable { let name: String; let promptWords: [String]; let adjectives: [Adjective] }
    let topics: [TopicEntry]
    let tones: [ToneEntry]
    let neutralAdjectives, intensifiers, determiners, pronouns, it, copulas, feelVerbs,
        about, connectives, openers, comma, period, promptWords: [String]
}
