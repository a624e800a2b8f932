// LanguageModel.swift — next-token log-probabilities of a batch and their backward.
//
// The bridge between the model's LM head and every text objective: a forward that returns
// per-position log-probabilities of the next token (and entropies) at masked positions,
// and a backward that takes gradients with respect to those and runs the model backward.
// Position t of row b predicts tokens[b, t+1]; a loss mask marks the positions that count
// (for responses: the positions whose next token is a response token).

/// Per-position next-token log-probabilities (and optionally entropies), each (B·T).
public struct TokenLogProbs: Sendable {
    public var logp: [Float]
    public var entropy: [Float]?

    /// Σ_t mask[b,t]·logp[b,t] per row: the summed response log-probability log π(y|x).
    public func sequenceLogProbs(mask: [Float], B: Int, T: Int) -> [Double] {
        (0..<B).map { b in
            var s: Double = 0
            for t in 0..<T { s += Double(mask[b * T + t] * logp[b * T + t]) }
            return s
        }
    }
}

/// Read-outs at the response tokens of several sequences, flat: sequence i's tokens are
/// `tokens(of: i)`. `entropy` and `values` are empty unless asked for.
public struct ResponseReadouts: Sendable {
    public var logp: [Float]
    public var entropy: [Float]
    public var values: [Float]
    /// Sequence i's tokens are offsets[i] ..< offsets[i + 1].
    public var offsets: [Int]

    public func tokens(of i: Int) -> Range<Int> { offsets[i]..<offsets[i + 1] }
}

/// The mask of positions whose next token is a response token: for a row
/// `[BOS] prompt [SEP] response… [EOS]` with the response starting at index `start`,
/// positions start−1 … length−2 count.
public func responseLossMask(B: Int, T: Int, responseStart: [Int], lengths: [Int]) -> [Float] {
    var m = [Float](repeating: 0, count: B * T)
    for b in 0..<B {
        let lo = max(0, responseStart[b] - 1)
        let hi = lengths[b] - 2
        if hi >= lo { for t in lo...hi { m[b * T + t] = 1 } }
    }
    return m
}

/// The number of positions a loss mask counts (nonzero entries).
func maskedCount(_ mask: [Float]) -> Int { mask.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } }

extension Transformer {
    /// Next-token targets of a batch: targets[b,t] = tokens[b,t+1], 0 past the end.
    static func nextTokenTargets(_ batch: TokenBatch) -> [Int32] {
        var tg = [Int32](repeating: 0, count: batch.B * batch.T)
        for b in 0..<batch.B {
            for t in 0..<(batch.T - 1) { tg[b * batch.T + t] = batch.tokens[b * batch.T + t + 1] }
        }
        return tg
    }

    /// Runs the trunk and the LM head and returns the next-token log-probabilities at
    /// positions where `mask` is nonzero (0 elsewhere). Keeps what `backwardTokenLogProbs`
    /// needs. With `training`, dropout is on.
    public func tokenLogProbs(_ batch: TokenBatch, mask: [Float], entropy wantEntropy: Bool = false,
                              training: Bool = false, rng: inout RNG) -> TokenLogProbs {
        let N = batch.B * batch.T, V = config.vocabSize
        precondition(mask.count == N, "mask must have B·T entries")
        forward(batch, training: training, rng: &rng)
        let logits = lmLogits()
        let targets = Transformer.nextTokenTargets(batch)
        var logp = [Float](repeating: 0, count: N)
        var ent: [Float]? = wantEntropy ? [Float](repeating: 0, count: N) : nil
        let lse = work.get("lse", N)
        let m = work.get("rowMask", N)
        for i in 0..<N { m[i] = mask[i] }
        targets.withUnsafeBufferPointer { tg in
            logp.withUnsafeMutableBufferPointer { lp in
                if wantEntropy {
                    ent!.withUnsafeMutableBufferPointer { e in
                        tokenLogProbsForward(logp: lp.baseAddress!, entropy: e.baseAddress!, lse: lse, logits: logits,
                                             targets: tg.baseAddress!, rowMask: m, N: N, V: V)
                    }
                } else {
                    tokenLogProbsForward(logp: lp.baseAddress!, entropy: nil, lse: lse, logits: logits,
                                         targets: tg.baseAddress!, rowMask: m, N: N, V: V)
                }
            }
        }
        lastTargets = targets
        lastEntropy = ent
        return TokenLogProbs(logp: logp, entropy: ent)
    }

    /// Convenience without dropout.
    public func tokenLogProbs(_ batch: TokenBatch, mask: [Float], entropy: Bool = false) -> TokenLogProbs {
        var rng = RNG(seed: 0)
        return tokenLogProbs(batch, mask: mask, entropy: entropy, training: false, rng: &rng)
    }

    /// Backward of the last `tokenLogProbs` call given ∂loss/∂logp (and ∂loss/∂entropy),
    /// plus optional reward/value gradients from the same forward pass. Accumulates into
    /// `grads`.
    public func backwardTokenLogProbs(dlogp: [Float], dentropy: [Float]? = nil,
                                      dRewards: [Float]? = nil, dValues: FPtr? = nil) {
        let a = acts!, N = a.B * a.T, V = config.vocabSize
        precondition(dlogp.count == N, "dlogp must have B·T entries")
        let dlogits = work.zeroed("dlogits", N * V)
        let lse = work.get("lse", N)
        lastTargets.withUnsafeBufferPointer { tg in
            dlogp.withUnsafeBufferPointer { dl in
                let dlp = UnsafeMutablePointer(mutating: dl.baseAddress!)
                if let dentropy, let ent = lastEntropy {
                    dentropy.withUnsafeBufferPointer { de in
                        ent.withUnsafeBufferPointer { e in
                            tokenLogProbsBackward(dlogits: dlogits, dlogp: dlp, dentropy: UnsafeMutablePointer(mutating: de.baseAddress!),
                                                  entropy: UnsafeMutablePointer(mutating: e.baseAddress!), logits: a.logits.ptr,
                                                  lse: lse, targets: tg.baseAddress!, N: N, V: V)
                        }
                    }
                } else {
                    precondition(dentropy == nil, "entropy gradients need tokenLogProbs(entropy: true)")
                    tokenLogProbsBackward(dlogits: dlogits, dlogp: dlp, dentropy: nil, entropy: nil, logits: a.logits.ptr,
                                          lse: lse, targets: tg.baseAddress!, N: N, V: V)
                }
            }
        }
        backward(dLogits: dlogits, dRewards: dRewards, dValues: dValues)
    }

    /// Mean next-token negative log-likelihood over masked positions; with `backward`,
    /// also accumulates its gradient. The pretraining loss.
    @discardableResult
    public func languageModelLoss(_ batch: TokenBatch, mask: [Float], backward doBackward: Bool,
                                  training: Bool = false, rng: inout RNG) -> Float {
        let count = maskedCount(mask)
        let loss = summedNLL(batch, mask: mask, normalizer: count, backward: doBackward, training: training, rng: &rng)
        return Float(loss / Double(max(1, count)))
    }

    /// −Σ mask·log p over the masked positions; with `backward`, accumulates the gradient of
    /// that sum divided by `normalizer` (the masked count of the whole batch it is part of).
    func summedNLL(_ batch: TokenBatch, mask: [Float], normalizer: Int, backward doBackward: Bool,
                   training: Bool, rng: inout RNG) -> Double {
        let lp = tokenLogProbs(batch, mask: mask, training: training, rng: &rng)
        var loss: Double = 0
        for i in 0..<lp.logp.count where mask[i] != 0 { loss -= Double(lp.logp[i] * mask[i]) }
        if doBackward {
            let scale = -1 / Float(max(1, normalizer))
            backwardTokenLogProbs(dlogp: mask.map { $0 * scale })
        }
        return loss
    }
}
