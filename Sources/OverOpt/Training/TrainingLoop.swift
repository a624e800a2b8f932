// TrainingLoop.swift — the plumbing every trainer shares, so that a trainer writes only its
// loss: base-policy pretraining, reward models, PPO, GRPO/RLOO and DPO/IPO run on it.
//
//   TrainingLoop.step   one optimizer step: zero the gradients, the trainer's loss and its
//                       gradients, global gradient-norm clipping, AdamW at the step's rate
//                       (constant, or a warmup + cosine schedule);
//   dataParallel        a batch's two fixed halves at once on the model's two replicas
//                       (DataParallel.swift), or the whole batch in one pass;
//   TrainingProgress    one progress line at most every `progressInterval` seconds and at
//                       the last step, with the time remaining;
//   nonFinite           the step's losses or rewards that are NaN or infinite, by name;
//   frozenReference     a policy optimizer's reference π_ref, the frozen base policy.
import OverOptEngine

/// A model, its AdamW optimizer and the step every trainer takes with them.
public struct TrainingLoop {
    public let model: Transformer
    public let optimizer: AdamW
    /// Gradients are scaled down to this global L2 norm when longer.
    public let maxGradNorm: Double
    /// The learning rate by step (from 0); nil: the optimizer's constant rate.
    public let schedule: CosineSchedule?

    public init(model: Transformer, learningRate: Double, weightDecay: Double, maxGradNorm: Double, schedule: CosineSchedule? = nil) {
        self.model = model
        optimizer = AdamW(model: model, config: AdamWConfig(learningRate: Float(learningRate), weightDecay: Float(weightDecay)))
        self.maxGradNorm = maxGradNorm
        self.schedule = schedule
    }

    /// The learning rate of the next step.
    public var learningRate: Float { schedule?.learningRate(step: optimizer.step) ?? optimizer.config.learningRate }

    /// One optimizer step: zeroes the gradients, runs `lossAndGradients` (which accumulates
    /// the gradient of the loss into `model.grads`, and may throw to stop before the update),
    /// clips the gradient norm, then updates the weights. Returns what `lossAndGradients`
    /// returned.
    @discardableResult
    public func step<T>(_ lossAndGradients: () throws -> T) rethrows -> T {
        model.zeroGrad()
        let value = try lossAndGradients()
        clipGradientNorm(model, maxNorm: Float(maxGradNorm))
        optimizer.update(model, lr: learningRate)
        return value
    }
}

extension Transformer {
    /// `part` of `items` on a model: each of two fixed halves at once on the two replicas
    /// (DataParallel.swift), or all of them on this model in one pass (a model without
    /// replicas, or a tiny batch). `part`'s third argument is the half, nil for one pass.
    public func dataParallel<Item, Part>(_ items: [Item], _ part: (Transformer, [Item], Int?) -> Part) -> [Part] {
        let halves = Transformer.dataParallelParts(items, replicas: replicas)
        guard halves.count == 2 else { return [part(self, items, nil)] }
        return runOnReplicas(replicas) { r, h in part(r, halves[h], h) }
    }
}

/// The frozen reference π_ref of a policy optimizer: the base policy's weights with its LM
/// head, nothing trained.
public func frozenReference(_ basePolicy: Transformer) -> Transformer {
    let reference = Transformer(config: basePolicy.config, heads: .languageModel)
    reference.copyParameters(from: basePolicy)
    reference.frozen = Set(reference.layout.tensors.map(\.group))
    return reference
}

/// Seconds between two progress lines of a training loop.
public let progressInterval = 5.0

/// When a training loop logs: at the last step, and at most every `progressInterval`
/// seconds before it (or every `everySteps` steps, when set).
public struct TrainingProgress {
    public let total: Int
    let everySteps: Int?
    public let start = monotonicSeconds()
    private var last: Double

    public init(total: Int, everySteps: Int? = nil) {
        self.total = total
        self.everySteps = everySteps
        last = start
    }

    /// Seconds since the loop started.
    public var elapsed: Double { monotonicSeconds() - start }

    /// Whether step `step` (from 1) logs a line; if so, the clock restarts.
    public mutating func due(_ step: Int) -> Bool {
        let now = monotonicSeconds()
        guard step == total || now - last > progressInterval || everySteps.map({ step % $0 == 0 }) == true else { return false }
        last = now
        return true
    }

    /// " · about 3 min left" after `step` of `total` steps.
    public func eta(_ step: Int) -> String { etaSuffix(elapsed: elapsed, done: Double(step), total: Double(total)) }
}

/// The named values that are NaN or infinite, as "name value, …" (nil when all are finite).
public func nonFinite(_ values: [(String, Double)]) -> String? {
    let bad = values.filter { !$0.1.isFinite }
    return bad.isEmpty ? nil : bad.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
}
