// LeanForward.swift — the decoder's forward without decoding, for read-outs that need no
// backward: the final states at each sequence's last token (what reward heads score:
// `Transformer.rewardScores`, `lastTokenStates`, `rewardLatentMeans`) and response
// log-probabilities, entropies and values (`Transformer.responseReadouts`). The last layer
// runs only at the positions read. Unlike the training forward, it keeps no activations; it
// rounds differently only in the matrix products and residual additions. It shares the
// sampler's KV cache, packed weights, decode groups and `forwardTokens` (Sampler.swift), so
// a read-out does not depend on the thread count either.

extension Sampler {
    /// The final LayerNorm's output at each sequence's last token, (count, C) — what the reward
    /// head reads — by the lean forward (`leanForward`). The states are in the sampler's
    /// buffers, valid until its next call.
    func finalStatesAtLastTokens(_ sequences: [[Int32]], chunkSize: Int = 256) -> FPtr {
        let C = model.config.width
        let states = work.get("states", max(1, sequences.count) * C)
        let out = UncheckedSendable(states)
        leanForward(sequences, chunkSize: chunkSize, outputs: { (sequences[$0].count - 1)..<sequences[$0].count }) { i, _, rows, _, _ in
            (out.value + i * C).update(from: rows, count: C)
        }
        return states
    }

    /// For each response token t ≥ responseStart[i] of each sequence i (predicted at position
    /// t − 1): its log-probability and, if asked, the next-token entropy and the value head
    /// there, by the lean forward, with the LM head (on packed weights) only at those positions.
    func responseReadouts(_ sequences: [[Int32]], responseStart: [Int], entropy wantEntropy: Bool, values wantValues: Bool,
                          chunkSize: Int = 256) -> ResponseReadouts {
        precondition(responseStart.count == sequences.count, "one response start per sequence")
        let c = model.config, C = c.width, V = c.vocabSize
        // Position t predicts token t + 1: positions start − 1 … count − 2 are read.
        let positions = sequences.indices.map { i -> Range<Int> in
            let lo = max(0, responseStart[i] - 1)
            return lo..<max(lo, sequences[i].count - 1)
        }
        var offsets = [0]
        for p in positions { offsets.append(offsets.last! + p.count) }
        let total = offsets.last!
        var logp = [Float](repeating: 0, count: total)
        var entropy = [Float](repeating: 0, count: wantEntropy ? total : 0)
        var values = [Float](repeating: 0, count: wantValues ? total : 0)
        let vw: FPtr? = wantValues ? model.p("vh_w") : nil, vb: Float = wantValues ? model.p("vh_b")[0] : 0
        logp.withUnsafeMutableBufferPointer { lpBuf in
            entropy.withUnsafeMutableBufferPointer { entBuf in
                values.withUnsafeMutableBufferPointer { valBuf in
                    // (An empty array's buffer may still have a base address: pass nil for what was not asked.)
                    let out = UncheckedSendable((lpBuf.baseAddress, wantEntropy ? entBuf.baseAddress : nil, wantValues ? valBuf.baseAddress : nil))
                    leanForward(sequences, chunkSize: chunkSize, outputs: { positions[$0] }) { i, first, states, n, ro in
                        withUnsafeTemporaryAllocation(of: Int32.self, capacity: ro.logitRows) { tg in
                            withUnsafeTemporaryAllocation(of: Float.self, capacity: ro.logitRows) { lse in
                                var k = 0
                                while k < n {   // the LM head a block of positions at a time, into the group's logits
                                    let m = min(n - k, ro.logitRows), o = offsets[i] + k
                                    ro.lmHead.forward(out: ro.logits, inp: states + k * C, N: m)
                                    for j in 0..<m { tg[j] = sequences[i][first + k + j + 1] }
                                    tokenLogProbsForward(logp: out.value.0! + o, entropy: out.value.1.map { $0 + o }, lse: lse.baseAddress!,
                                                         logits: ro.logits, targets: tg.baseAddress!, rowMask: nil, N: m, V: V)
                                    if let vw, let vals = out.value.2 {
                                        for j in 0..<m {
                                            let x = states + (k + j) * C
                                            var v = vb
                                            for d in 0..<C { v += x[d] * vw[d] }
                                            vals[o + j] = v
                                        }
                                    }
                                    k += m
                                }
                            }
                        }
                    }
                }
            }
        }
        return ResponseReadouts(logp: logp, entropy: entropy, values: values, offsets: offsets)
    }

    /// What a group's read-out gets: its scratch (for logits) and the packed LM head.
    struct LeanReadOut { let logits: FPtr; let logitRows: Int; let lmHead: PackedLinear }

    /// Runs every token of `sequences` through the trunk by the decoder's forward: packed
    /// weights, no dropout, nothing saved for a backward. The sequences run in chunks of
    /// `chunkSize`, each cut into decode groups like `generate`'s, so nothing depends on the
    /// thread count. The last layer runs only for the positions `outputs(i)` of sequence i;
    /// then `readOut(i, first position, final states (n, C), n, scratch)` reads them out, on
    /// the group's thread (sequences with no positions are skipped).
    func leanForward(_ sequences: [[Int32]], chunkSize: Int, outputs: (Int) -> Range<Int>,
                             readOut: (Int, Int, FPtr, Int, LeanReadOut) -> Void) {
        if sequences.isEmpty { return }
        let c = model.config, C = c.width
        precondition(sequences.allSatisfy { !$0.isEmpty }, "every sequence needs at least one token")
        precondition(model.lora == nil, "the decoder's forward does not apply LoRA adapters: merge them first (mergeLoRA())")
        let weights = DecodeWeights(model)
        for start in stride(from: 0, to: sequences.count, by: chunkSize) {
            let chunk = Array(sequences[start..<min(sequences.count, start + chunkSize)])
            let maxT = chunk.map(\.count).max()!
            precondition(maxT <= c.contextLength, "sequence of \(maxT) tokens exceeds the context \(c.contextLength)")
            let cache = KVCache(work: work, L: c.layers, B: chunk.count, maxT: maxT, C: C, heads: c.heads)
            let groups = Self.decodeGroups(chunk.count)
            let scratch = groups.indices.map {
                DecodeScratch(work: work, name: "g\($0)", rows: groups[$0].count, tokens: groups[$0].count * maxT, config: c, maxT: maxT)
            }
            parallelForEachDynamic(groups.count) { g in
                let rows = groups[g], sc = scratch[g]
                var feed: [TokenAt] = [], selected: [Int] = []
                var spans: [(sequence: Int, positions: Range<Int>, offset: Int)] = []
                for b in rows {
                    let base = feed.count, positions = outputs(start + b)
                    precondition(positions.isEmpty || positions.upperBound <= chunk[b].count, "output position past the sequence's end")
                    for (t, token) in chunk[b].enumerated() { feed.append(TokenAt(row: b, pos: t, token: token)) }
                    spans.append((start + b, positions, selected.count))
                    selected += positions.map { base + $0 }
                }
                if selected.isEmpty { return }
                forwardTokens(feed, outputsOf: selected, cache: cache, weights: weights, scratch: sc)
                let ro = LeanReadOut(logits: sc.logits, logitRows: rows.count, lmHead: weights.lmHead)
                for span in spans where !span.positions.isEmpty {
                    readOut(span.sequence, span.positions.lowerBound, sc.ln + span.offset * C, span.positions.count, ro)
                }
            }
        }
    }
}
