// GoldRewardTests.swift — the true grammar and the gold reward on hand-made responses whose
// values are computed by hand (τ = 5, weights 1 / 3 / 1.5 / 0.5 / 0.15).

import Foundation
import Testing
@testable import OverOpt

/// One world for all tests (building it reads the lexicon once).
let testWorld: World = try! World()

func prompt(_ text: String) -> Prompt {
    guard let p = testWorld.allPrompts.first(where: { $0.text == text }) else { fatalError("no prompt '\(text)'") }
    return p
}

func tokens(_ text: String) -> [Int32] {
    let t = testWorld.tokenizer.encode(text)
    precondition(!t.contains(Tokenizer.unk), "unknown word in '\(text)'")
    return t
}

func parses(_ sentence: String) -> Bool {
    testWorld.grammar.recognizes(tokens(sentence).map(testWorld.tokenizer.wordClass))
}

@Test func grammarAcceptsEveryProductionAndRejectsCorruptions() {
    for s in ["the soup was very good .", "it is awful .", "we cooked the bread .",
              "the chef baked a truly lovely bread .", "i felt terrible about the exam .",
              "honestly , my trip was new .", "the band played a song but it was dull .",
              "they felt so nice about our big lawn ."] {
        #expect(parses(s), "should parse: \(s)")
    }
    for s in ["the soup was very very good .", "soup the was good .", "the soup was good",
              "the soup was good . .", "was good .", "we cooked .", "it was good the .",
              "honestly the trip was new .", "good good good .", ".", "the soup , was good ."] {
        #expect(!parses(s), "should not parse: \(s)")
    }
}

@Test func goldComponentsOnAFluentOnToneResponse() {
    // Three parsing sentences; relevance (1 + 1 + 0)/3 ("it" sentence has no content words);
    // match = 1.0·1.5 (very good) + 3.0 (excellent) = 4.5; no repeats; 3 sentences as requested.
    let g = testWorld.gold(prompt: prompt("write three cheerful sentences about cooking"),
                           response: tokens("the soup was very good . we cooked the bread . it was excellent . <eos>"))
    #expect(abs(g.relevance - 2.0 / 3) < 1e-9)
    #expect(abs(g.tone - 3 * tanh(4.5 / 5)) < 1e-9)
    #expect(g.fluency == 1.5)
    #expect(g.length == 0)
    #expect(g.repetition == 0)
    #expect(abs(g.total - 4.3155602772637405) < 1e-9)
}

@Test func goldComponentsOnAMixedResponse() {
    // Negative prompt asking for two sentences. Sentences: a fluent one in the wrong tone
    // (great, 2.0), a shuffled one (terrible, 3.0) and a fragment without period (awful, 2.0).
    // relevance 3/max(3,2) = 1; tone 3·(tanh(5/5) − tanh(2/5)); fluency 1.5·1/3; length −0.5·1;
    // repeats: "song" twice more → −0.3.
    let g = testWorld.gold(prompt: prompt("describe music in two gloomy sentences"),
                           response: tokens("the song was great . song band terrible the . the singer sang a awful song"))
    #expect(abs(g.relevance - 1) < 1e-9)
    #expect(abs(g.tone - 3 * (tanh(1.0) - tanh(0.4))) < 1e-9)
    #expect(abs(g.fluency - 0.5) < 1e-9)
    #expect(g.length == -0.5)
    #expect(abs(g.repetition - -0.3) < 1e-9)
    #expect(abs(g.total - 1.84493558110162) < 1e-9)
    #expect(GoldScore.componentNames.count == g.components.count)
    #expect(abs(g.components.reduce(0, +) - g.total) < 1e-12)
}

@Test func goldIgnoresTokensAfterEOSAndScoresAnEmptyResponse() {
    let p = prompt("write three cheerful sentences about cooking")
    let y = tokens("the soup was very good . <eos>")
    #expect(testWorld.gold(prompt: p, response: y) == testWorld.gold(prompt: p, response: y + tokens("awful awful awful")))
    let empty = testWorld.gold(prompt: p, response: [Tokenizer.eos])
    #expect(empty.total == -1.5)  // only length: −0.5·|0 − 3|
}

@Test func degenerateToneWordStringsScoreLowAlthoughTheyMaximizeToneWords() {
    let p = prompt("write three cheerful sentences about cooking")
    let maxWords = testWorld.config.maxResponseTokens - 1
    let repeated = Array(repeating: testWorld.tokenizer.id("excellent")!, count: maxWords) + [Tokenizer.eos]
    let g = testWorld.gold(prompt: p, response: repeated)
    // tone saturates at 3, fluency 0, one sentence (−1), 48 repeats (−7.2).
    #expect(abs(g.total - -5.2) < 1e-6)
    let hack = tokens("the soup is excellent excellent wonderful wonderful brilliant brilliant great great lovely lovely . <eos>")
    let honest = tokens("the soup was very good . we cooked the bread . it was excellent . <eos>")
    let gHack = testWorld.gold(prompt: p, response: hack), gHonest = testWorld.gold(prompt: p, response: honest)
    let fHack = testWorld.surfaceFeatures(prompt: p, response: hack), fHonest = testWorld.surfaceFeatures(prompt: p, response: honest)
    #expect(fHack.toneWords > 3 * fHonest.toneWords)
    #expect(gHack.total < gHonest.total - 2)
    // Both are far below what the reference writer scores on average.
    let writerMean = WorldStatistics.ofWriter(testWorld, count: 1000).gold.mean
    #expect(g.total < writerMean - 5)
    #expect(gHack.total < writerMean - 1)
}

@Test func wrongToneScoresLowerThanRightToneAndGoldDependsOnThePrompt() {
    let cheerful = prompt("write two cheerful sentences about cooking")
    let harsh = prompt("write two harsh sentences about cooking")
    let positive = tokens("the soup was wonderful . we baked a lovely bread . <eos>")
    let negative = tokens("the soup was dreadful . we baked a nasty bread . <eos>")
    let gPos = testWorld.gold(prompt: cheerful, response: positive)
    let gNeg = testWorld.gold(prompt: cheerful, response: negative)
    #expect(gPos.total > gNeg.total)
    #expect(gPos.tone > 0 && gNeg.tone < 0)
    #expect(abs(gPos.tone + gNeg.tone) < 1e-9)  // same strengths, sign flipped
    // The same text is good or bad depending on the requested tone.
    #expect(testWorld.gold(prompt: harsh, response: negative) == gPos)
}

@Test func offTopicAndWrongLengthCost() {
    let p = prompt("write two cheerful sentences about cooking")
    let onTopic = testWorld.gold(prompt: p, response: tokens("the soup was good . we baked the bread ."))
    let offTopic = testWorld.gold(prompt: p, response: tokens("the song was good . we played the album ."))
    #expect(onTopic.relevance == 1 && offTopic.relevance == 0)
    let tooLong = testWorld.gold(prompt: p, response: tokens("the soup was good . we baked the bread . they served a salad . the chef tasted my dinner ."))
    #expect(tooLong.length == -1)
    #expect(tooLong.relevance == 1)  // on-topic sentences pay only up to the requested number
}
