// World.swift — the entry point other stages use: lexicon, tokenizer, prompts, writers and
// gold reward, built from a seed-independent `WorldConfig`.
//
// A training sequence is  [BOS] prompt [SEP] response [EOS]  with a prompt of at most
// `maxPromptTokens` and a response of at most `maxResponseTokens` tokens including EOS, so
// every sequence fits `maxSequenceLength` (62 by default, inside a 64-token context).
// Randomness comes only from the `RNG` passed in; the world itself holds no random state.

import Foundation
import OverOptEngine

/// Everything that defines a world. Seed-independent; hash it (`World.fingerprint`) for caches.
public struct WorldConfig: ConfigSection, Hashable {
    /// Name of the lexicon resource (Resources/<lexicon>.json).
    public var lexicon = "lexicon"
    public var prompts = PromptConfig()
    /// The reference writer; perturbed writers are derived from it (`WriterConfig.styled`).
    public var writer = WriterConfig()
    public var gold = GoldConfig()
    public var maxPromptTokens = 10
    /// Response tokens including EOS.
    public var maxResponseTokens = 50

    public init() {}

    public static let section = "world"
    public static let jsonCamelCase = true

    public static var schema: [ConfigKey<WorldConfig>] { [
        .key("lexicon", \.lexicon, "the lexicon resource (`Sources/OverOpt/World/Resources/<lexicon>.json`)"),
        .key("max_prompt_tokens", \.maxPromptTokens, "longest prompt in tokens (every prompt must fit)", .atLeast(1)),
        .key("max_response_tokens", \.maxResponseTokens, "longest response in tokens, EOS included; BOS, prompt, SEP and response fit the models' 64-token context",
             .atLeast(2), .check("≤ 62 − max_prompt_tokens", detail: { "\(62 - $0.maxPromptTokens)" }) { $0.maxPromptTokens + $1 <= 62 }),
        .section("prompts", \.prompts, "how prompts are built and split into train and held out"),
        .section("writer", \.writer, "the reference writer's mixture probabilities"),
        .section("gold", \.gold, "the gold reward's weights"),
    ] }
}

/// The synthetic RLHF world: language, prompts, reference writer and gold reward.
public struct World: Sendable {
    /// Bump when a change to this folder's code changes corpora or gold values (cache keys).
    public static let codeVersion = 1

    public let config: WorldConfig
    public let lexicon: Lexicon
    public let tokenizer: Tokenizer
    public let grammar: Grammar
    /// Every prompt, in the fixed order of `makePrompts`; `Prompt.id` indexes it.
    public let allPrompts: [Prompt]
    public let trainPrompts: [Prompt]
    public let heldOutPrompts: [Prompt]
    let writer: ReferenceWriter
    private let promptsByTokens: [[Int32]: Int]

    /// Builds the world; throws if the lexicon or the prompt config is invalid.
    public init(config: WorldConfig = WorldConfig()) throws {
        self.config = config
        lexicon = try Lexicon.bundled(named: config.lexicon)
        tokenizer = Tokenizer(lexicon: lexicon)
        grammar = .standard
        allPrompts = try makePrompts(lexicon: lexicon, tokenizer: tokenizer, config: config.prompts)
        trainPrompts = allPrompts.filter { !$0.isHeldOut }
        heldOutPrompts = allPrompts.filter(\.isHeldOut)
        if let long = allPrompts.first(where: { $0.tokens.count > config.maxPromptTokens }) {
            throw LexiconError.invalid("prompt '\(long.text)' is longer than \(config.maxPromptTokens) tokens")
        }
        writer = ReferenceWriter(lexicon: lexicon, tokenizer: tokenizer, grammar: grammar)
        var byTokens: [[Int32]: Int] = [:]
        for p in allPrompts { byTokens[p.tokens] = p.id }
        promptsByTokens = byTokens
    }

    // MARK: Sizes

    /// Number of token ids.
    public var vocabSize: Int { tokenizer.vocabSize }
    /// Longest training sequence: BOS + prompt + SEP + response (EOS included).
    public var maxSequenceLength: Int { 1 + config.maxPromptTokens + 1 + config.maxResponseTokens }

    // MARK: Prompts

    /// The prompts of a split.
    public func prompts(_ split: PromptSplit) -> [Prompt] {
        switch split {
        case .train: trainPrompts
        case .heldOut: heldOutPrompts
        case .all: allPrompts
        }
    }

    /// The prompt with exactly these tokens (no BOS/SEP), if any.
    public func prompt(tokens: [Int32]) -> Prompt? { promptsByTokens[tokens].map { allPrompts[$0] } }

    /// What the policy is conditioned on: [BOS] prompt [SEP].
    public func context(for prompt: Prompt) -> [Int32] { [Tokenizer.bos] + prompt.tokens + [Tokenizer.sep] }

    /// [BOS] prompt [SEP] response; EOS is appended if the response lacks it.
    public func trainingSequence(prompt: Prompt, response: [Int32]) -> [Int32] {
        context(for: prompt) + response + (response.last == Tokenizer.eos ? [] : [Tokenizer.eos])
    }

    // MARK: Writers

    /// A response to the prompt by the writer of `style`, ending with EOS, at most
    /// `maxResponseTokens` tokens long.
    public func writeResponse(for prompt: Prompt, rng: inout RNG, style: WriterStyle = .reference) -> [Int32] {
        write(for: prompt, rng: &rng, style: style).tokens
    }

    /// Like `writeResponse`, with the writer's plan of each sentence (its ground truth).
    public func write(for prompt: Prompt, rng: inout RNG, style: WriterStyle = .reference) -> WrittenResponse {
        writer.write(topic: prompt.topic, tone: prompt.tone, requestedSentences: prompt.requestedSentences,
                     config: config.writer.styled(style), maxWords: config.maxResponseTokens - 1, rng: &rng)
    }

    /// `count` pretraining sequences [BOS] prompt [SEP] response [EOS], prompts drawn
    /// uniformly from `split` (default: all prompts — the base model is pretrained broadly;
    /// only reward models are kept away from held-out prompts).
    public func corpus(count: Int, rng: inout RNG, from split: PromptSplit = .all,
                       style: WriterStyle = .reference) -> [[Int32]] {
        let prompts = self.prompts(split)
        return (0..<count).map { _ in
            let p = prompts[rng.int(below: prompts.count)]
            return context(for: p) + writeResponse(for: p, rng: &rng, style: style)
        }
    }

    // MARK: Gold reward

    /// r*(x, y) with its components (tokens after the first EOS are ignored).
    public func gold(prompt: Prompt, response: [Int32]) -> GoldScore {
        GoldReward.goldReward(analyze(prompt: prompt, response: response),
                              requestedSentences: prompt.requestedSentences, config: config.gold)
    }

    /// The gold reward's reading of a response (sentences, parses, tone strengths, repeats).
    public func analyze(prompt: Prompt, response: [Int32]) -> ResponseAnalysis {
        GoldReward.analyze(topic: prompt.topic, tone: prompt.tone, response: response,
                           tokenizer: tokenizer, grammar: grammar, config: config.gold)
    }

    /// The cheap features a proxy can exploit (see SurfaceFeatures.swift).
    public func surfaceFeatures(prompt: Prompt, response: [Int32]) -> SurfaceFeatures {
        SurfaceFeatures(topic: prompt.topic, tone: prompt.tone, response: response, tokenizer: tokenizer)
    }

    // MARK: Text

    /// "prompt → response" as readable text (response cut at EOS).
    public func render(prompt: Prompt, response: [Int32]) -> String {
        let end = response.firstIndex(of: Tokenizer.eos) ?? response.count
        return "\(prompt.text) → \(tokenizer.decode(response[..<end]))"
    }

    /// A stable hex digest of the config, the lexicon and `codeVersion`, for cache keys.
    public var fingerprint: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = (try? encoder.encode(config)).flatMap { String(data: $0, encoding: .utf8) } ?? ""
        let words = lexicon.entries.map { "\($0.word)/\($0.wordClass.rawValue)/\($0.topic ?? -1)/\($0.tone?.rawValue ?? -1)/\($0.strength)" }
        let h = RNG.stableHash("world v\(World.codeVersion)|\(json)|\(words.joined(separator: " "))")
        return String(h, radix: 16)
    }

    /// A short human-readable summary: sizes, the split, and a few samples with gold components.
    public func describe(samples: Int = 4, seed: UInt64 = 0) -> String {
        var rng = RNG(seed: seed).split("describe")
        var lines = [
            "world \(fingerprint): vocab \(vocabSize) tokens, \(lexicon.topics.count) topics, max sequence \(maxSequenceLength)",
            "prompts: \(allPrompts.count) (\(trainPrompts.count) train, \(heldOutPrompts.count) held out: "
                + "phrasings \(config.prompts.heldOutPhrasings), topic:tone \(config.prompts.heldOutTopicTones.joined(separator: ", ")))",
            "gold = \(config.gold.relevanceWeight)·relevance + \(config.gold.toneWeight)·tone + \(config.gold.fluencyWeight)·fluency"
                + " − \(config.gold.lengthWeight)·|sentences − requested| − \(config.gold.repetitionWeight)·repeats",
        ]
        for _ in 0..<samples {
            let p = allPrompts[rng.int(below: allPrompts.count)]
            let y = writeResponse(for: p, rng: &rng)
            lines.append("  " + render(prompt: p, response: y))
            lines.append("    \(gold(prompt: p, response: y))")
        }
        return lines.joined(separator: "\n")
    }
}
