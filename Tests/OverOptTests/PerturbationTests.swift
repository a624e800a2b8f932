// PerturbationTests.swift — each perturbation changes exactly the gold component it targets.

import Testing
import OverOptEngine
@testable import OverOpt

@Test func flipToneNegatesToneAndKeepsEverythingElse() {
    var rng = RNG(seed: 21)
    var flipped = 0
    for (p, y) in writerSamples(1000) {
        let g = testWorld.gold(prompt: p, response: y)
        let f = testWorld.gold(prompt: p, response: testWorld.perturb(y, for: p, kind: .flipTone, rng: &rng))
        #expect(abs(f.tone + g.tone) < 1e-9)
        #expect(f.relevance == g.relevance && f.fluency == g.fluency && f.length == g.length && f.repetition == g.repetition)
        if g.tone != 0 { flipped += 1 }
    }
    #expect(flipped > 700)
    let p = prompt("write two cheerful sentences about cooking")
    #expect(testWorld.tokenizer.decode(testWorld.perturb(tokens("the soup was very excellent . <eos>"), for: p, kind: .flipTone, rng: &rng))
            == "the soup was very terrible . <eos>")
}

@Test func changeTopicRemovesRelevanceAndKeepsGrammarAndTone() {
    var rng = RNG(seed: 22)
    for (p, y) in writerSamples(1000) {
        let g = testWorld.gold(prompt: p, response: y)
        let c = testWorld.gold(prompt: p, response: testWorld.perturb(y, for: p, kind: .changeTopic, rng: &rng))
        #expect(c.relevance == 0)
        #expect(c.tone == g.tone && c.fluency == g.fluency && c.length == g.length)
    }
}

@Test func changeLengthAndDisfluencyChangeTheirComponents() {
    var rng = RNG(seed: 23)
    var lessFluent = 0, fluentBefore = 0
    for (p, y) in writerSamples(1000) {
        let a = testWorld.analyze(prompt: p, response: y)
        let l = testWorld.perturb(y, for: p, kind: .changeLength, rng: &rng)
        let la = testWorld.analyze(prompt: p, response: l)
        if l.count < testWorld.config.maxResponseTokens {  // not cut by the token budget
            #expect(abs(la.sentences.count - a.sentences.count) == 1)
        }
        let d = testWorld.perturb(y, for: p, kind: .disfluent, rng: &rng)
        #expect(d.count <= testWorld.config.maxResponseTokens && d.last == Tokenizer.eos)
        if a.sentences.contains(where: \.parses) {
            fluentBefore += 1
            if GoldReward.fluency(testWorld.analyze(prompt: p, response: d).sentences) < GoldReward.fluency(a.sentences) {
                lessFluent += 1
            }
        }
    }
    #expect(lessFluent > fluentBefore * 9 / 10)
}
