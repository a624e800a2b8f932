// Perturbations.swift — edits of an existing response (a writer's or a policy sample) that
// change one thing gold cares about, for harder and more informative preference pairs.
//
// A pair (y, perturb(y)) differs in a single aspect, so the only way to rank it is to know
// that aspect: `.flipTone` swaps every tone adjective for the one of equal strength and
// opposite polarity (good ↔ bad, excellent ↔ terrible: the lexicon lists them in parallel),
// so a proxy must compare the adjectives' polarity with the tone the prompt asks for —
// the prompt-tone × polarity interaction that decides whether a proxy generalizes
// (docs/world.md, "Design lessons"). The others move a
// response off topic, off length, or out of the grammar.

import OverOptEngine

/// One kind of edit of a response.
public enum Perturbation: String, Codable, Hashable, Sendable, CaseIterable {
    /// Every tone adjective replaced by its opposite of equal strength.
    case flipTone
    /// Nouns and verbs of the prompt's topic replaced by those of another topic.
    case changeTopic
    /// One sentence dropped (if there are several and a coin says so) or one appended.
    case changeLength
    /// One grammatical sentence corrupted (shuffled, duplicated or dropped word).
    case disfluent
}

extension World {
    /// The response edited by `kind`; ends with EOS and respects `maxResponseTokens`.
    /// Tokens after the first EOS are dropped. May return the response unchanged when the
    /// edit has nothing to act on (e.g. `.flipTone` without tone adjectives).
    public func perturb(_ response: [Int32], for prompt: Prompt, kind: Perturbation, rng: inout RNG) -> [Int32] {
        let end = response.firstIndex(of: Tokenizer.eos) ?? response.count
        var words = Array(response[..<end])
        switch kind {
        case .flipTone:
            words = words.map { writer.oppositeAdjective[Int($0)] ?? $0 }
        case .changeTopic:
            let topics = lexicon.topics.count
            let other = (prompt.topic + 1 + rng.int(below: topics - 1)) % topics
            words = words.map { t in
                guard let slot = writer.topicSlot[Int(t)], slot.topic == prompt.topic else { return t }
                let list = slot.isNoun ? writer.topicNouns[other] : writer.topicVerbs[other]
                return list[slot.index % list.count]
            }
        case .changeLength:
            var sentences = _sentences(words)
            if sentences.count > 1 && rng.bernoulli(0.5) {
                sentences.remove(at: rng.int(below: sentences.count))
            } else {
                let plan = writer.planSentence(topic: prompt.topic, tone: prompt.tone, config: config.writer, rng: &rng)
                var clean = config.writer; clean.disfluent = 0
                sentences.append(writer.writeSentence(plan, config: clean, rng: &rng).tokens)
            }
            words = sentences.flatMap { $0 }
        case .disfluent:
            var sentences = _sentences(words)
            let fluent = sentences.indices.filter { grammar.recognizes(sentences[$0].map(tokenizer.wordClass)) }
            if let i = fluent.isEmpty ? nil : fluent[rng.int(below: fluent.count)] {
                for _ in 0..<10 {
                    let c = writer.corrupt(sentences[i], rng: &rng)
                    if !grammar.recognizes(c.map(tokenizer.wordClass)) { sentences[i] = c; break }
                }
            }
            words = sentences.flatMap { $0 }
        }
        return Array(words.prefix(config.maxResponseTokens - 1)) + [Tokenizer.eos]
    }

    /// Splits words after each period (a trailing fragment is its own sentence).
    private func _sentences(_ words: [Int32]) -> [[Int32]] {
        var out: [[Int32]] = [], current: [Int32] = []
        for t in words {
            current.append(t)
            if tokenizer.wordClass(t) == .period { out.append(current); current = [] }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

}
