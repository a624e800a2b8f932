// RewardModelTraining.swift — training proxy reward models on preference pairs.
//
// What it is: the orchestration of the proxy stage. Every member starts from the base
// policy's weights (trunk and LM head) plus a fresh reward head (and fresh LoRA adapters
// with `finetune = lora`). A step takes a batch of pairs as one TokenBatch of 2×batch rows
// (chosen rows first, then rejected): one forward gives the rewards and, for GRM, the
// response log-probabilities of the same hidden states; the objective (Objectives.swift)
// turns them into gradients; one backward accumulates both heads' gradients; then
// gradient clipping and AdamW with warmup + cosine. Variants:
//   bt / margin / label-smoothing — one member with that reward loss;
//   frozen   — trunk and LM head frozen, MLP head trained (Bradley–Terry);
//   ensemble — k members, different head init and data order, combined when scoring;
//   warm     — k members, same head init, different data order, averaged in weight space;
//   grm      — (1−α)·Bradley–Terry + α·regularizer through the LM head;
//   inform   — Bradley–Terry on rewards read from a Gaussian latent (a variational head,
//              z = μ + σ·ε sampled from the step's dropout stream) + β·KL(q(z|h) ‖ N(0, I))
//              averaged over the batch's 2P sequences (InfoRM, Miao et al. 2024).
// With LoRA, members are merged (`mergeLoRA`) after training so scoring runs at full speed.
// Evaluation is in RewardModelEvaluation.swift; results in RewardModelResult.swift.

import OverOptEngine

// MARK: - Encoded pairs

/// Token sequences of preference pairs, built once: chosen and rejected
/// `[BOS] prompt [SEP] response`, where the response starts, and the margin target.
public struct EncodedPairs: Sendable {
    public var chosen: [[Int32]]
    public var rejected: [[Int32]]
    /// Index of the first response token (= context length), per pair.
    public var responseStart: [Int]
    /// |r*(y_c) − r*(y_r)|: the annotator's confidence in its label. The magnitude, not
    /// the signed gold gap, so that a label-noise flip does not leak the true order into
    /// the margin objective.
    public var goldGap: [Double]
    /// Summed response log-probabilities under the frozen reference (base) policy, for
    /// the DPO regularizer; empty otherwise.
    public var referenceChosen: [Double] = []
    public var referenceRejected: [Double] = []

    public init(world: World, pairs: [PreferencePair]) {
        chosen = pairs.map { world.trainingSequence(prompt: $0.prompt, response: $0.chosen) }
        rejected = pairs.map { world.trainingSequence(prompt: $0.prompt, response: $0.rejected) }
        responseStart = pairs.map { world.context(for: $0.prompt).count }
        goldGap = pairs.map { abs($0.goldMargin) }
    }

    /// Pairs from raw sequences (tests, custom data).
    public init(chosen: [[Int32]], rejected: [[Int32]], responseStart: [Int], goldGap: [Double]) {
        precondition(chosen.count == rejected.count && chosen.count == responseStart.count && chosen.count == goldGap.count,
                     "EncodedPairs: one entry per pair in every array")
        self.chosen = chosen; self.rejected = rejected; self.responseStart = responseStart; self.goldGap = goldGap
    }

    public var count: Int { chosen.count }

    /// Number of response tokens (EOS included) of pair i's chosen response.
    public func chosenTokens(_ i: Int) -> Int { chosen[i].count - responseStart[i] }
}

// MARK: - The objective of one step

/// Loss and statistics of one batch.
public struct StepStatistics: Sendable {
    /// The full objective: (1−α)·reward loss + α·regularizer for GRM, reward loss +
    /// β·regularizer for InfoRM, else the reward loss.
    public var loss: Double
    public var rewardLoss: Double
    /// GRM's regularizer, or InfoRM's KL(q(z|h) ‖ N(0, I)) in nats (mean over sequences).
    public var regularizerLoss: Double
    /// Share of pairs with r_c > r_r (against the training labels, noise included).
    public var accuracy: Double
}

/// The per-pair reward loss of a config (Bradley–Terry for frozen, ensemble, warm, grm).
func rewardPairLoss(_ cfg: RewardModelConfig, chosen: Double, rejected: Double, goldGap: Double) -> PairLoss {
    switch cfg.objective {
    case .margin: return marginLoss(chosen: chosen, rejected: rejected, margin: goldGap * cfg.marginScale)
    case .labelSmoothing: return labelSmoothingLoss(chosen: chosen, rejected: rejected, epsilon: cfg.smoothing)
    case .bt, .frozen, .ensemble, .warm, .grm, .inform: return bradleyTerryLoss(chosen: chosen, rejected: rejected)
    }
}

/// The GRM regularizer of pair i given its summed response log-probabilities.
func regularizerPairLoss(_ cfg: RewardModelConfig, _ pairs: EncodedPairs, _ i: Int,
                         chosenLogProb: Double, rejectedLogProb: Double) -> PairLoss {
    switch cfg.regularizer {
    case .sft: return sftRegularizer(chosenLogProb: chosenLogProb, beta: cfg.beta)
    case .sftNLL: return sftNLL(chosenLogProb: chosenLogProb, tokens: pairs.chosenTokens(i))
    case .dpo:
        return dpoRegularizer(chosenLogProb: chosenLogProb, rejectedLogProb: rejectedLogProb,
                              referenceChosenLogProb: pairs.referenceChosen[i],
                              referenceRejectedLogProb: pairs.referenceRejected[i], beta: cfg.beta)
    case .dpoNoRef: return dpoNoRefRegularizer(chosenLogProb: chosenLogProb, rejectedLogProb: rejectedLogProb, beta: cfg.beta)
    }
}

/// One forward (and, with `backward`, one backward accumulating into `model.grads`) of
/// the config's objective on the pairs `indices`: the mean over pairs of
/// (1−α)·L_reward + α·L_reg (α = 0 unless GRM). Rows: chosen 0..<P, rejected P..<2P.
@discardableResult
public func pairObjectiveStep(model: Transformer, config cfg: RewardModelConfig, pairs: EncodedPairs, indices: [Int],
                              training: Bool, backward: Bool, rng: inout RNG, batchPairs: Int? = nil) -> StepStatistics {
    // `batchPairs`: the number of pairs the loss is averaged over (default: these), so that
    // the parts of a batch split over replicas add up to the whole batch's loss and gradient.
    let P = indices.count, inv = 1 / Double(batchPairs ?? indices.count)
    let batch = TokenBatch(sequences: indices.map { pairs.chosen[$0] } + indices.map { pairs.rejected[$0] })
    let T = batch.T
    let alpha = cfg.usesLanguageModel ? cfg.alpha : 0
    // Forward: trunk (+ LM head for GRM), then the reward head on the same hidden states.
    var mask: [Float] = []
    var logProbs: [Double] = []
    if cfg.usesLanguageModel {
        let starts = indices.map { pairs.responseStart[$0] }
        mask = responseLossMask(B: 2 * P, T: T, responseStart: starts + starts, lengths: batch.lengths)
        if cfg.regularizer == .sft || cfg.regularizer == .sftNLL {
            for i in (P * T)..<(2 * P * T) { mask[i] = 0 }  // rejected log-probs are not needed
        }
        let lp = model.tokenLogProbs(batch, mask: mask, training: training, rng: &rng)
        logProbs = lp.sequenceLogProbs(mask: mask, B: 2 * P, T: T)
    } else {
        model.forward(batch, training: training, rng: &rng)
    }
    let rewards = model.rewardForward(training: training, rng: &rng)
    // Objective and its gradients with respect to rewards and summed log-probs.
    var dRewards = [Float](repeating: 0, count: 2 * P)
    var dSeq = [Double](repeating: 0, count: 2 * P)
    var rewardLoss = 0.0, regLoss = 0.0, correct = 0
    for (j, i) in indices.enumerated() {
        let rc = Double(rewards[j]), rr = Double(rewards[P + j])
        if rc > rr { correct += 1 }
        let r = rewardPairLoss(cfg, chosen: rc, rejected: rr, goldGap: pairs.goldGap[i])
        rewardLoss += r.loss * inv
        dRewards[j] = Float((1 - alpha) * r.dChosen * inv)
        dRewards[P + j] = Float((1 - alpha) * r.dRejected * inv)
        if alpha > 0 {
            let g = regularizerPairLoss(cfg, pairs, i, chosenLogProb: logProbs[j], rejectedLogProb: logProbs[P + j])
            regLoss += g.loss * inv
            dSeq[j] = alpha * g.dChosen * inv
            dSeq[P + j] = alpha * g.dRejected * inv
        }
    }
    // InfoRM: β·KL(q(z|h) ‖ N(0, I)) of every sequence's latent, averaged over the 2P sequences
    // of the whole batch.
    var dLatent: (mean: [Float], logVariance: [Float])?
    if cfg.objective == .inform, let D = model.latentDimension {
        let beta = cfg.informSettings.beta, perSequence = 0.5 * inv
        let (mu, logVar) = model.lastLatents()
        var dMu = [Float](repeating: 0, count: 2 * P * D), dLogVar = [Float](repeating: 0, count: 2 * P * D)
        for b in 0..<(2 * P) {
            let k = gaussianKLToStandardNormal(mean: mu[(b * D)..<((b + 1) * D)].map(Double.init),
                                               logVariance: logVar[(b * D)..<((b + 1) * D)].map(Double.init))
            regLoss += k.kl * perSequence
            for d in 0..<D {
                dMu[b * D + d] = Float(beta * k.dMean[d] * perSequence)
                dLogVar[b * D + d] = Float(beta * k.dLogVariance[d] * perSequence)
            }
        }
        dLatent = (dMu, dLogVar)
    }
    if backward {
        if cfg.usesLanguageModel {
            // ∂L/∂logp[b,t] = ∂L/∂log π(y_b|x) for every masked position of row b.
            var dlogp = [Float](repeating: 0, count: 2 * P * T)
            for b in 0..<(2 * P) where dSeq[b] != 0 {
                for t in 0..<T where mask[b * T + t] != 0 { dlogp[b * T + t] = Float(dSeq[b]) * mask[b * T + t] }
            }
            model.backwardTokenLogProbs(dlogp: dlogp, dRewards: dRewards)
        } else {
            model.backward(dRewards: dRewards, dLatent: dLatent)
        }
    }
    if cfg.objective == .inform {
        return StepStatistics(loss: rewardLoss + cfg.informSettings.beta * regLoss, rewardLoss: rewardLoss,
                              regularizerLoss: regLoss, accuracy: Double(correct) * inv)
    }
    return StepStatistics(loss: grmCombined(reward: rewardLoss, regularizer: regLoss, alpha: alpha),
                          rewardLoss: rewardLoss, regularizerLoss: regLoss, accuracy: Double(correct) * inv)
}

/// One training step's loss and gradient (into `model.grads`): the batch's pairs split in two
/// fixed halves run at the same time on two replicas (DataParallel.swift), each half's loss
/// normalized by the whole batch. Without replicas (LoRA), or for tiny batches, one pass.
public func dataParallelPairStep(model: Transformer, replicas: [Transformer], config cfg: RewardModelConfig, pairs: EncodedPairs,
                                 indices: [Int], rng: inout RNG) -> StepStatistics {
    let P = indices.count
    // Each half draws its dropout from its own split of the stream; one pass from the stream.
    var rngs = [rng.split(0), rng.split(1)]
    let stats = rngs.withUnsafeMutableBufferPointer { rb in
        let shared = UncheckedSendable(rb)
        return model.dataParallel(indices) { m, items, half in
            guard let half else {
                return pairObjectiveStep(model: m, config: cfg, pairs: pairs, indices: items, training: true, backward: true, rng: &rng)
            }
            return pairObjectiveStep(model: m, config: cfg, pairs: pairs, indices: items, training: true,
                                     backward: true, rng: &shared.value[half], batchPairs: P)
        }
    }
    guard stats.count == 2 else { return stats[0] }
    _ = rng.next()
    let a = stats[0], b = stats[1]
    return StepStatistics(loss: a.loss + b.loss, rewardLoss: a.rewardLoss + b.rewardLoss,
                          regularizerLoss: a.regularizerLoss + b.regularizerLoss, accuracy: a.accuracy + b.accuracy)
}

// MARK: - Training one member

/// A member's training curve (one entry per optimizer step).
public struct TrainingCurve: Sendable, Equatable {
    public var step: [Int64] = []
    public var loss: [Double] = []
    public var accuracy: [Double] = []
    public var learningRate: [Double] = []
    public init() {}
}

/// A fresh proxy member: the base policy's weights, a fresh reward head, fresh adapters.
public func makeProxyMember(base: Transformer, config cfg: RewardModelConfig, headRNG: RNG) -> Transformer {
    let m = Transformer(config: base.config, heads: cfg.headConfig, lora: cfg.loraConfig)
    m.copyParameters(from: base)
    var heads = headRNG, adapters = headRNG.split("lora")
    m.initializeHeads(rng: &heads)
    m.initializeLoRA(rng: &adapters)
    m.frozen = cfg.frozenGroups
    return m
}

/// Trains `model` in place on `pairs`; data order from `orderRNG`, dropout from `dropoutRNG`.
/// Logs a progress line about every tenth of the run and hands every step to `metrics`.
/// Returns the per-step curve.
public func trainProxyMember(_ model: Transformer, config cfg: RewardModelConfig, pairs: EncodedPairs,
                             orderRNG: RNG, dropoutRNG: RNG, label: String, log: (String) -> Void,
                             metrics: StepMetrics? = nil) throws -> TrainingCurve {
    let P = pairs.count
    let stepsPerEpoch = (P + cfg.batchSize - 1) / cfg.batchSize
    let total = stepsPerEpoch * cfg.epochs
    let training = TrainingLoop(model: model, learningRate: cfg.learningRate, weightDecay: cfg.weightDecay, maxGradNorm: cfg.maxGradNorm,
                                schedule: CosineSchedule(peak: Float(cfg.learningRate), totalSteps: total,
                                                         warmupFraction: Float(cfg.warmupFraction), minRatio: 0))
    var order = orderRNG, drop = dropoutRNG
    var curve = TrainingCurve()
    let replicas = model.replicas
    var progress = TrainingProgress(total: total, everySteps: max(1, total / 10))
    var step = 0
    for _ in 0..<cfg.epochs {
        var perm = Array(0..<P)
        order.shuffle(&perm)
        for s in 0..<stepsPerEpoch {
            let idx = Array(perm[(s * cfg.batchSize)..<min(P, (s + 1) * cfg.batchSize)])
            let lr = training.learningRate
            let st = try training.step {
                let st = dataParallelPairStep(model: model, replicas: replicas, config: cfg, pairs: pairs, indices: idx, rng: &drop)
                if !st.loss.isFinite {
                    throw ExperimentError("\(label): non-finite loss (\(st.loss)) at step \(step + 1); try a lower rm.learning_rate")
                }
                return st
            }
            curve.step.append(Int64(step)); curve.loss.append(st.loss)
            curve.accuracy.append(st.accuracy); curve.learningRate.append(Double(lr))
            step += 1
            metrics?(step, [("loss", st.loss), ("accuracy", st.accuracy), ("learning_rate", Double(lr))])
            if progress.due(step) {
                let k = min(step, 20), rate = Double(step) / max(1e-9, progress.elapsed)
                log(String(format: "%@ step %d/%d  loss %.4f  acc %.3f  lr %.2e  (%.1f steps/s, %.0f pairs/s)",
                           label, step, total, Statistics.mean(curve.loss.suffix(k)), Statistics.mean(curve.accuracy.suffix(k)),
                           Double(lr), rate, rate * Double(cfg.batchSize))
                    + progress.eta(step))
            }
        }
    }
    return curve
}

/// The elementwise mean of the models' parameters (WARM, Ramé et al. 2024, arXiv
/// 2401.12187): θ = (1/k)·Σ θ_i. Models must share a layout.
public func averageWeights(_ models: [Transformer]) -> Transformer {
    precondition(!models.isEmpty, "averageWeights needs at least one model")
    let first = models[0]
    precondition(models.allSatisfy { $0.layout == first.layout }, "averageWeights: models differ in layout")
    let avg = Transformer(config: first.config, heads: first.heads, lora: first.lora?.config)
    avg.frozen = first.frozen
    let n = first.parameterCount, inv = 1 / Double(models.count)
    for i in 0..<n {
        var s = 0.0
        for m in models { s += Double(m.params[i]) }
        avg.params[i] = Float(s * inv)
    }
    return avg
}

/// Summed response log-probabilities log π(y|x) of full sequences under `model`
/// (forward only, no dropout), in batches: by the decoder's lean forward on packed weights
/// (`Transformer.responseLogProbs`), or the training forward for models with LoRA adapters.
public func responseLogProbs(_ model: Transformer, sequences: [[Int32]], responseStart: [Int], batchSize: Int = 256) -> [Double] {
    if model.lora == nil { return model.responseLogProbs(sequences, responseStart: responseStart, chunkSize: batchSize) }
    var out: [Double] = []
    out.reserveCapacity(sequences.count)
    var s = 0
    while s < sequences.count {
        let e = min(sequences.count, s + batchSize)
        let batch = TokenBatch(sequences: Array(sequences[s..<e]))
        let mask = responseLossMask(B: batch.B, T: batch.T, responseStart: Array(responseStart[s..<e]), lengths: batch.lengths)
        out += model.tokenLogProbs(batch, mask: mask).sequenceLogProbs(mask: mask, B: batch.B, T: batch.T)
        s = e
    }
    return out
}

// MARK: - The stage

/// Trains the proxy of `config` on `data.train`, evaluates it on the ID and OOD sets, and
/// measures its reward mean and std on `normalizationSamples` (base-policy samples) if given.
public func trainRewardModel(config cfg: RewardModelConfig, base: Transformer, world: World, data: PreferenceDataset,
                             seed: UInt64, normalizationSamples: (prompts: [Prompt], responses: [[Int32]])? = nil,
                             name variantName: String? = nil, log: (String) -> Void,
                             metrics: StepMetrics? = nil) throws -> RewardModelResult {
    try cfg.validate()
    precondition(!data.train.isEmpty, "trainRewardModel needs training pairs")
    let name = variantName ?? cfg.variantName
    let root = RNG(seed: seed).split("rm").split(name)
    var pairs = EncodedPairs(world: world, pairs: data.train)
    if cfg.usesLanguageModel && cfg.regularizer == .dpo {
        // π_ref = the frozen base policy: its log-probabilities are constants, computed once.
        pairs.referenceChosen = responseLogProbs(base, sequences: pairs.chosen, responseStart: pairs.responseStart,
                                                 batchSize: cfg.evalBatchSize)
        pairs.referenceRejected = responseLogProbs(base, sequences: pairs.rejected, responseStart: pairs.responseStart,
                                                   batchSize: cfg.evalBatchSize)
    }
    let k = cfg.memberCount
    log("rm \(name): \(k) member(s), \(pairs.count) pairs × \(cfg.epochs) epoch(s), batch \(cfg.batchSize), lr \(cfg.learningRate), "
        + "finetune \(cfg.finetune.rawValue), head \(cfg.headKind)")
    let t0 = monotonicSeconds()
    var members: [Transformer] = []
    var curves: [TrainingCurve] = []
    for m in 0..<k {
        // warm: one shared initialization; ensemble: a different one per member.
        let headRNG = cfg.objective == .warm ? root.split("head") : root.split("head").split(UInt64(m))
        let model = makeProxyMember(base: base, config: cfg, headRNG: headRNG)
        let curve = try trainProxyMember(model, config: cfg, pairs: pairs, orderRNG: root.split("order").split(UInt64(m)),
                                     dropoutRNG: root.split("dropout").split(UInt64(m)),
                                     label: k > 1 ? "rm \(name) member \(m + 1)/\(k):" : "rm \(name):", log: log,
                                     metrics: metrics.map { emit in { step, values in emit(step, [("member", Double(m))] + values) } })
        members.append(cfg.finetune == .lora ? model.mergeLoRA() : model)
        curves.append(curve)
    }
    let seconds = monotonicSeconds() - t0
    if cfg.objective == .warm { members = [averageWeights(members)] }
    for m in members { m.frozen = Set(ParameterGroup.allCases) }  // proxies are only scored downstream
    let proxy = ProxyRewardModel(name: name, members: members, combiner: cfg.objective == .ensemble ? cfg.combiner : .mean,
                                 uwoLambda: cfg.uwoLambda)
    var result = RewardModelResult(proxy: proxy, config: cfg, seed: seed, trainPairs: pairs.count, curves: curves,
                                   trainSeconds: seconds,
                                   pairsPerSecond: Double(pairs.count * cfg.epochs * k) / max(seconds, 1e-9))
    result.evaluate(base: base, world: world, data: data, normalizationSamples: normalizationSamples)
    log(result.summary)
    return result
}
