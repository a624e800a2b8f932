// Parity with the PyTorch reference: Tests/Fixtures/parity.h5 is written by
// Tests/Fixtures/make_parity_fixture.py (weights, inputs, logits, losses, every gradient,
// five AdamW steps, gradient clipping). Each tensor is compared with its max error printed.
import Foundation
import Testing
import OverOptEngine
import OverOptHDF5

struct ParityFixture {
    let file: H5File
    let config: TransformerConfig
    let B: Int, T: Int
    let batch: TokenBatch
    let mask: [Float]

    init() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures/parity.h5")
        file = try H5File.open(url.path)
        let r = file.root
        func attr(_ n: String) throws -> Int { Int(try r.intAttribute(n)) }
        config = TransformerConfig(vocabSize: try attr("V"), contextLength: try attr("maxT"), width: try attr("C"),
                                   layers: try attr("L"), heads: try attr("NH"))
        B = try attr("B"); T = try attr("T")
        let inputs = try r.group("inputs")
        let tokens = try inputs.readInt64s("tokens").values.map { Int32($0) }
        let lengths = try inputs.readInt64s("lengths").values.map { Int($0) }
        batch = TokenBatch(B: B, T: T, tokens: tokens, lengths: lengths)
        mask = try inputs.readFloats("loss_mask").values
    }

    func model(_ heads: HeadConfig) throws -> Transformer {
        let m = Transformer(config: config, heads: heads)
        let params = try file.root.group("params")
        for t in m.layout.tensors { m.setTensor(t.name, try params.readFloats(t.name).values) }
        return m
    }

    func floats(_ path: String) throws -> [Float] {
        let parts = path.split(separator: "/").map(String.init)
        var g = file.root
        for p in parts.dropLast() { g = try g.group(p) }
        return try g.readFloats(parts.last!).values
    }
}

/// max |a − b| / max(1, max |b|), printed with its label.
@discardableResult
func expectClose(_ a: [Float], _ b: [Float], _ label: String, tol: Float = 2e-5) -> Float {
    #expect(a.count == b.count, "\(label): \(a.count) vs \(b.count) values")
    var err: Float = 0, scale: Float = 1
    for (x, y) in zip(a, b) { err = max(err, abs(x - y)); scale = max(scale, abs(y)) }
    let rel = err / scale
    print(String(format: "parity %-34@ max abs err %.2e (scaled %.2e)", label as NSString, err, rel))
    #expect(rel < tol, "\(label): scaled error \(rel)")
    return rel
}

@Suite struct PyTorchParityTests {
    @Test func forwardOutputsMatchPyTorch() throws {
        let f = try ParityFixture()
        let m = try f.model(HeadConfig(reward: .linear, value: true))
        let lp = m.tokenLogProbs(f.batch, mask: f.mask, entropy: true)
        let N = f.B * f.T, V = f.config.vocabSize
        // The engine computes only token rows (padding rows are zeros); the reference computed
        // every row, so rows are compared where a sequence has a token.
        func tokenRows(_ x: [Float], width: Int) -> [Float] {
            (0..<N).filter { $0 % f.T < f.batch.lengths[$0 / f.T] }.flatMap { x[($0 * width)..<(($0 + 1) * width)] }
        }
        expectClose(tokenRows(Array(UnsafeBufferPointer(start: m.acts!.logits.ptr, count: N * V)), width: V),
                    tokenRows(try f.floats("outputs/logits"), width: V), "logits")
        expectClose(tokenRows(Array(UnsafeBufferPointer(start: m.acts!.hidden.ptr, count: N * f.config.width)), width: f.config.width),
                    tokenRows(try f.floats("outputs/hidden_final"), width: f.config.width), "hidden_final")
        expectClose(lp.logp, try f.floats("outputs/token_logp"), "token_logp")
        // The fixture stores entropy at every position; compare where the mask is on.
        let refEntropy = try f.floats("outputs/entropy")
        expectClose(lp.entropy!.enumerated().map { f.mask[$0.offset] != 0 ? $0.element : 0 },
                    refEntropy.enumerated().map { f.mask[$0.offset] != 0 ? $0.element : 0 }, "entropy (masked)")
        expectClose(lp.sequenceLogProbs(mask: f.mask, B: f.B, T: f.T).map(Float.init), try f.floats("outputs/logp_sum"), "logp_sum")
        let count = f.mask.reduce(0, +)
        let loss = -zip(lp.logp, f.mask).map { $0 * $1 }.reduce(0, +) / count
        expectClose([loss], try f.floats("outputs/lm_loss"), "lm_loss")
        expectClose(m.rewardForward(), try f.floats("outputs/reward_linear"), "reward_linear")
        m.valueForward()
        expectClose(tokenRows(Array(UnsafeBufferPointer(start: m.acts!.values.ptr, count: N)), width: 1),
                    tokenRows(try f.floats("outputs/value"), width: 1), "value")
        let mm = try f.model(HeadConfig(reward: .mlp(hidden: 8)))
        mm.forward(f.batch)
        expectClose(mm.rewardForward(), try f.floats("outputs/reward_mlp"), "reward_mlp")
    }

    @Test func languageModelGradientsMatchPyTorch() throws {
        let f = try ParityFixture()
        let m = try f.model(.languageModel)
        var rng = RNG(seed: 0)
        m.zeroGrad()
        m.languageModelLoss(f.batch, mask: f.mask, backward: true, rng: &rng)
        for t in m.layout.tensors {
            expectClose(Array(UnsafeBufferPointer(start: m.grads.ptr + t.offset, count: t.count)),
                        try f.floats("grads_lm/\(t.name)"), "grads_lm/\(t.name)")
        }
    }

    @Test(arguments: [("grads_reward", RewardHeadKind.linear), ("grads_reward_mlp", .mlp(hidden: 8))])
    func rewardGradientsMatchPyTorch(group: String, head: RewardHeadKind) throws {
        let f = try ParityFixture()
        let m = try f.model(HeadConfig(reward: head))
        m.zeroGrad()
        m.forward(f.batch)
        let r = m.rewardForward().map(Double.init)
        // L = −log σ(r0 − r1) − log σ(r2 − r1)
        let g0 = -(1 - sigmoid(r[0] - r[1])), g2 = -(1 - sigmoid(r[2] - r[1]))
        m.backward(dRewards: [Float(g0), Float(-g0 - g2), Float(g2)])
        let ref = try f.file.root.group(group)
        for name in try ref.children() {
            guard let t = m.layout[name] else { continue }
            expectClose(Array(UnsafeBufferPointer(start: m.grads.ptr + t.offset, count: t.count)),
                        try ref.readFloats(name).values, "\(group)/\(name)")
        }
    }

    @Test func valueGradientsMatchPyTorch() throws {
        let f = try ParityFixture()
        let m = try f.model(HeadConfig(value: true))
        let target = try f.floats("inputs/value_target")
        m.zeroGrad()
        m.forward(f.batch)
        let v = m.valueForward()
        let count = f.mask.reduce(0, +)
        var dv = [Float](repeating: 0, count: f.B * f.T)
        for i in 0..<dv.count { dv[i] = f.mask[i] * (v[i] - target[i]) / count }
        dv.withUnsafeMutableBufferPointer { m.backward(dValues: $0.baseAddress!) }
        let ref = try f.file.root.group("grads_value")
        for name in try ref.children() {
            let t = m.layout[name]!
            expectClose(Array(UnsafeBufferPointer(start: m.grads.ptr + t.offset, count: t.count)),
                        try ref.readFloats(name).values, "grads_value/\(name)")
        }
    }

    @Test func adamWStepsMatchPyTorch() throws {
        let f = try ParityFixture()
        let m = try f.model(.languageModel)
        let r = f.file.root
        let cfg = AdamWConfig(learningRate: Float(try r.doubleAttribute("lr")), beta1: Float(try r.doubleAttribute("beta1")),
                              beta2: Float(try r.doubleAttribute("beta2")), eps: Float(try r.doubleAttribute("eps")),
                              weightDecay: Float(try r.doubleAttribute("weight_decay")))
        let opt = AdamW(model: m, config: cfg)
        var rng = RNG(seed: 0)
        var losses: [Float] = []
        for _ in 0..<5 {
            m.zeroGrad()
            losses.append(m.languageModelLoss(f.batch, mask: f.mask, backward: true, rng: &rng))
            opt.update(m)
        }
        expectClose(losses, try f.floats("adamw/losses"), "adamw/losses", tol: 1e-5)
        let after = try r.group("adamw").group("params_after")
        let C = f.config.width
        for t in m.layout.tensors {
            var mine = m.tensor(t.name), ref = try after.readFloats(t.name).values
            if t.name.hasSuffix("qkv_b") {
                // The key bias has an exactly-zero true gradient (softmax is shift-invariant);
                // its float32 rounding noise is amplified by Adam, so it is not comparable.
                mine.removeSubrange(C..<(2 * C)); ref.removeSubrange(C..<(2 * C))
            }
            expectClose(mine, ref, "adamw/params_after/\(t.name)", tol: 1e-4)
        }
    }

    @Test func gradientClippingMatchesPyTorch() throws {
        let f = try ParityFixture()
        let m = try f.model(.languageModel)
        var rng = RNG(seed: 0)
        m.zeroGrad()
        m.languageModelLoss(f.batch, mask: f.mask, backward: true, rng: &rng)
        let norm = clipGradientNorm(m, maxNorm: Float(try f.file.root.doubleAttribute("clip_max_norm")))
        expectClose([norm], try f.floats("clip/norm"), "clip/norm")
        let ref = try f.file.root.group("clip").group("grads")
        for t in m.layout.tensors {
            expectClose(Array(UnsafeBufferPointer(start: m.grads.ptr + t.offset, count: t.count)),
                        try ref.readFloats(t.name).values, "clip/grads/\(t.name)")
        }
    }
}
