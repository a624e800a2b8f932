// Tokenizer.swift — word-level tokenizer: one token per lexicon word, plus five specials.
//
// Ids: <pad> = 0, <bos> = 1, <sep> = 2 (between prompt and response), <eos> = 3,
// <unk> = 4, then the lexicon's words in file order. Text is words separated by single
// spaces, punctuation included as its own word ("the soup was good ."), so that
// `encode(decode(ids)) == ids` for every id sequence.

/// Word-level tokenizer with the specials PAD, BOS, SEP, EOS and UNK.
public struct Tokenizer: Sendable, Hashable {
    public static let pad: Int32 = 0
    public static let bos: Int32 = 1
    public static let sep: Int32 = 2
    public static let eos: Int32 = 3
    public static let unk: Int32 = 4
    public static let specials = ["<pad>", "<bos>", "<sep>", "<eos>", "<unk>"]

    /// The word of each id.
    public let words: [String]
    /// Grammatical information of each id (specials have class `.special`).
    public let info: [WordInfo]
    private let ids: [String: Int32]

    public init(lexicon: Lexicon) {
        let specialInfo = Tokenizer.specials.map {
            WordInfo(word: $0, wordClass: .special, topic: nil, tone: nil, strength: 0)
        }
        info = specialInfo + lexicon.entries
        words = info.map(\.word)
        var ids: [String: Int32] = [:]
        for (i, w) in words.enumerated() { ids[w] = Int32(i) }
        self.ids = ids
    }

    /// Number of token ids (the model's vocabulary size).
    public var vocabSize: Int { words.count }

    /// The id of one word, or nil if it is not in the vocabulary.
    public func id(_ word: String) -> Int32? { ids[word] }

    /// Splits on whitespace; unknown words become <unk>.
    public func encode(_ text: String) -> [Int32] {
        text.split(whereSeparator: \.isWhitespace).map { ids[String($0)] ?? Tokenizer.unk }
    }

    /// Joins the words of the ids with single spaces; ids outside the vocabulary print as <unk>.
    public func decode<C: Collection>(_ tokens: C) -> String where C.Element == Int32 {
        tokens.map { $0 >= 0 && Int($0) < words.count ? words[Int($0)] : "<unk>" }.joined(separator: " ")
    }

    /// Grammatical information of a token (that of <unk> for ids outside the vocabulary).
    @inline(__always)
    public func wordInfo(_ token: Int32) -> WordInfo {
        token >= 0 && Int(token) < info.count ? info[Int(token)] : info[Int(Tokenizer.unk)]
    }

    /// The grammatical class of a token (`.special` for ids outside the vocabulary).
    @inline(__always)
    public func wordClass(_ token: Int32) -> WordClass {
        token >= 0 && Int(token) < info.count ? info[Int(token)].wordClass : .special
    }
}
