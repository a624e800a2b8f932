// Grammar.swift — the true grammar of response sentences: one context-free grammar used
// both to generate (by the reference writer) and to recognize (by the gold reward's fluency).
//
//   Sentence        → Clause "."  |  Opener "," Clause "."  |  Clause Connective Clause "."
//   Clause          → Subject Copula AdjectivePhrase              "the soup was very good"
//                   | Pronoun Verb NounPhrase                     "we cooked the soup"
//                   | NounPhrase Verb NounPhrase                  "the chef baked a lovely bread"
//                   | Pronoun FeelVerb AdjectivePhrase About NounPhrase   "i felt awful about the exam"
//   Subject         → NounPhrase | "it"
//   NounPhrase      → Determiner Noun | Determiner AdjectivePhrase Noun
//   AdjectivePhrase → Adjective | Intensifier Adjective
//   Adjective       → ToneAdjective | NeutralAdjective
//
// Terminals are word classes (every word has exactly one), so recognition works on the
// sequence of classes. The recognizer is exact: a memoized top-down search that computes,
// for each (nonterminal, start), the set of end positions it can derive (a 64-bit mask);
// it is correct for any grammar without left recursion or empty productions, like this one.
// Semantics (topic, tone) are not part of the grammar: "the soup was terrible" on a
// cheerful prompt is grammatical; the gold reward judges it elsewhere.

/// A context-free grammar over word classes.
public struct Grammar: Sendable {
    public enum Nonterminal: Int, Sendable, CaseIterable {
        case sentence, clause, subject, nounPhrase, adjectivePhrase, adjective
    }

    public enum Symbol: Sendable, Hashable {
        case word(WordClass)
        case rule(Nonterminal)
    }

    /// productions[n.rawValue] = the right-hand sides of nonterminal n, in a fixed order
    /// (the reference writer's choice weights refer to this order).
    public let productions: [[[Symbol]]]

    /// Longest sequence the recognizer accepts (end positions live in a 64-bit mask).
    public static let maxSentenceLength = 63

    /// The grammar of the world (see the file header).
    public static let standard: Grammar = {
        func w(_ c: WordClass) -> Symbol { .word(c) }
        func r(_ n: Nonterminal) -> Symbol { .rule(n) }
        var p = [[[Symbol]]](repeating: [], count: Nonterminal.allCases.count)
        p[Nonterminal.sentence.rawValue] = [
            [r(.clause), w(.period)],
            [w(.opener), w(.comma), r(.clause), w(.period)],
            [r(.clause), w(.connective), r(.clause), w(.period)],
        ]
        p[Nonterminal.clause.rawValue] = [
            [r(.subject), w(.copula), r(.adjectivePhrase)],
            [w(.pronoun), w(.verb), r(.nounPhrase)],
            [r(.nounPhrase), w(.verb), r(.nounPhrase)],
            [w(.pronoun), w(.feelVerb), r(.adjectivePhrase), w(.about), r(.nounPhrase)],
        ]
        p[Nonterminal.subject.rawValue] = [[r(.nounPhrase)], [w(.it)]]
        p[Nonterminal.nounPhrase.rawValue] = [
            [w(.determiner), w(.noun)],
            [w(.determiner), r(.adjectivePhrase), w(.noun)],
        ]
        p[Nonterminal.adjectivePhrase.rawValue] = [[r(.adjective)], [w(.intensifier), r(.adjective)]]
        p[Nonterminal.adjective.rawValue] = [[w(.toneAdjective)], [w(.neutralAdjective)]]
        return Grammar(productions: p)
    }()

    /// True iff the classes form exactly one `start` (default: one sentence, period included).
    public func recognizes<C: RandomAccessCollection>(_ classes: C, start: Nonterminal = .sentence) -> Bool
    where C.Element == WordClass, C.Index == Int {
        let n = classes.count
        guard n > 0, n <= Grammar.maxSentenceLength else { return false }
        let seq = Array(classes)
        var memo = [UInt64?](repeating: nil, count: Nonterminal.allCases.count * (n + 1))
        let ends = _ends(start, from: 0, seq, &memo)
        return ends & (UInt64(1) << UInt64(n)) != 0
    }

    /// Bit p of the result is set iff `nt` derives seq[from..<p].
    private func _ends(_ nt: Nonterminal, from start: Int, _ seq: [WordClass], _ memo: inout [UInt64?]) -> UInt64 {
        let key = nt.rawValue * (seq.count + 1) + start
        if let m = memo[key] { return m }
        var result: UInt64 = 0
        for rhs in productions[nt.rawValue] {
            var positions: UInt64 = UInt64(1) << UInt64(start)
            for symbol in rhs {
                var next: UInt64 = 0
                var rest = positions
                while rest != 0 {
                    let p = rest.trailingZeroBitCount
                    rest &= rest - 1
                    switch symbol {
                    case .word(let c):
                        if p < seq.count && seq[p] == c { next |= UInt64(1) << UInt64(p + 1) }
                    case .rule(let sub):
                        if p < seq.count { next |= _ends(sub, from: p, seq, &memo) }
                    }
                }
                positions = next
                if positions == 0 { break }
            }
            result |= positions
        }
        memo[key] = result
        return result
    }
}
