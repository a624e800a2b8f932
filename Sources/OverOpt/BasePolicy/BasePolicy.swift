// BasePolicy.swift — pretraining the base policy on the world's reference writer.
//
// The base policy is the "pretrained LLM" of the simulation: a GPT-2-style transformer
// trained by next-token prediction on sequences [BOS] prompt [SEP] response [EOS] written
// by the reference writer. It imitates mediocre writing, so best-of-n and PPO have room to
// improve on it. The loss counts every token after BOS (prompt and response), so the final
// hidden states carry the prompt's topic and tone — the features GRM's regularizer keeps.
// Pretraining uses prompts of every split (an LLM has seen every topic); reward models
// never see held-out prompts. The stage is deterministic for a seed and thread count and
// is cached by the run orchestrator (key: world fingerprint + this config).
import Foundation
import OverOptEngine
import OverOptHDF5

/// Settings of base-policy pretraining (`[base]` in a config file).
public struct BasePolicyConfig: ConfigSection, Equatable {
    /// Model size, one of `TransformerConfig.presetNames`: tiny, small (width 64, 2 layers,
    /// 2 heads), medium, large (128, 4, 4), xl; context 64.
    public var preset = "small"
    /// Number of writer sequences in the pretraining corpus.
    public var corpusSize = 40_000
    public var epochs = 1
    public var batchSize = 64
    public var learningRate = 2e-3
    /// Warmup as a fraction of all steps; cosine decay to 10% afterwards.
    public var warmupFraction = 0.03
    public var weightDecay = 0.1
    public var maxGradNorm = 1.0
    /// Seed of the corpus, initialization and data order. Independent of the run seed so
    /// that every run of a sweep reuses one cached base policy.
    public var seed: UInt64 = 0
    /// Sequences held out to measure NLL after training.
    public var evalSequences = 1000

    public init() {}

    public static let section = "base"

    public static var schema: [ConfigKey<BasePolicyConfig>] { [
        .key("preset", \.preset, "model size, one of the ladder below; context 64", .isPreset),
        .key("corpus_size", \.corpusSize, "writer sequences in the pretraining corpus", .atLeast(1)),
        .key("epochs", \.epochs, "passes over the corpus", .atLeast(1)),
        .key("batch_size", \.batchSize, "sequences per step", .atLeast(1)),
        .key("learning_rate", \.learningRate, "AdamW peak learning rate (warmup, then cosine to 10%)", .above(0)),
        .key("warmup_fraction", \.warmupFraction, "warmup share of the steps", .halfOpen(0, 1)),
        .key("weight_decay", \.weightDecay, "AdamW weight decay (matrices and embeddings only)", .atLeast(0)),
        .key("max_grad_norm", \.maxGradNorm, "global gradient-norm clip", .above(0)),
        .key("seed", \.seed, "corpus, initialization and data order (independent of the run's seed, so runs share one base)"),
        .key("eval_sequences", \.evalSequences, "held-out sequences for the reported NLL", .atLeast(1)),
    ] }

    /// The model configuration for a world.
    public func modelConfig(vocabSize: Int) -> TransformerConfig {
        TransformerConfig.preset(preset, vocabSize: vocabSize)!
    }
}

extension ConfigRule where Value == String {
    /// A model preset name (`TransformerConfig.presetNames`).
    static var isPreset: Self {
        .check("one of " + TransformerConfig.presetNames.map(jsonString).joined(separator: ", ")) { TransformerConfig.preset($1, vocabSize: 2) != nil }
    }
}

/// What pretraining produced: the model and its learning curve.
public struct BasePolicy: @unchecked Sendable {
    public let model: Transformer
    /// Optimizer step and mean training NLL per token over the last logging window.
    public var curveStep: [Int64] = []
    public var curveLoss: [Double] = []
    /// Mean NLL per token on held-out writer sequences.
    public var evalNLL: Double = .nan
    public var seconds: Double = 0
    /// Training tokens per second.
    public var tokensPerSecond: Double = 0
}

/// Pretrains a base policy on the world's reference writer.
public func pretrainBasePolicy(world: World, config: BasePolicyConfig, log: (String) -> Void,
                               metrics: StepMetrics? = nil) -> BasePolicy {
    let root = RNG(seed: config.seed).split("base-policy")
    var corpusRNG = root.split("corpus"), initRNG = root.split("init"), orderRNG = root.split("order")
    var dropRNG = root.split("dropout")
    let corpus = world.corpus(count: config.corpusSize, rng: &corpusRNG)
    var evalRNG = root.split("eval-corpus")
    let evalCorpus = world.corpus(count: config.evalSequences, rng: &evalRNG)

    let model = Transformer(config: config.modelConfig(vocabSize: world.vocabSize))
    model.initialize(rng: &initRNG)
    let stepsPerEpoch = (corpus.count + config.batchSize - 1) / config.batchSize
    let totalSteps = stepsPerEpoch * config.epochs
    let training = TrainingLoop(model: model, learningRate: config.learningRate, weightDecay: config.weightDecay, maxGradNorm: config.maxGradNorm,
                                schedule: CosineSchedule(peak: Float(config.learningRate), totalSteps: totalSteps,
                                                         warmupFraction: Float(config.warmupFraction)))
    log("base policy: \(config.preset) preset, \(model.parameterCount) parameters, \(corpus.count) sequences × \(config.epochs) epoch(s) = \(totalSteps) steps")

    let replicas = model.replicas
    var result = BasePolicy(model: model)
    var progress = TrainingProgress(total: totalSteps)
    var windowLoss = 0.0, windowTokens = 0, totalTokens = 0, step = 0
    var curveLoss = 0.0, curveTokens = 0
    let curveEvery = baseCurveInterval(totalSteps: totalSteps)
    for epoch in 0..<config.epochs {
        var order = Array(0..<corpus.count)
        orderRNG.shuffle(&order)
        for s in 0..<stepsPerEpoch {
            let idx = order[(s * config.batchSize)..<min(order.count, (s + 1) * config.batchSize)]
            let seqs = idx.map { corpus[$0] }
            // Two fixed halves of the batch on two replicas at the same time (DataParallel.swift:
            // the language-model loss splits the dropout stream over them itself).
            let parts = Transformer.dataParallelParts(seqs, replicas: replicas).map { h -> (batch: TokenBatch, mask: [Float]) in
                let b = TokenBatch(sequences: h)
                return (b, wholeSequenceMask(b))
            }
            let tokens = parts.reduce(0) { $0 + Int($1.mask.reduce(0, +)) }
            let loss = training.step {
                parts.count == 2
                    ? model.languageModelLoss(parts: parts, replicas: replicas, training: true, rng: &dropRNG)
                    : model.languageModelLoss(parts[0].batch, mask: parts[0].mask, backward: true, training: true, rng: &dropRNG)
            }
            step += 1
            windowLoss += Double(loss) * Double(tokens); windowTokens += tokens; totalTokens += tokens
            curveLoss += Double(loss) * Double(tokens); curveTokens += tokens
            if step % curveEvery == 0 || step == totalSteps {
                result.curveStep.append(Int64(step)); result.curveLoss.append(curveLoss / Double(max(1, curveTokens)))
                curveLoss = 0; curveTokens = 0
            }
            if progress.due(step) {
                let mean = windowLoss / Double(max(1, windowTokens)), tokensPerSecond = Double(totalTokens) / progress.elapsed
                log(String(format: "  base policy epoch %d step %d/%d  loss %.3f  %.0f tokens/s", epoch + 1, step, totalSteps, mean, tokensPerSecond)
                    + progress.eta(step))
                metrics?(step, [("loss", mean), ("tokens_per_second", tokensPerSecond)])
                windowLoss = 0; windowTokens = 0
            }
        }
    }
    result.seconds = progress.elapsed
    result.tokensPerSecond = Double(totalTokens) / result.seconds
    result.evalNLL = meanNLL(model: model, sequences: evalCorpus)
    log(String(format: "base policy: held-out NLL %.3f nats/token after %.1f s", result.evalNLL, result.seconds))
    return result
}

/// Steps between two points of the pretraining loss curve: about 100 points per run, the
/// same on every machine (each point is the token-weighted mean loss since the previous one).
public func baseCurveInterval(totalSteps: Int) -> Int { max(1, totalSteps / 100) }

/// Loss mask counting every next-token prediction of a sequence (positions 0…len−2).
public func wholeSequenceMask(_ batch: TokenBatch) -> [Float] {
    responseLossMask(B: batch.B, T: batch.T, responseStart: [Int](repeating: 1, count: batch.B), lengths: batch.lengths)
}

/// Mean next-token NLL per token over whole sequences (no dropout).
public func meanNLL(model: Transformer, sequences: [[Int32]], batchSize: Int = 256) -> Double {
    var total = 0.0, count = 0.0
    var start = 0
    var rng = RNG(seed: 0)
    while start < sequences.count {
        let batch = TokenBatch(sequences: Array(sequences[start..<min(sequences.count, start + batchSize)]))
        let mask = wholeSequenceMask(batch)
        let n = Double(mask.reduce(0, +))
        total += Double(model.languageModelLoss(batch, mask: mask, backward: false, rng: &rng)) * n
        count += n
        start += batchSize
    }
    return total / max(1, count)
}

// MARK: - HDF5

extension BasePolicy {
    /// Writes the model checkpoint (`model/`) and the learning curve.
    public func write(to group: H5Group) throws {
        try model.save(to: group.createGroup("model"))
        try group.write("curve_step", curveStep)
        try group.write("curve_loss", curveLoss)
        try group.setAttribute("eval_nll", evalNLL)
        try group.setAttribute("seconds", seconds)
        try group.setAttribute("tokens_per_second", tokensPerSecond)
        try group.setAttribute("parameters", Int64(model.parameterCount))
    }

    /// Reads a base policy written by `write(to:)`.
    public static func read(from group: H5Group) throws -> BasePolicy {
        var b = BasePolicy(model: try Transformer.load(from: group.group("model")))
        b.curveStep = try group.readInt64s("curve_step").values
        b.curveLoss = try group.readDoubles("curve_loss").values
        b.evalNLL = try group.doubleAttribute("eval_nll")
        b.seconds = try group.doubleAttribute("seconds")
        b.tokensPerSecond = try group.doubleAttribute("tokens_per_second")
        return b
    }
}
