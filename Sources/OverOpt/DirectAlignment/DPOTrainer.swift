// DPOTrainer.swift — direct alignment (DPO or IPO) of a copy of the base policy on the run's
// preference pairs, evaluated with the evaluation every policy optimizer shares.
//
// Each step takes `batch_size` training pairs (shuffled passes; the pairs keep their label
// noise), reads the sequence log-probabilities of chosen and rejected responses under the
// policy (training forward, raw model) and under the reference (the frozen base policy, read
// once for all pairs through the lean forward), and steps on the mean pair loss
// (DirectAlignmentMath.swift). Pairs run data-parallel in two halves on two replicas.
// Every `eval_every` steps the held-out evaluation measures gold, KL to the base policy,
// length, entropy and — for comparison with the RL optimizers — the score of the run's
// first proxy (DPO itself uses no proxy).
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif
import OverOptEngine
import OverOptHDF5

public final class DPOTrainer {
    public let config: DPOConfig
    public let world: World
    public let policy: Transformer
    public let reference: Transformer
    let pairs: [PreferencePair]
    /// The policy's optimizer steps.
    let training: TrainingLoop
    let sampler: Sampler
    var rng: RNG
    let evaluator: PolicyEvaluator
    /// Reference sequence log-probabilities of each pair's chosen and rejected response.
    var referenceChosen: [Double] = []
    var referenceRejected: [Double] = []

    /// - Parameters:
    ///   - scorer: the score reported as `proxy` in the evaluations (no effect on training).
    ///   - evaluationRNG: the evaluation's sampling stream (default: split from `seed`).
    public init(config: DPOConfig, world: World, basePolicy: Transformer, pairs: [PreferencePair],
                scorer: @escaping PolicyScorer, seed: UInt64, evaluationRNG: RNG? = nil) throws {
        try config.validate()
        if let problem = maxNewTokensProblem(section: "dpo", config.maxNewTokens, world: world) { throw problem }
        guard !pairs.isEmpty else { throw TrainerInputError("DPO needs training pairs") }
        self.config = config
        self.world = world
        self.pairs = pairs
        policy = Transformer(config: basePolicy.config, heads: .languageModel)
        policy.copyParameters(from: basePolicy)
        reference = frozenReference(basePolicy)
        training = TrainingLoop(model: policy, learningRate: config.learningRate, weightDecay: config.weightDecay,
                                maxGradNorm: config.maxGradNorm)
        sampler = Sampler(model: policy)
        rng = RNG(seed: seed)
        let sampling = SamplingConfig(temperature: config.temperature, topP: config.topP, maxNewTokens: config.maxNewTokens,
                                      eosToken: Tokenizer.eos)
        evaluator = PolicyEvaluator(world: world, reference: reference, scorer: scorer, sampling: sampling,
                                    reading: LogprobReading(temperature: config.temperature, tempered: config.temperedLogprobs,
                                                            chunkSize: config.forwardBatchSize),
                                    rng: evaluationRNG ?? rng.split("dpo-eval"), evalPrompts: config.evalPrompts, sampleTexts: config.sampleTexts)
        // The preference model's log-probabilities are those of the raw model (temperature 1).
        let raw = LogprobReading(temperature: 1, tempered: false, chunkSize: config.forwardBatchSize)
        let (seqs, starts) = sequences(pairs.indices.map { $0 })
        let logp = raw.readout(reference, sequences: seqs, responseStart: starts, values: false, entropy: false).logp
        for i in pairs.indices {
            referenceChosen.append(logp[2 * i].reduce(0, +))
            referenceRejected.append(logp[2 * i + 1].reduce(0, +))
        }
    }

    /// Chosen and rejected sequences of `rows`, interleaved, with their response starts.
    func sequences(_ rows: [Int]) -> ([[Int32]], [Int]) {
        var seqs: [[Int32]] = [], starts: [Int] = []
        for i in rows {
            let context = world.context(for: pairs[i].prompt)
            seqs.append(context + pairs[i].chosen); seqs.append(context + pairs[i].rejected)
            starts.append(context.count); starts.append(context.count)
        }
        return (seqs, starts)
    }

    public func evaluate() -> PolicyEvaluation { evaluator.evaluate(policy: policy, sampler: sampler) }

    /// Loss and accuracy sums of `rows` on `model`, with the backward of loss/`count`.
    func part(model: Transformer, rows: [Int], count: Int) -> (loss: Double, correct: Double) {
        let (seqs, starts) = sequences(rows)
        return directAlignmentBackward(model: model, sequences: seqs, responseStarts: starts,
                                       referenceChosen: rows.map { referenceChosen[$0] },
                                       referenceRejected: rows.map { referenceRejected[$0] },
                                       loss: config.loss, beta: config.beta, count: count)
    }

    /// Runs `config.steps` steps with evaluations at 0, every `eval_every` and at the end.
    /// Training curves: `policy_loss` (the mean pair loss) and `train_reward` (the share of
    /// the batch's pairs whose chosen response the policy prefers more than the reference does).
    public func run(log: (String) -> Void = { _ in }, metrics: StepMetrics? = nil,
                    evaluations: StepMetrics? = nil) -> PolicyCurves {
        var curves = PolicyCurves(settings: config.attributes,
                                  omitted: ["value_loss", "train_kl", "clip_fraction", "approx_kl", "kl_coef"])
        var progress = TrainingProgress(total: config.steps)
        var seconds = ["update": 0.0, "eval": 0.0]
        func record(_ step: Int) {
            curves.evaluate(step: step, stage: "dpo", seconds: &seconds, log: log, evaluations: evaluations, evaluate)
        }
        record(0)
        var order: [Int] = [], cursor = 0
        for step in stride(from: 1, through: config.steps, by: 1) {
            let t0 = monotonicSeconds()
            var rows: [Int] = []
            while rows.count < config.batchSize {
                if cursor >= order.count { order = Array(pairs.indices); rng.shuffle(&order); cursor = 0 }
                rows.append(order[cursor]); cursor += 1
            }
            let parts = training.step { policy.dataParallel(rows) { model, half, _ in self.part(model: model, rows: half, count: rows.count) } }
            seconds["update", default: 0] += monotonicSeconds() - t0
            let loss = parts.reduce(0) { $0 + $1.loss } / Double(rows.count)
            let accuracy = parts.reduce(0) { $0 + $1.correct } / Double(rows.count)
            if let bad = nonFinite([("loss", loss)]) {
                curves.nonFiniteStep = step
                log("dpo step \(step): non-finite \(bad); stopping")
                break
            }
            curves.trainStep.append(Int64(step)); curves.policyLoss.append(loss); curves.trainReward.append(accuracy)
            metrics?(step, [("policy_loss", loss), ("accuracy", accuracy)])
            if progress.due(step) {
                log(String(format: "dpo step %d/%d: %@ loss %.4f, pairs preferred %.3f", step, config.steps, config.loss.rawValue, loss, accuracy)
                    + progress.eta(step))
            }
            if step % config.evalEvery == 0 || step == config.steps { record(step) }
        }
        curves.seconds = seconds
        return curves
    }
}

/// The direct-alignment loss of pairs on `model`, with its backward: `sequences` holds each
/// pair's chosen and rejected sequence, interleaved, `responseStarts` where their responses
/// begin, `referenceChosen`/`referenceRejected` the reference's summed response
/// log-probabilities per pair. Accumulates the gradient of (sum of pair losses)/`count` into
/// `model`'s gradients and returns the loss sum and the number of pairs whose implicit reward
/// margin is positive.
func directAlignmentBackward(model: Transformer, sequences seqs: [[Int32]], responseStarts starts: [Int],
                             referenceChosen: [Double], referenceRejected: [Double],
                             loss kind: DirectAlignmentLoss, beta: Double, count: Int) -> (loss: Double, correct: Double) {
    precondition(seqs.count == 2 * referenceChosen.count && referenceChosen.count == referenceRejected.count)
    let batch = TokenBatch(sequences: seqs)
    let mask = responseLossMask(B: batch.B, T: batch.T, responseStart: starts, lengths: batch.lengths)
    let lp = model.tokenLogProbs(batch, mask: mask)
    var dlogp = [Float](repeating: 0, count: batch.B * batch.T)
    var loss = 0.0, correct = 0.0
    func positions(_ b: Int) -> Range<Int> { (b * batch.T + starts[b] - 1)..<(b * batch.T + seqs[b].count - 1) }
    for j in referenceChosen.indices {
        let c = positions(2 * j), r = positions(2 * j + 1)
        let pc = c.reduce(0.0) { $0 + Double(lp.logp[$1]) }, pr = r.reduce(0.0) { $0 + Double(lp.logp[$1]) }
        let l = directAlignmentLoss(kind, beta: beta, policyChosen: pc, policyRejected: pr,
                                    referenceChosen: referenceChosen[j], referenceRejected: referenceRejected[j])
        loss += l.loss
        if l.margin > 0 { correct += 1 }
        for p in c { dlogp[p] = Float(l.gradChosen / Double(count)) }
        for p in r { dlogp[p] = Float(l.gradRejected / Double(count)) }
    }
    model.backwardTokenLogProbs(dlogp: dlogp)
    return (loss, correct)
}
