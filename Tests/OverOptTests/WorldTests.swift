// WorldTests.swift — tokenizer, prompts and their split, the writers, sequence limits,
// config decoding, and the hackability of gold on the writer's distribution.

import Foundation
import Testing
import OverOptEngine
@testable import OverOpt

/// `count` reference-writer samples on prompts drawn uniformly from all prompts.
func writerSamples(_ count: Int, style: WriterStyle = .reference, seed: UInt64 = 1) -> [(prompt: Prompt, response: [Int32])] {
    var rng = RNG(seed: seed)
    return (0..<count).map { _ in
        let p = testWorld.allPrompts[rng.int(below: testWorld.allPrompts.count)]
        return (p, testWorld.writeResponse(for: p, rng: &rng, style: style))
    }
}

@Test func vocabularyIsSmallWithSpecialsFirst() {
    let t = testWorld.tokenizer
    #expect(testWorld.vocabSize <= 250)
    #expect(t.words[0] == "<pad>" && t.words[1] == "<bos>" && t.words[2] == "<sep>" && t.words[3] == "<eos>")
    #expect(Set(t.words).count == t.vocabSize)
    #expect(t.encode("the soup was good zebra") == [t.id("the")!, t.id("soup")!, t.id("was")!, t.id("good")!, Tokenizer.unk])
}

@Test func tokenizerRoundTripsWriterOutputAndPrompts() {
    let t = testWorld.tokenizer
    for (p, y) in writerSamples(500, style: .ood) {
        #expect(t.encode(t.decode(y)) == y)
        #expect(t.encode(p.text) == p.tokens)
        let seq = testWorld.trainingSequence(prompt: p, response: y)
        #expect(t.encode(t.decode(seq)) == seq)
    }
}

@Test func promptSplitIsDeterministicDisjointAndAsDocumented() throws {
    let other = try World()
    #expect(other.allPrompts == testWorld.allPrompts)
    let train = Set(testWorld.trainPrompts.map(\.id)), heldOut = Set(testWorld.heldOutPrompts.map(\.id))
    #expect(train.isDisjoint(with: heldOut))
    #expect(train.union(heldOut).count == testWorld.allPrompts.count)
    #expect(testWorld.allPrompts.count == 1440)       // 8 topics × 2 tones × 3 tone words × 6 phrasings × 5 lengths
    #expect(testWorld.heldOutPrompts.count == 390)    // phrasing 5 (240) + 2 topic–tone pairs × 150
    #expect(Set(testWorld.allPrompts.map(\.text)).count == 1440)
    #expect(testWorld.trainPrompts.allSatisfy { $0.phrasing != 5 })
    let music = testWorld.lexicon.topics.firstIndex { $0.name == "music" }!
    #expect(!testWorld.trainPrompts.contains { $0.topic == music && $0.tone == .negative })
    #expect(testWorld.trainPrompts.contains { $0.topic == music && $0.tone == .positive })
    for (i, p) in testWorld.allPrompts.enumerated() {
        #expect(p.id == i)
        #expect(p.tokens.count <= testWorld.config.maxPromptTokens)
        #expect(testWorld.prompt(tokens: p.tokens) == p)
    }
}

@Test func writerIsReproducibleFromASeed() {
    let a = writerSamples(200, seed: 7).map(\.response)
    let b = writerSamples(200, seed: 7).map(\.response)
    let c = writerSamples(200, seed: 8).map(\.response)
    #expect(a == b)
    #expect(a != c)
    var r1 = RNG(seed: 3), r2 = RNG(seed: 3)
    #expect(testWorld.corpus(count: 50, rng: &r1) == testWorld.corpus(count: 50, rng: &r2))
}

@Test func responsesAndSequencesRespectTheLengthLimits() {
    for style in WriterStyle.allCases {
        for (p, y) in writerSamples(1000, style: style) {
            #expect(y.count <= testWorld.config.maxResponseTokens)
            #expect(y.last == Tokenizer.eos && y.filter { $0 == Tokenizer.eos }.count == 1)
            #expect(testWorld.trainingSequence(prompt: p, response: y).count <= testWorld.maxSequenceLength)
        }
    }
    #expect(testWorld.maxSequenceLength <= 64)
    var rng = RNG(seed: 5)
    for seq in testWorld.corpus(count: 500, rng: &rng) {
        #expect(seq.first == Tokenizer.bos && seq.last == Tokenizer.eos)
        let sep = seq.firstIndex(of: Tokenizer.sep)!
        #expect(testWorld.prompt(tokens: Array(seq[1..<sep])) != nil)
        #expect(seq.count <= testWorld.maxSequenceLength)
    }
}

@Test func cleanGrammarSentencesParseAndDisfluentOnesDoNot() {
    var rng = RNG(seed: 11)
    var disfluent = 0, fluent = 0
    for _ in 0..<2000 {
        let p = testWorld.allPrompts[rng.int(below: testWorld.allPrompts.count)]
        let written = testWorld.write(for: p, rng: &rng)
        for s in written.sentences {
            let ok = testWorld.grammar.recognizes(s.tokens.map(testWorld.tokenizer.wordClass))
            #expect(ok == !s.plan.disfluent, "\(testWorld.tokenizer.decode(s.tokens))")
            if s.plan.disfluent { disfluent += 1 } else { fluent += 1 }
        }
    }
    #expect(disfluent > 200 && fluent > 2000)  // both kinds were actually tested
    for (p, y) in writerSamples(500, style: .clean) {
        #expect(testWorld.gold(prompt: p, response: y).fluency == testWorld.config.gold.fluencyWeight)
    }
}

@Test func perturbedWritersScoreLowerThanTheReferenceWriter() {
    func meanGold(_ style: WriterStyle) -> Double {
        WorldStatistics(world: testWorld, samples: writerSamples(1000, style: style)).gold.mean
    }
    let reference = meanGold(.reference)
    #expect(meanGold(.clean) > reference + 1)
    for style in [WriterStyle.wrongTone, .offTopic, .wrongLength, .disfluent, .ood] {
        #expect(meanGold(style) < reference - 0.3, "\(style)")
    }
}

/// The claim that makes the world hackable: on the writer's distribution the cheap features
/// correlate positively with gold; off it (the wrong-tone writer) they reverse.
@Test func cheapFeaturesCorrelateWithGoldOnTheWriterDistribution() {
    let stats = WorldStatistics(world: testWorld, samples: writerSamples(2000))
    func corr(_ name: String) -> Double { stats.featureCorrelations[SurfaceFeatures.names.firstIndex(of: name)!] }
    #expect(corr("toneWords") > 0.15)
    #expect(corr("matchingToneWords") > 0.4)
    #expect(corr("words") > 0.1)
    #expect(corr("sentences") > 0.08)
    #expect(corr("topicWords") > 0.08)
    let offDistribution = WorldStatistics(world: testWorld, samples: writerSamples(2000, style: .wrongTone))
    #expect(offDistribution.featureCorrelations[SurfaceFeatures.names.firstIndex(of: "toneWords")!] < -0.2)
}

@Test func writerStatisticsStayCalibrated() {
    let stats = WorldStatistics.ofWriter(testWorld, count: 5000)
    print(stats.summary)
    #expect(stats.gold.mean > 2 && stats.gold.mean < 3.5)
    #expect(stats.gold.std > 1)
    #expect(stats.fluentSentences > 0.8 && stats.fluentSentences < 0.95)
    #expect(stats.offToneSentences > 0.05 && stats.offToneSentences < 0.15)
    let bon = WorldStatistics.bestOfNByGold(testWorld, n: 64, promptCount: 50)
    #expect(bon.best > bon.single + 1.5)  // room for best-of-n and PPO to improve
}

@Test func configDecodesWithDefaultsAndChangesTheFingerprint() throws {
    let json = #"{"gold": {"toneWeight": 2}, "writer": {"onTopic": 0.5}}"#
    let config = try JSONDecoder().decode(WorldConfig.self, from: Data(json.utf8))
    #expect(config.gold.toneWeight == 2 && config.gold.fluencyWeight == 1.5)
    #expect(config.writer.onTopic == 0.5 && config.writer.rightTone == WriterConfig().rightTone)
    #expect(config.prompts == PromptConfig())
    let changed = try World(config: config)
    #expect(changed.fingerprint != testWorld.fingerprint)
    #expect(try World().fingerprint == testWorld.fingerprint)
}

@Test func describePrintsSizesAndSamples() {
    let text = testWorld.describe(samples: 3)
    print(text)
    #expect(text.contains("vocab \(testWorld.vocabSize)"))
    #expect(text.contains("1050 train"))
    #expect(text.components(separatedBy: "gold ").count - 1 >= 3)
}
