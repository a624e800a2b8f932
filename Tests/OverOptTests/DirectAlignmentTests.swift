// DirectAlignmentTests.swift — DPO's and IPO's losses against hand values and finite
// differences; the trainer raises the policy's preference for the chosen responses of toy
// pairs, moves away from the reference and gives the same curves at 1 and 2 threads.

import Foundation
import Testing
import OverOptEngine
import OverOptHDF5
@testable import OverOpt

@Test func dpoAndIPOLossesMatchHandValues() {
    // h = (−3 + 3.5) − (−4 + 3.5) = 1. DPO, β = 0.5: L = log(1 + e^{−0.5}), σ(−0.5) = 0.3775406688.
    let d = directAlignmentLoss(.dpo, beta: 0.5, policyChosen: -3, policyRejected: -4, referenceChosen: -3.5, referenceRejected: -3.5)
    #expect(abs(d.loss - 0.4740769841801067) < 1e-12 && d.margin == 1)
    #expect(abs(d.gradChosen + 0.5 * 0.3775406687981454) < 1e-12 && abs(d.gradRejected - 0.5 * 0.3775406687981454) < 1e-12)
    // IPO, β = 0.25: target 1/(2β) = 2, L = (1 − 2)² = 1, ∂L/∂log π(y_c) = 2(1 − 2) = −2.
    let i = directAlignmentLoss(.ipo, beta: 0.25, policyChosen: -3, policyRejected: -4, referenceChosen: -3.5, referenceRejected: -3.5)
    #expect(i.loss == 1 && i.gradChosen == -2 && i.gradRejected == 2)
    // At the target the IPO loss and its gradient vanish; DPO's never does (it pushes h → ∞).
    let atTarget = directAlignmentLoss(.ipo, beta: 0.5, policyChosen: -3, policyRejected: -4, referenceChosen: -3.5, referenceRejected: -3.5)
    #expect(atTarget.loss == 0 && atTarget.gradChosen == 0)
    // Stable for large margins on both sides.
    let far = directAlignmentLoss(.dpo, beta: 1, policyChosen: 0, policyRejected: -800, referenceChosen: 0, referenceRejected: 0)
    let wrong = directAlignmentLoss(.dpo, beta: 1, policyChosen: -800, policyRejected: 0, referenceChosen: 0, referenceRejected: 0)
    #expect(far.loss >= 0 && far.loss < 1e-300 && abs(wrong.loss - 800) < 1e-9 && abs(wrong.gradChosen + 1) < 1e-12)
}

@Test func dpoAndIPOGradientsMatchFiniteDifferences() {
    for loss in DirectAlignmentLoss.allCases {
        for beta in [0.1, 0.5, 2.0] {
            for (pc, pr) in [(-3.0, -4.0), (-5.0, -2.5), (-1.2, -1.1)] {
                let l = directAlignmentLoss(loss, beta: beta, policyChosen: pc, policyRejected: pr, referenceChosen: -3.3, referenceRejected: -2.9)
                let fc = finiteDifference({ directAlignmentLoss(loss, beta: beta, policyChosen: $0, policyRejected: pr,
                                                                referenceChosen: -3.3, referenceRejected: -2.9).loss }, at: pc)
                let fr = finiteDifference({ directAlignmentLoss(loss, beta: beta, policyChosen: pc, policyRejected: $0,
                                                                referenceChosen: -3.3, referenceRejected: -2.9).loss }, at: pr)
                #expect(abs(l.gradChosen - fc) < 1e-6 && abs(l.gradRejected - fr) < 1e-6, "\(loss) β \(beta): \(l) vs \(fc), \(fr)")
            }
        }
    }
}

/// Toy pairs: for each of a few training prompts, a chosen response with token 40 and a rejected one without.
func toyPairs() -> [PreferencePair] {
    testWorld.trainPrompts.prefix(16).map { p in
        PreferencePair(prompt: p, chosen: [40, 40, 41, Tokenizer.eos], rejected: [42, 43, 41, Tokenizer.eos],
                       chosenGold: 1, rejectedGold: 0, flipped: false, kind: .baseVsBase)
    }
}

func toyDPOConfig(_ loss: DirectAlignmentLoss) -> DPOConfig {
    var c = DPOConfig()
    c.loss = loss; c.beta = 0.5; c.steps = 16; c.batchSize = 8; c.learningRate = 1e-2
    c.maxNewTokens = 8; c.evalEvery = 8; c.evalPrompts = 16; c.sampleTexts = 1; c.temperature = 1; c.topP = 1
    return c
}

@Test func dpoAndIPORaiseThePreferenceForTheChosenResponses() throws {
    for loss in DirectAlignmentLoss.allCases {
        let trainer = try DPOTrainer(config: toyDPOConfig(loss), world: testWorld, basePolicy: tinyPolicy(), pairs: toyPairs(),
                                     scorer: tokenCountScorer(40), seed: 3)
        #expect(trainer.evaluate().kl == KLEstimates(k1: 0, k2: 0, k3: 0))
        let curves = trainer.run()
        #expect(curves.step == [0, 8, 16] && curves.trainStep.count == 16)
        #expect(curves.trainReward.suffix(4).allSatisfy { $0 == 1 }, "\(loss): \(curves.trainReward)")
        #expect(curves.policyLoss.last! < curves.policyLoss[0], "\(loss): \(curves.policyLoss)")
        #expect(curves.kl.last! > 0.05, "\(loss): KL \(curves.kl)")
        // On a held-out prompt too, the policy prefers the chosen response more than the reference does.
        let context = testWorld.context(for: testWorld.heldOutPrompts[0])
        let seqs = [context + [40, 40, 41, Tokenizer.eos], context + [42, 43, 41, Tokenizer.eos]]
        let raw = LogprobReading(temperature: 1, tempered: false, chunkSize: 8)
        let pol = raw.readout(trainer.policy, sequences: seqs, responseStart: [context.count, context.count], values: false, entropy: false)
        let ref = raw.readout(trainer.reference, sequences: seqs, responseStart: [context.count, context.count], values: false, entropy: false)
        let h = (pol.logp[0].reduce(0, +) - ref.logp[0].reduce(0, +)) - (pol.logp[1].reduce(0, +) - ref.logp[1].reduce(0, +))
        #expect(h > 1, "\(loss): held-out margin \(h)")
    }
}

@Suite(.serialized) struct DirectAlignmentDeterminismTests {
    @Test func dpoCurvesDoNotDependOnTheThreadCount() throws {
        var c = toyDPOConfig(.dpo)
        c.steps = 3; c.evalEvery = 3
        let previous = engineThreadCount()
        defer { setEngineThreads(previous) }
        var runs: [PolicyCurves] = []
        for threads in [1, 2] {
            setEngineThreads(threads)
            runs.append(try DPOTrainer(config: c, world: testWorld, basePolicy: tinyPolicy(), pairs: toyPairs(),
                                       scorer: tokenCountScorer(40), seed: 3).run())
        }
        #expect(runs[0].policyLoss == runs[1].policyLoss && runs[0].kl == runs[1].kl && runs[0].gold == runs[1].gold)
    }
}

/// Tests/Fixtures/dpo.h5 (written by make_dpo_fixture.py with PyTorch): a policy, a perturbed
/// reference, two pairs; the summed response log-probabilities of both models, and the mean
/// DPO and IPO losses with their gradients for every policy parameter.
@Test(arguments: [DirectAlignmentLoss.dpo, .ipo])
func directAlignmentLossesAndGradientsMatchPyTorch(loss: DirectAlignmentLoss) throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/dpo.h5")
    let file = try H5File.open(url.path)
    let root = file.root
    func attr(_ n: String) throws -> Int { Int(try root.intAttribute(n)) }
    let config = TransformerConfig(vocabSize: try attr("V"), contextLength: try attr("maxT"), width: try attr("C"),
                                   layers: try attr("L"), heads: try attr("NH"))
    func model(_ group: String) throws -> Transformer {
        let m = Transformer(config: config, heads: .languageModel)
        let params = try root.group(group)
        for t in m.layout.tensors { m.setTensor(t.name, try params.readFloats(t.name).values) }
        return m
    }
    let policy = try model("params_policy"), reference = try model("params_reference")
    let inputs = try root.group("inputs"), outputs = try root.group("outputs")
    let tokens = try inputs.readInt64s("tokens")
    let lengths = try inputs.readInt64s("lengths").values.map { Int($0) }
    let starts = try inputs.readInt64s("response_start").values.map { Int($0) }
    let T = tokens.shape[1]
    let seqs = lengths.indices.map { b in (0..<lengths[b]).map { Int32(tokens.values[b * T + $0]) } }

    // The reference's log-probabilities through the read-out the trainer uses for it.
    let raw = LogprobReading(temperature: 1, tempered: false, chunkSize: 8)
    let referenceLogp = raw.readout(reference, sequences: seqs, responseStart: starts, values: false, entropy: false)
        .logp.map { $0.reduce(0, +) }
    let expectedReference = try outputs.readFloats("reference_logp").values.map(Double.init)
    for (a, b) in zip(referenceLogp, expectedReference) { #expect(abs(a - b) < 1e-4, "reference logp \(a) vs \(b)") }

    policy.zeroGrad()
    let pairs = seqs.count / 2
    let result = directAlignmentBackward(model: policy, sequences: seqs, responseStarts: starts,
                                         referenceChosen: (0..<pairs).map { expectedReference[2 * $0] },
                                         referenceRejected: (0..<pairs).map { expectedReference[2 * $0 + 1] },
                                         loss: loss, beta: try root.doubleAttribute("beta"), count: pairs)
    let expectedLoss = try outputs.readDoubles("\(loss.rawValue)_loss").values[0]
    #expect(abs(result.loss / Double(pairs) - expectedLoss) < 1e-5 * max(1, abs(expectedLoss)),
            "\(loss): loss \(result.loss / Double(pairs)) vs PyTorch \(expectedLoss)")
    let grads = try root.group("grads_\(loss.rawValue)")
    var worst: Float = 0
    for t in policy.layout.tensors {
        let expected = try grads.readFloats(t.name).values
        let got = Array(UnsafeBufferPointer(start: policy.grads.ptr + t.offset, count: t.count))
        let scale = max(1e-3, expected.map(abs).max() ?? 0)
        let err = zip(got, expected).map { abs($0 - $1) }.max() ?? 0
        worst = max(worst, err / scale)
        #expect(err <= 2e-4 * scale, "\(loss) gradient of \(t.name): max abs error \(err), scale \(scale)")
    }
    print(String(format: "parity %@: loss %.6f vs %.6f, worst scaled gradient error %.2e", loss.rawValue,
                 result.loss / Double(pairs), expectedLoss, worst))
}
