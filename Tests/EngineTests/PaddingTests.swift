// A training step computes only each sequence's token rows (TokenRows.swift): its forward
// must give bit for bit what computing every row of the padded batch gives, and its
// gradients the same up to rounding.
import Testing
import OverOptEngine

@Suite(.serialized) struct PaddingTests {
    /// A training step's token log-probabilities, values and gradients: with the batch's real
    /// lengths (padding rows skipped) or with every sequence treated as T tokens long (the
    /// padding rows computed from their pad tokens). The loss reads only real positions.
    func step(skipPadding: Bool, threads: Int, lora: Bool) -> (logp: [Float], values: [Float], grads: [Float]) {
        let previous = engineThreadCount()
        setEngineThreads(threads)
        defer { setEngineThreads(previous) }
        let cfg = TransformerConfig(vocabSize: 40, contextLength: 48, width: 32, layers: 2, heads: 2, dropout: 0.1)
        let m = Transformer(config: cfg, heads: HeadConfig(reward: .none, value: true),
                            lora: lora ? LoRAConfig(rank: 4, alpha: 8, dropout: 0.1) : nil)
        var rng = RNG(seed: 21)
        m.initialize(rng: &rng)
        // Lengths 3…47 over 40 sequences: most rows of the (40, 47) batch are padding.
        let seqs = (0..<40).map { i in (0..<(3 + (i * 7) % 45)).map { _ in Int32(1 + rng.int(below: 39)) } }
        let padded = TokenBatch(sequences: seqs)
        let batch = skipPadding ? padded
            : TokenBatch(B: padded.B, T: padded.T, tokens: padded.tokens, lengths: [Int](repeating: padded.T, count: padded.B))
        let mask = responseLossMask(B: padded.B, T: padded.T, responseStart: [Int](repeating: 2, count: padded.B),
                                    lengths: padded.lengths)
        // A forward and backward of full-length sequences first, so that every buffer holds
        // values in the rows that are padding in the next batch.
        let full = TokenBatch(sequences: (0..<padded.B).map { _ in (0..<padded.T).map { _ in Int32(1 + rng.int(below: 39)) } })
        _ = m.tokenLogProbs(full, mask: [Float](repeating: 1, count: padded.B * padded.T))
        m.valueForward()
        m.backwardTokenLogProbs(dlogp: [Float](repeating: 0.01, count: padded.B * padded.T))
        var drop = RNG(seed: 4)
        m.zeroGrad()
        let lp = m.tokenLogProbs(batch, mask: mask, entropy: true, training: true, rng: &drop)
        let values = Array(UnsafeBufferPointer(start: m.valueForward(), count: padded.B * padded.T))
        let dValues = FloatBuffer(count: padded.B * padded.T)
        for i in 0..<mask.count where mask[i] != 0 { dValues.ptr[i] = 0.01 * Float(i % 7) - 0.03 }
        m.backwardTokenLogProbs(dlogp: mask.map { -$0 / 100 }, dentropy: mask.map { $0 / 300 }, dValues: dValues.ptr)
        let realValues = mask.indices.filter { mask[$0] != 0 }.map { values[$0] }
        return (lp.logp, realValues, m.grads.array)
    }

    /// The forward's results are the same bits; the gradients agree to rounding (the
    /// weight gradients' and attention's OpenBLAS products run over fewer rows, which
    /// rounds differently), and are the same bits at 1 and 2 threads.
    @Test(arguments: [false, true])
    func skippingPaddingRowsChangesOnlyRounding(lora: Bool) {
        var skippedGradients: [[Float]] = []
        for threads in [1, 2] {
            let skipped = step(skipPadding: true, threads: threads, lora: lora)
            let computed = step(skipPadding: false, threads: threads, lora: lora)
            func differing(_ a: [Float], _ b: [Float]) -> Int { zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count }
            #expect(differing(skipped.logp, computed.logp) == 0, "log-probs, threads \(threads)")
            #expect(differing(skipped.values, computed.values) == 0, "values, threads \(threads)")
            let scale = computed.grads.map { abs($0) }.max()!
            let worst = zip(skipped.grads, computed.grads).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-5 * scale, "gradients, threads \(threads): largest difference \(worst), largest gradient \(scale)")
            #expect(skipped.grads.contains { $0 != 0 })
            skippedGradients.append(skipped.grads)
        }
        #expect(skippedGradients[0].map(\.bitPattern) == skippedGradients[1].map(\.bitPattern), "1 and 2 threads")
    }

    @Test func paddingRowsOfTheForwardAreZero() {
        let m = Transformer(config: TransformerConfig(vocabSize: 20, contextLength: 16, width: 16, layers: 1, heads: 2))
        var rng = RNG(seed: 2)
        m.initialize(rng: &rng)
        // A full-length batch first, so that the rows that are padding next hold values.
        m.forward(TokenBatch(sequences: [[1, 2, 3, 4, 5, 6], [9, 10, 11, 12, 13, 14]]))
        _ = m.lmLogits()
        #expect((0..<16).contains { m.acts!.hidden.ptr[(6 + 2) * 16 + $0] != 0 })
        let batch = TokenBatch(sequences: [[1, 2, 3, 4, 5, 6], [7, 8]])
        m.forward(batch)
        let logits = m.lmLogits(), hidden = m.acts!.hidden.ptr
        for t in 2..<6 {
            #expect((0..<16).allSatisfy { hidden[(6 + t) * 16 + $0] == 0 }, "hidden row \(t) of the short sequence")
            #expect((0..<20).allSatisfy { logits[(6 + t) * 20 + $0] == 0 }, "logits row \(t) of the short sequence")
        }
        #expect((0..<16).contains { hidden[(6 + 1) * 16 + $0] != 0 })
    }
}
