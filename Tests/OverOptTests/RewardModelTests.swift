// Proxy reward models through the whole tiny model: gradient checks of every objective
// (reward losses, GRM regularizers, LoRA), WARM averaging, the frozen variant, label noise,
// checkpoints, and a short end-to-end training that must beat chance clearly.
import Foundation
import Testing
import OverOpt
import OverOptEngine
import OverOptHDF5
import TestSupport

/// A tiny "base policy" with weights scaled up so every path carries signal.
func tinyBase(seed: UInt64 = 5, vocab: Int = 13, context: Int = 12, width: Int = 8) -> Transformer {
    tinyTransformer(TransformerConfig(vocabSize: vocab, contextLength: context, width: width, layers: 2, heads: 2), seed: seed)
}

/// Three tiny pairs: [BOS] prompt [SEP] response, responses starting at index 3 or 4.
func tinyPairs() -> EncodedPairs {
    EncodedPairs(chosen: [[1, 5, 2, 7, 9, 3], [1, 6, 8, 2, 4, 4, 10, 3], [1, 9, 2, 11, 3]],
                 rejected: [[1, 5, 2, 12, 6, 6, 3], [1, 6, 8, 2, 5, 3], [1, 9, 2, 7, 7, 8, 12, 3]],
                 responseStart: [3, 4, 3], goldGap: [0.5, 1.5, 0.8])
}

/// Worst relative mismatch between analytic and central-difference gradients over a
/// sample of every trainable tensor: max |a − f| / max(floor, |a| + |f|).
func worstGradientError(_ m: Transformer, loss: () -> Double, backward: () -> Void) -> (Double, String) {
    m.zeroGrad()
    backward()
    let analytic = m.grads.array
    var rng = RNG(seed: 99)
    var worst: (Double, String) = (0, "")
    let eps: Float = 1e-2
    for t in m.layout.tensors where !m.frozen.contains(t.group) {
        for _ in 0..<5 {
            let i = t.offset + rng.int(below: t.count)
            let orig = m.params[i]
            m.params[i] = orig + eps; let lp = loss()
            m.params[i] = orig - eps; let lm = loss()
            m.params[i] = orig
            let fd = (lp - lm) / (2 * Double(eps)), a = Double(analytic[i])
            let e = abs(a - fd) / max(2e-2, abs(a) + abs(fd))
            if e > worst.0 { worst = (e, t.name) }
        }
    }
    return worst
}

/// Gradient check of `pairObjectiveStep` for a config, through the whole model.
/// With `training`, dropout is on with the same masks in every evaluation.
func checkObjective(_ cfg: RewardModelConfig, training: Bool = false, label: String) {
    let base = tinyBase()
    let m = makeProxyMember(base: base, config: cfg, headRNG: RNG(seed: 3))
    // Non-zero adapters so that every LoRA tensor has a gradient.
    var r = RNG(seed: 17)
    for t in m.layout.tensors where t.group == .lora { for i in 0..<t.count { m.params[t.offset + i] = 0.3 * r.normal() } }
    var pairs = tinyPairs()
    pairs.referenceChosen = [-9, -12, -8]; pairs.referenceRejected = [-11, -10, -13]
    let idx = [0, 1, 2]
    func run(_ backward: Bool) -> Double {
        var rng = RNG(seed: 4)
        return pairObjectiveStep(model: m, config: cfg, pairs: pairs, indices: idx, training: training,
                                 backward: backward, rng: &rng).loss
    }
    let (e, name) = worstGradientError(m, loss: { run(false) }, backward: { _ = run(true) })
    #expect(e < 3e-2, "\(label): gradient mismatch \(e) in \(name)")
}

@Suite struct RewardModelGradientTests {
    @Test(arguments: [RewardObjective.bt, .margin, .labelSmoothing, .frozen])
    func rewardObjectiveGradient(objective: RewardObjective) {
        var c = RewardModelConfig()
        c.objective = objective
        c.headHidden = 5  // few ReLU units: finite differences rarely straddle a kink
        checkObjective(c, label: objective.rawValue)
    }

    @Test(arguments: GRMRegularizer.allCases)
    func grmGradientThroughBothHeads(regularizer: GRMRegularizer) {
        var c = RewardModelConfig()
        c.objective = .grm; c.regularizer = regularizer; c.alpha = 0.5; c.beta = 0.5
        c.head = .mlp; c.headHidden = 5
        checkObjective(c, label: "grm-\(regularizer.rawValue)")
    }

    @Test func loraGradientWithDropout() {
        var c = RewardModelConfig()
        c.objective = .grm; c.alpha = 0.5; c.finetune = .lora; c.loraRank = 2; c.loraAlpha = 3; c.loraDropout = 0.3
        c.head = .mlp; c.headHidden = 5; c.headDropout = 0.2
        checkObjective(c, training: true, label: "grm-sft-lora with dropout")
        c.objective = .bt
        checkObjective(c, training: true, label: "bt-lora with dropout")
    }

    @Test func loraTrainsOnlyAdaptersAndHead() {
        var c = RewardModelConfig()
        c.finetune = .lora
        let m = makeProxyMember(base: tinyBase(), config: c, headRNG: RNG(seed: 1))
        var rng = RNG(seed: 0)
        m.zeroGrad()
        pairObjectiveStep(model: m, config: c, pairs: tinyPairs(), indices: [0, 1, 2], training: true, backward: true, rng: &rng)
        for t in m.layout.tensors {
            let nonzero = (t.offset..<(t.offset + t.count)).contains { m.grads[$0] != 0 }
            if t.group == .trunk || t.group == .lmHead { #expect(!nonzero, "\(t.name) got a gradient") }
        }
        // B starts at 0, so A has no gradient at first; B and the head do.
        #expect((0..<m.layout["h1.lora_v_B"]!.count).contains { m.grads[m.layout["h1.lora_v_B"]!.offset + $0] != 0 })
    }
}

@Suite struct LoRATests {
    @Test func mergedModelGivesTheSameRewards() {
        let m = Transformer(config: tinyBase().config, heads: HeadConfig(reward: .linear), lora: LoRAConfig(rank: 3, alpha: 6, dropout: 0.1))
        m.copyParameters(from: tinyBase())
        var rng = RNG(seed: 2)
        m.initializeHeads(rng: &rng)
        for t in m.layout.tensors where t.group == .lora { for i in 0..<t.count { m.params[t.offset + i] = 0.3 * rng.normal() } }
        let batch = TokenBatch(sequences: [[1, 5, 2, 7, 9, 3], [1, 6, 8, 2, 4, 4, 10, 3]])
        m.forward(batch)
        let withAdapters = m.rewardForward()
        let merged = m.mergeLoRA()
        #expect(merged.lora == nil && merged.layout.tensors.allSatisfy { $0.group != .lora })
        merged.forward(batch)
        let mergedRewards = merged.rewardForward()
        for (a, b) in zip(withAdapters, mergedRewards) { #expect(abs(a - b) < 1e-5, "\(a) vs \(b)") }
        // Adapters changed the output (the check is not vacuous).
        let plain = Transformer(config: m.config, heads: m.heads)
        plain.copyParameters(from: m)
        plain.forward(batch)
        #expect(zip(plain.rewardForward(), withAdapters).contains { abs($0 - $1) > 1e-3 })
    }

    @Test func freshAdaptersLeaveTheModelUnchanged() {
        let base = tinyBase()
        let m = Transformer(config: base.config, heads: .languageModel, lora: LoRAConfig(rank: 4, alpha: 8, dropout: 0))
        m.copyParameters(from: base)
        var rng = RNG(seed: 8)
        m.initializeLoRA(rng: &rng)
        #expect(m.tensor("h0.lora_q_A").contains { $0 != 0 } && m.tensor("h0.lora_q_B").allSatisfy { $0 == 0 })
        let batch = TokenBatch(sequences: [[1, 5, 2, 7, 9, 3]])
        let mask = [Float](repeating: 1, count: batch.T)
        #expect(m.tokenLogProbs(batch, mask: mask).logp == base.tokenLogProbs(batch, mask: mask).logp)
    }

    @Test func checkpointRoundTripIsBitExactWithAdapters() throws {
        let m = Transformer(config: tinyBase().config, heads: HeadConfig(reward: .mlp(hidden: 5), rewardDropout: 0.1),
                            lora: LoRAConfig(rank: 2, alpha: 4, dropout: 0.05))
        var rng = RNG(seed: 6)
        m.initialize(rng: &rng)
        for t in m.layout.tensors where t.group == .lora { for i in 0..<t.count { m.params[t.offset + i] = rng.normal() } }
        let path = NSTemporaryDirectory() + "overopt-rm-\(UUID().uuidString).h5"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let proxy = ProxyRewardModel(name: "bt-lora", members: [m, tinyProxyMember(seed: 2)], combiner: .uwo, uwoLambda: 0.7)
        try writeAtomically(to: path) { f in
            try m.save(to: f.root.createGroup("model"))
            try proxy.save(to: f.root.createGroup("proxy"))
        }
        let file = try H5File.open(path)
        let loaded = try Transformer.load(from: file.root.group("model"))
        #expect(loaded.lora?.config == m.lora?.config && loaded.heads == m.heads && loaded.config == m.config)
        #expect(loaded.layout == m.layout)
        #expect(loaded.params.array == m.params.array)
        let p = try ProxyRewardModel.load(from: file.root.group("proxy"))
        #expect(p.name == "bt-lora" && p.combiner == .uwo && p.uwoLambda == 0.7 && p.members.count == 2)
        #expect(p.members[1].params.array == proxy.members[1].params.array)
    }
}

/// A tiny reward model (linear head) from the tiny base.
func tinyProxyMember(seed: UInt64) -> Transformer {
    makeProxyMember(base: tinyBase(), config: RewardModelConfig(), headRNG: RNG(seed: seed))
}

@Suite struct RewardModelVariantTests {
    @Test func warmAveragingIsTheElementwiseMean() {
        let ms = (0..<3).map { tinyProxyMember(seed: UInt64($0)) }
        for (k, m) in ms.enumerated() { for i in 0..<m.parameterCount { m.params[i] += Float(k) * 0.01 * Float(i % 7) } }
        let avg = averageWeights(ms)
        for i in 0..<avg.parameterCount {
            let mean = (Double(ms[0].params[i]) + Double(ms[1].params[i]) + Double(ms[2].params[i])) / 3
            #expect(avg.params[i] == Float(mean))
        }
    }

    @Test func ensembleScoresCombineMemberScores() throws {
        let world = try World()
        let ms = (0..<3).map { _ in
            makeProxyMember(base: Transformer(config: TransformerConfig(vocabSize: world.vocabSize, contextLength: 64, width: 8,
                                                                        layers: 1, heads: 2)),
                            config: RewardModelConfig(), headRNG: RNG(seed: 0))
        }
        for (k, m) in ms.enumerated() { m.setTensor("rh_b", [Float(k * k)]) }   // member scores differ by 0, 1, 4
        var rng = RNG(seed: 1)
        let prompts = Array(world.trainPrompts.prefix(4))
        let responses = prompts.map { world.writeResponse(for: $0, rng: &rng) }
        for combiner in EnsembleCombiner.allCases {
            let proxy = ProxyRewardModel(name: "e", members: ms, combiner: combiner, uwoLambda: 0.5)
            let member = proxy.memberScores(world: world, prompts: prompts, responses: responses)
            let combined = proxy.score(world: world, prompts: prompts, responses: responses)
            for i in 0..<prompts.count {
                let s = member.map { $0[i] }
                #expect(abs(combined[i] - combineEnsemble(s, combiner: combiner, uwoLambda: 0.5)) < 1e-12)
            }
        }
    }

    @Test func frozenLeavesTheTrunkBitIdentical() throws {
        var c = RewardModelConfig()
        c.objective = .frozen; c.headHidden = 6; c.batchSize = 2; c.epochs = 3; c.learningRate = 1e-2
        let base = tinyBase()
        let m = makeProxyMember(base: base, config: c, headRNG: RNG(seed: 1))
        let head0 = m.tensor("rh_fc_w")
        _ = try trainProxyMember(m, config: c, pairs: tinyPairs(), orderRNG: RNG(seed: 2), dropoutRNG: RNG(seed: 3),
                             label: "frozen", log: { _ in })
        for t in base.layout.tensors { #expect(m.tensor(t.name) == base.tensor(t.name), "\(t.name) changed") }
        #expect(m.tensor("rh_fc_w") != head0)
    }

    @Test func labelNoiseReachesTheLoss() throws {
        // The same two responses, labelled by gold and then flipped by noise.
        let world = try World()
        var rng = RNG(seed: 3)
        let prompt = world.trainPrompts[7]
        let good = world.writeResponse(for: prompt, rng: &rng)
        let bad = world.perturb(good, for: prompt, kind: .flipTone, rng: &rng)
        let ga = world.gold(prompt: prompt, response: good).total, gb = world.gold(prompt: prompt, response: bad).total
        #expect(ga != gb)
        let clean = PreferencePair.labelled(prompt: prompt, a: good, b: bad, goldA: ga, goldB: gb, flip: false, kind: .baseVsPerturbed)
        let noisy = PreferencePair.labelled(prompt: prompt, a: good, b: bad, goldA: ga, goldB: gb, flip: true, kind: .baseVsPerturbed)
        #expect(noisy.flipped && noisy.chosen == clean.rejected)
        let base = Transformer(config: TransformerConfig(vocabSize: world.vocabSize, contextLength: 64, width: 8, layers: 1, heads: 2))
        var r0 = RNG(seed: 1)
        base.initialize(rng: &r0)
        let m = makeProxyMember(base: base, config: RewardModelConfig(), headRNG: RNG(seed: 2))
        func lossAndHeadGradient(_ p: PreferencePair) -> (Double, [Float], Double) {
            var rng = RNG(seed: 0)
            m.zeroGrad()
            let pairs = EncodedPairs(world: world, pairs: [p])
            let l = pairObjectiveStep(model: m, config: RewardModelConfig(), pairs: pairs, indices: [0], training: false,
                                      backward: true, rng: &rng).loss
            m.forward(TokenBatch(sequences: pairs.chosen + pairs.rejected))
            let r = m.rewardForward()
            return (l, Array(UnsafeBufferPointer(start: m.grads.ptr + m.layout["rh_w"]!.offset, count: 8)), Double(r[0] - r[1]))
        }
        let (lc, gc, dc) = lossAndHeadGradient(clean)
        let (ln, gn, _) = lossAndHeadGradient(noisy)
        // L(flipped) − L(clean) = Δr, and the head's gradient points the other way.
        #expect(abs((ln - lc) - dc) < 1e-5)
        let dot = zip(gc, gn).map { Double($0 * $1) }.reduce(0, +)
        #expect(dot < 0)
    }
}

@Suite struct RewardModelEndToEndTests {
    /// chosen = a reference-writer response, rejected = its tone flipped; gold decides.
    func flipTonePairs(world: World, count: Int, rng: inout RNG, kind: Perturbation = .flipTone) -> [PreferencePair] {
        (0..<count).map { _ in
            let p = world.trainPrompts[rng.int(below: world.trainPrompts.count)]
            let a = world.writeResponse(for: p, rng: &rng)
            let b = world.perturb(a, for: p, kind: kind, rng: &rng)
            return PreferencePair.labelled(prompt: p, a: a, b: b, goldA: world.gold(prompt: p, response: a).total,
                                           goldB: world.gold(prompt: p, response: b).total, flip: false, kind: .baseVsPerturbed)
        }
    }

    @Test func tinyTrainingBeatsChanceClearly() throws {
        let world = try World()
        var rng = RNG(seed: 11)
        let data = PreferenceDataset(train: flipTonePairs(world: world, count: 400, rng: &rng),
                                     idEval: flipTonePairs(world: world, count: 200, rng: &rng), oodEval: [])
        let base = Transformer(config: TransformerConfig(vocabSize: world.vocabSize, contextLength: 64, width: 32, layers: 2, heads: 2))
        var r0 = RNG(seed: 1)
        base.initialize(rng: &r0)
        var c = RewardModelConfig()
        c.epochs = 4; c.batchSize = 16; c.learningRate = 1e-2  // a random-init trunk needs a high rate
        var lines: [String] = []
        let t0 = monotonicSeconds()
        let result = try trainRewardModel(config: c, base: base, world: world, data: data, seed: 1) { lines.append($0) }
        print(lines.joined(separator: "\n"))
        print("end-to-end: \(monotonicSeconds() - t0) s")
        #expect(result.idAccuracy > 0.7, "ID accuracy \(result.idAccuracy)")
        #expect(result.curves[0].step.count == 4 * 25)
    }
}

@Suite(.serialized) struct DataParallelStepTests {
    /// Ten tiny pairs (the three of `tinyPairs`, varied).
    func tenPairs() -> EncodedPairs {
        let t = tinyPairs()
        var p = EncodedPairs(chosen: [], rejected: [], responseStart: [], goldGap: [])
        for i in 0..<10 {
            let k = i % 3, bump = Int32(i / 3)
            p.chosen.append(t.chosen[k].enumerated().map { $0.offset == 3 ? 4 + bump : $0.element })
            p.rejected.append(t.rejected[k])
            p.responseStart.append(t.responseStart[k])
            p.goldGap.append(t.goldGap[k] + 0.1 * Double(i))
        }
        return p
    }

    /// The step split over two replicas equals one pass over the whole batch (no dropout:
    /// same loss, accuracy and gradient up to float rounding), and is bitwise the same at 1
    /// and 2 threads.
    @Test(arguments: ["bt", "grm-sft"])
    func twoReplicasEqualOnePass(variant: String) {
        var c = RewardModelConfig()
        if variant == "grm-sft" { c.objective = .grm; c.regularizer = .sft; c.alpha = 0.5 }
        let pairs = tenPairs(), idx = Array(0..<10)
        let m = makeProxyMember(base: tinyBase(), config: c, headRNG: RNG(seed: 3))
        var r1 = RNG(seed: 1)
        m.zeroGrad()
        let one = pairObjectiveStep(model: m, config: c, pairs: pairs, indices: idx, training: true, backward: true, rng: &r1)
        let g1 = m.grads.array
        var results: [(StepStatistics, [Float])] = []
        let previous = engineThreadCount()
        defer { setEngineThreads(previous) }
        for threads in [1, 2] {
            setEngineThreads(threads)
            let replicas = [Transformer(replicaOf: m), Transformer(replicaOf: m)]
            var r2 = RNG(seed: 1)
            m.zeroGrad()
            let st = dataParallelPairStep(model: m, replicas: replicas, config: c, pairs: pairs, indices: idx, rng: &r2)
            results.append((st, m.grads.array))
        }
        let (two, g2) = results[1]
        #expect(abs(one.loss - two.loss) < 1e-6 && abs(one.rewardLoss - two.rewardLoss) < 1e-6)
        #expect(abs(one.regularizerLoss - two.regularizerLoss) < 1e-6)
        #expect(one.accuracy == two.accuracy)
        let scale = g1.map { abs($0) }.max()!
        let err = zip(g1, g2).map { abs($0 - $1) }.max()!
        print("\(variant): two replicas vs one pass: loss \(one.loss) vs \(two.loss), max gradient difference \(err) (scale \(scale))")
        #expect(scale > 0 && err <= 1e-5 * scale)
        #expect(results[0].1 == results[1].1, "1 and 2 threads differ")
        #expect(results[0].0.loss == results[1].0.loss)
    }
}

@Suite(.serialized) struct LeanScoringTests {
    /// The decoder's lean forward (packed weights, last layer only for the last token) gives
    /// the training forward's scores to rounding, for both heads; a sequence's score does not
    /// depend on the chunk it is scored in, nor on the thread count.
    @Test(arguments: [RewardHeadChoice.linear, .mlp])
    func leanScoresMatchTheTrainingForward(head: RewardHeadChoice) {
        var c = RewardModelConfig()
        c.head = head
        let m = makeProxyMember(base: tinyBase(), config: c, headRNG: RNG(seed: 3))
        var rng = RNG(seed: 8)
        let seqs = (0..<70).map { i in [Int32(1)] + (0..<(1 + i % 11)).map { _ in Int32(2 + rng.int(below: 11)) } }
        var reference: [Float] = []
        for start in stride(from: 0, to: seqs.count, by: 16) {
            m.forward(TokenBatch(sequences: Array(seqs[start..<min(seqs.count, start + 16)])))
            reference += m.rewardForward()
        }
        let previous = engineThreadCount()
        defer { setEngineThreads(previous) }
        setEngineThreads(1)
        let lean = m.rewardScores(seqs)
        let worst = zip(lean, reference).map { abs($0 - $1) / (1 + abs($1)) }.max()!
        print("lean vs training forward (\(head)): max relative difference \(worst)")
        #expect(worst < 1e-5)
        #expect(Set(lean).count > 10)   // the scores differ between sequences
        #expect(m.rewardScores(seqs, chunkSize: 7) == lean)
        setEngineThreads(2)
        #expect(m.rewardScores(seqs) == lean)
        #expect(scoreSequences(m, seqs, batchSize: 32) == lean.map(Double.init))
    }

    /// Response log-probabilities by the lean forward match the training forward's, including
    /// responses that start at the first token and sequences with no response tokens.
    @Test func leanResponseLogProbsMatchTheTrainingForward() {
        let m = tinyBase()
        var rng = RNG(seed: 9)
        let seqs = (0..<70).map { i in [Int32(1)] + (0..<(1 + i % 11)).map { _ in Int32(2 + rng.int(below: 11)) } }
        let starts = seqs.enumerated().map { i, s in [0, 1, s.count / 2, s.count, s.count + 2][i % 5] }
        var reference: [Double] = []
        for start in stride(from: 0, to: seqs.count, by: 16) {
            let r = start..<min(seqs.count, start + 16)
            let batch = TokenBatch(sequences: Array(seqs[r]))
            let mask = responseLossMask(B: batch.B, T: batch.T, responseStart: Array(starts[r]), lengths: batch.lengths)
            reference += m.tokenLogProbs(batch, mask: mask).sequenceLogProbs(mask: mask, B: batch.B, T: batch.T)
        }
        let previous = engineThreadCount()
        defer { setEngineThreads(previous) }
        setEngineThreads(1)
        let lean = m.responseLogProbs(seqs, responseStart: starts)
        let worst = zip(lean, reference).map { abs($0 - $1) / (1 + abs($1)) }.max()!
        print("lean vs training forward, response log-probs: max relative difference \(worst)")
        #expect(worst < 1e-5)
        let empty = seqs.indices.filter { starts[$0] >= seqs[$0].count }
        #expect(!empty.isEmpty && empty.allSatisfy { lean[$0] == 0 })                      // empty responses sum to 0
        #expect(lean.filter { $0 < -1 }.count > 20)
        #expect(m.responseLogProbs(seqs, responseStart: starts, chunkSize: 7) == lean)
        setEngineThreads(2)
        #expect(m.responseLogProbs(seqs, responseStart: starts) == lean)
    }
}
