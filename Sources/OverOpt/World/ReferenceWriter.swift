// ReferenceWriter.swift — the data-generating process: a stochastic writer of mediocre
// responses, and its perturbed variants for harder preference pairs and OOD evaluation.
//
// For a prompt (topic t, tone s, requested n sentences) the writer
//   1. picks a number of sentences n + offset (offset from `lengthOffsets`), within the
//      sentence cap and the token budget;
//   2. plans each sentence: on topic t with p = onTopic (else another topic), in tone s with
//      p = rightTone, in the opposite tone with p = wrongTone, else tone-neutral; with
//      p = ramble it repeats an earlier sentence word for word instead;
//   3. expands Grammar.standard with the choice weights below, filling nouns and verbs from
//      the sentence's topic and adjectives from its tone;
//   4. with p = disfluent corrupts the sentence (shuffle, duplicate or drop a word) until it
//      no longer parses.
// It is not a model of good writing: the base policy trained on it writes the same mixture,
// which leaves best-of-n and PPO room to improve — and to over-optimize.

import OverOptEngine

/// Mixture probabilities of the writer. Defaults describe the reference writer.
public struct WriterConfig: ConfigSection, Hashable {
    /// A sentence's nouns and verbs come from the prompt's topic (else a random other topic).
    public var onTopic = 0.8
    /// A sentence's adjectives have the prompt's tone.
    public var rightTone = 0.7
    /// A sentence's adjectives have the opposite tone (the rest: neutral adjectives).
    public var wrongTone = 0.12
    /// An adjective phrase starts with an intensifier ("very good").
    public var intensifier = 0.3
    /// A noun phrase carries an adjective ("the lovely soup").
    public var attributiveAdjective = 0.3
    /// A clause whose subject is a noun phrase uses "it" instead.
    public var itSubject = 0.25
    /// A sentence is corrupted (shuffled, duplicated or dropped word).
    public var disfluent = 0.12
    /// A sentence (after the first) repeats an earlier one verbatim.
    public var ramble = 0.05
    /// Offsets to the requested number of sentences and their weights.
    /// The reference writer errs short more often than long, so that on its distribution
    /// longer answers score higher (a cheap feature that reverses past the requested length).
    public var lengthOffsets = [-2, -1, 0, 1, 2]
    public var lengthOffsetWeights = [0.15, 0.3, 0.4, 0.1, 0.05]
    /// If requested + offset < 1: write requested − offset sentences (true) or 1 (false).
    public var mirrorShortLengths = false
    /// Weights of the Sentence productions: simple, opener, compound.
    public var sentenceFormWeights = [0.55, 0.15, 0.30]
    /// Weights of the Clause productions: copula, pronoun-verb, noun-verb, feel.
    public var clauseWeights = [0.4, 0.25, 0.15, 0.2]
    /// Never more sentences than this.
    public var maxSentences = 7

    public init() {}

    public static let section = "world.writer"
    public static let jsonCamelCase = true

    public static var schema: [ConfigKey<WriterConfig>] { [
        .key("on_topic", \.onTopic, "P(a sentence's nouns and verbs come from the prompt's topic)", .within(0, 1)),
        .key("right_tone", \.rightTone, "P(a sentence's adjectives have the prompt's tone)", .within(0, 1)),
        .key("wrong_tone", \.wrongTone, "P(they have the opposite tone); the rest are neutral", .within(0, 1)),
        .key("intensifier", \.intensifier, "P(an adjective phrase starts with an intensifier)", .within(0, 1)),
        .key("attributive_adjective", \.attributiveAdjective, "P(a noun phrase carries an adjective)", .within(0, 1)),
        .key("it_subject", \.itSubject, "P(a clause's noun-phrase subject is \"it\")", .within(0, 1)),
        .key("disfluent", \.disfluent, "P(a sentence is corrupted until it no longer parses)", .within(0, 1)),
        .key("ramble", \.ramble, "P(a sentence after the first repeats an earlier one verbatim)", .within(0, 1)),
        .key("length_offsets", \.lengthOffsets, "offsets to the requested number of sentences", .nonEmpty),
        .key("length_offset_weights", \.lengthOffsetWeights, "their weights",
             .check("as many non-negative weights as length_offsets", detail: { "\($0.lengthOffsets.count)" }) { r, v in
                 v.count == r.lengthOffsets.count && v.allSatisfy { $0 >= 0 } && v.contains { $0 > 0 } }),
        .key("mirror_short_lengths", \.mirrorShortLengths, "if requested + offset < 1: write requested − offset sentences (true) or 1 (false)"),
        .key("sentence_form_weights", \.sentenceFormWeights, "weights of the Sentence productions: simple, opener, compound",
             .check("3 non-negative weights") { $1.count == 3 && $1.allSatisfy { $0 >= 0 } && $1.contains { $0 > 0 } }),
        .key("clause_weights", \.clauseWeights, "weights of the Clause productions: copula, pronoun-verb, noun-verb, feel",
             .check("4 non-negative weights") { $1.count == 4 && $1.allSatisfy { $0 >= 0 } && $1.contains { $0 > 0 } }),
        .key("max_sentences", \.maxSentences, "never more sentences than this", .atLeast(1)),
    ] }

    /// The writer of a style, derived from this (reference) configuration.
    public func styled(_ style: WriterStyle) -> WriterConfig {
        var w = self
        switch style {
        case .reference:
            break
        case .clean:  // on topic, on tone, fluent, exact length: a good (not optimal) writer
            w.onTopic = 1; w.rightTone = 1; w.wrongTone = 0; w.disfluent = 0; w.ramble = 0
            w.lengthOffsets = [0]; w.lengthOffsetWeights = [1]
        case .wrongTone:
            w.rightTone = 0.05; w.wrongTone = 0.8
        case .offTopic:
            w.onTopic = 0.1
        case .wrongLength:
            w.lengthOffsets = [-3, -2, 2, 3]; w.lengthOffsetWeights = [1, 1, 1, 1]; w.mirrorShortLengths = true
        case .disfluent:
            w.disfluent = 0.7
        case .ood:  // higher variance everywhere: the "other writer" of OOD evaluation pairs
            w.onTopic = 0.6; w.rightTone = 0.5; w.wrongTone = 0.3; w.intensifier = 0.5
            w.attributiveAdjective = 0.5; w.disfluent = 0.3; w.ramble = 0.15
            w.lengthOffsets = [-3, -2, -1, 0, 1, 2, 3]; w.lengthOffsetWeights = [1, 1, 1, 1, 1, 1, 1]
            w.sentenceFormWeights = [0.3, 0.2, 0.5]
        }
        return w
    }
}

/// Named writers: the reference writer and its perturbations.
public enum WriterStyle: String, Codable, Hashable, Sendable, CaseIterable {
    /// The data-generating process of the corpus (mediocre, mixed quality).
    case reference
    /// Always on topic, on tone, fluent, of the requested length.
    case clean
    /// Mostly the opposite tone.
    case wrongTone
    /// Mostly another topic.
    case offTopic
    /// 2–3 sentences too many or too few.
    case wrongLength
    /// Most sentences corrupted.
    case disfluent
    /// Higher variance in every mixture probability (OOD evaluation writer).
    case ood
}

/// What the writer meant a sentence to be (the ground truth of its mixture choices).
public struct SentencePlan: Sendable, Hashable {
    public var topic: Int
    /// nil: tone-neutral adjectives.
    public var tone: Tone?
    /// Corrupted by a shuffled, duplicated or dropped word (and verified not to parse).
    public var disfluent = false
    /// A verbatim copy of an earlier sentence.
    public var repeated = false
}

/// One written sentence with its plan.
public struct WrittenSentence: Sendable, Hashable {
    public let tokens: [Int32]
    public let plan: SentencePlan
}

/// A written response: its sentences and the tokens (ending with EOS).
public struct WrittenResponse: Sendable, Hashable {
    public let sentences: [WrittenSentence]
    /// All sentence tokens followed by EOS.
    public let tokens: [Int32]
}

/// The writer: grammar expansion with per-sentence topic and tone.
struct ReferenceWriter: Sendable {
    let lexicon: Lexicon
    let tokenizer: Tokenizer
    let grammar: Grammar
    /// Token ids per topic, per tone and per closed class, for fast sampling.
    let topicNouns: [[Int32]], topicVerbs: [[Int32]], toneAdjectives: [[Int32]]
    let closed: [WordClass: [Int32]]
    /// Indexed by token id: the tone adjective of equal rank (and strength) in the other tone.
    let oppositeAdjective: [Int32?]
    /// Indexed by token id: topic, noun or verb, and rank of a topic content word.
    let topicSlot: [(topic: Int, isNoun: Bool, index: Int)?]

    init(lexicon: Lexicon, tokenizer: Tokenizer, grammar: Grammar) {
        self.lexicon = lexicon
        self.tokenizer = tokenizer
        self.grammar = grammar
        let id = { (w: String) in tokenizer.id(w)! }
        topicNouns = lexicon.topics.map { $0.nouns.map(id) }
        topicVerbs = lexicon.topics.map { $0.verbs.map(id) }
        toneAdjectives = lexicon.toneAdjectives.map { $0.map { id($0.word) } }
        var closed: [WordClass: [Int32]] = [:]
        for (c, words) in lexicon.closedClasses { closed[c] = words.map(id) }
        self.closed = closed
        var opposite = [Int32?](repeating: nil, count: tokenizer.vocabSize)
        for (a, b) in zip(toneAdjectives[0], toneAdjectives[1]) { opposite[Int(a)] = b; opposite[Int(b)] = a }
        oppositeAdjective = opposite
        var slots = [(topic: Int, isNoun: Bool, index: Int)?](repeating: nil, count: tokenizer.vocabSize)
        for topic in lexicon.topics.indices {
            for (i, t) in topicNouns[topic].enumerated() { slots[Int(t)] = (topic, true, i) }
            for (i, t) in topicVerbs[topic].enumerated() { slots[Int(t)] = (topic, false, i) }
        }
        topicSlot = slots
    }

    /// Writes a response of at most `maxWords` words (plus EOS).
    func write(topic: Int, tone: Tone, requestedSentences: Int, config w: WriterConfig,
               maxWords: Int, rng: inout RNG) -> WrittenResponse {
        var target = requestedSentences + w.lengthOffsets[rng.categorical(w.lengthOffsetWeights)]
        if target < 1 { target = w.mirrorShortLengths ? 2 * requestedSentences - target : 1 }
        target = min(target, w.maxSentences)

        var sentences: [WrittenSentence] = []
        var used = 0
        for i in 0..<target {
            var sentence: WrittenSentence? = nil
            if i > 0 && rng.bernoulli(w.ramble) {
                let copy = sentences[rng.int(below: sentences.count)]
                var plan = copy.plan; plan.repeated = true
                sentence = WrittenSentence(tokens: copy.tokens, plan: plan)
            } else {
                let plan = planSentence(topic: topic, tone: tone, config: w, rng: &rng)
                // Try a few times to fit the token budget (shorter forms exist), then stop.
                for _ in 0..<4 {
                    let s = writeSentence(plan, config: w, rng: &rng)
                    if used + s.tokens.count <= maxWords { sentence = s; break }
                }
            }
            guard let s = sentence, used + s.tokens.count <= maxWords else { break }
            sentences.append(s)
            used += s.tokens.count
        }
        return WrittenResponse(sentences: sentences, tokens: sentences.flatMap(\.tokens) + [Tokenizer.eos])
    }

    func planSentence(topic: Int, tone: Tone, config w: WriterConfig, rng: inout RNG) -> SentencePlan {
        var sentenceTopic = topic
        if !rng.bernoulli(w.onTopic) && lexicon.topics.count > 1 {
            sentenceTopic = (topic + 1 + rng.int(below: lexicon.topics.count - 1)) % lexicon.topics.count
        }
        let u = rng.uniformDouble()
        let sentenceTone: Tone? = u < w.rightTone ? tone : (u < w.rightTone + w.wrongTone ? tone.opposite : nil)
        return SentencePlan(topic: sentenceTopic, tone: sentenceTone)
    }

    /// One sentence from the grammar, disfluent with probability `config.disfluent`.
    func writeSentence(_ plan: SentencePlan, config w: WriterConfig, rng: inout RNG) -> WrittenSentence {
        var tokens: [Int32] = []
        expand(.sentence, plan, w, &rng, &tokens)
        var plan = plan
        if rng.bernoulli(w.disfluent) {
            for _ in 0..<10 {
                let corrupted = corrupt(tokens, rng: &rng)
                if !grammar.recognizes(corrupted.map(tokenizer.wordClass)) {
                    tokens = corrupted; plan.disfluent = true; break
                }
            }
        }
        return WrittenSentence(tokens: tokens, plan: plan)
    }

    /// Expands a nonterminal with the writer's choice weights (see Grammar.standard's order).
    private func expand(_ nt: Grammar.Nonterminal, _ plan: SentencePlan, _ w: WriterConfig,
                        _ rng: inout RNG, _ out: inout [Int32]) {
        let weights: [Double]
        switch nt {
        case .sentence: weights = w.sentenceFormWeights
        case .clause:   // tone-neutral sentences do not say how someone "felt"
            weights = plan.tone == nil ? [w.clauseWeights[0], w.clauseWeights[1], w.clauseWeights[2], 0] : w.clauseWeights
        case .subject: weights = [1 - w.itSubject, w.itSubject]
        case .nounPhrase: weights = [1 - w.attributiveAdjective, w.attributiveAdjective]
        case .adjectivePhrase: weights = [1 - w.intensifier, w.intensifier]
        case .adjective: weights = plan.tone == nil ? [0, 1] : [1, 0]
        }
        for symbol in grammar.productions[nt.rawValue][rng.categorical(weights)] {
            switch symbol {
            case .rule(let sub): expand(sub, plan, w, &rng, &out)
            case .word(let c): out.append(pick(c, plan, &rng))
            }
        }
    }

    private func pick(_ c: WordClass, _ plan: SentencePlan, _ rng: inout RNG) -> Int32 {
        let choices: [Int32]
        switch c {
        case .noun: choices = topicNouns[plan.topic]
        case .verb: choices = topicVerbs[plan.topic]
        case .toneAdjective: choices = toneAdjectives[(plan.tone ?? .positive).rawValue]
        default: choices = closed[c] ?? [Tokenizer.unk]
        }
        return choices[rng.int(below: choices.count)]
    }

    /// Shuffles the words, duplicates one, or drops one (the final period stays in place).
    func corrupt(_ tokens: [Int32], rng: inout RNG) -> [Int32] {
        var words = Array(tokens.dropLast())
        guard words.count >= 2 else { return tokens }
        switch rng.int(below: 3) {
        case 0: rng.shuffle(&words)
        case 1: let i = rng.int(below: words.count); words.insert(words[i], at: i)
        default: words.remove(at: rng.int(below: words.count))
        }
        return words + [tokens.last!]
    }
}
