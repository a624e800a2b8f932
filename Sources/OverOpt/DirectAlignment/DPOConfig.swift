// DPOConfig.swift — the settings of the direct-alignment stage (`[dpo]`): DPO or IPO on the
// run's preference data, evaluated like the RL optimizers.
import OverOptEngine
import OverOptHDF5

/// `[dpo]`: the policy trained directly on the run's training pairs (with their label noise),
/// the base policy as reference; written to `/dpo/<loss>/`.
public struct DPOConfig: Codable, Sendable, Equatable {
    /// "dpo" or "ipo".
    public var loss = DirectAlignmentLoss.dpo
    /// β: DPO's inverse temperature, IPO's regularization (target gap 1/(2β)).
    public var beta = 0.1
    /// Optimizer steps (each `batch_size` pairs, cycling through shuffled passes over the pairs).
    public var steps = 240
    public var batchSize = 16
    /// AdamW, constant.
    public var learningRate = 3e-5
    public var weightDecay = 0.0
    public var maxGradNorm = 1.0
    /// Evaluation settings, as `[ppo]`'s: samples at temperature 0.7, top-p 0.9 on the held-out
    /// prompts, KL and entropy of the tempered distribution (`tempered_logprobs`).
    public var temperature: Float = 0.7
    public var topP: Float = 0.9
    public var temperedLogprobs = true
    public var maxNewTokens = 50
    public var evalEvery = 20
    public var evalPrompts = 64
    public var sampleTexts = 4
    public var forwardBatchSize = 64

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case loss, beta, steps, temperature
        case batchSize = "batch_size", learningRate = "learning_rate", weightDecay = "weight_decay"
        case maxGradNorm = "max_grad_norm", topP = "top_p", temperedLogprobs = "tempered_logprobs"
        case maxNewTokens = "max_new_tokens", evalEvery = "eval_every", evalPrompts = "eval_prompts"
        case sampleTexts = "sample_texts", forwardBatchSize = "forward_batch_size"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DPOConfig()
        func get<T: Decodable>(_ k: CodingKeys, _ def: T) throws -> T { try c.decodeIfPresent(T.self, forKey: k) ?? def }
        let name = try get(.loss, d.loss.rawValue)
        guard let l = DirectAlignmentLoss(rawValue: name) else {
            throw DecodingError.dataCorruptedError(forKey: .loss, in: c, debugDescription: "must be \"dpo\" or \"ipo\", got \"\(name)\"")
        }
        loss = l
        beta = try get(.beta, d.beta); steps = try get(.steps, d.steps); batchSize = try get(.batchSize, d.batchSize)
        learningRate = try get(.learningRate, d.learningRate); weightDecay = try get(.weightDecay, d.weightDecay)
        maxGradNorm = try get(.maxGradNorm, d.maxGradNorm); temperature = try get(.temperature, d.temperature)
        topP = try get(.topP, d.topP); temperedLogprobs = try get(.temperedLogprobs, d.temperedLogprobs)
        maxNewTokens = try get(.maxNewTokens, d.maxNewTokens); evalEvery = try get(.evalEvery, d.evalEvery)
        evalPrompts = try get(.evalPrompts, d.evalPrompts); sampleTexts = try get(.sampleTexts, d.sampleTexts)
        forwardBatchSize = try get(.forwardBatchSize, d.forwardBatchSize)
    }

    /// Throws `CriticFreeConfigError` (section "dpo") naming the first key out of range.
    public func validate() throws {
        func check(_ ok: Bool, _ key: CodingKeys, _ message: String) throws {
            if !ok { throw CriticFreeConfigError(section: "dpo", key: key.rawValue, message: message) }
        }
        try check(beta > 0 && beta.isFinite, .beta, "must be > 0, got \(beta)")
        try check(steps >= 0, .steps, "must be ≥ 0, got \(steps)")
        try check(batchSize >= 1, .batchSize, "must be ≥ 1, got \(batchSize)")
        try check(learningRate > 0 && learningRate.isFinite, .learningRate, "must be > 0, got \(learningRate)")
        try check(weightDecay >= 0, .weightDecay, "must be ≥ 0, got \(weightDecay)")
        try check(maxGradNorm > 0, .maxGradNorm, "must be > 0, got \(maxGradNorm)")
        try check(temperature > 0, .temperature, "must be > 0, got \(temperature)")
        try check(topP > 0 && topP <= 1, .topP, "must be in (0, 1], got \(topP)")
        try check(maxNewTokens >= 1, .maxNewTokens, "must be ≥ 1, got \(maxNewTokens)")
        try check(evalEvery >= 1, .evalEvery, "must be ≥ 1, got \(evalEvery)")
        try check(evalPrompts >= 1, .evalPrompts, "must be ≥ 1, got \(evalPrompts)")
        try check(sampleTexts >= 0 && sampleTexts <= evalPrompts, .sampleTexts,
                  "must be in 0...eval_prompts (\(evalPrompts)), got \(sampleTexts)")
        try check(forwardBatchSize >= 1, .forwardBatchSize, "must be ≥ 1, got \(forwardBatchSize)")
    }

    public var attributes: [OptimizerSetting] {
        [.init("loss", .string(loss.rawValue)), .init("beta", .float(beta)), .init("steps", .int(steps)),
         .init("batch_size", .int(batchSize)), .init("learning_rate", .float(learningRate)),
         .init("weight_decay", .float(weightDecay)), .init("max_grad_norm", .float(maxGradNorm)),
         .init("temperature", .float(decimalDouble(temperature))), .init("top_p", .float(decimalDouble(topP))),
         .init("tempered_logprobs", .bool(temperedLogprobs)), .init("max_new_tokens", .int(maxNewTokens)),
         .init("eval_every", .int(evalEvery)), .init("eval_prompts", .int(evalPrompts)),
         .init("sample_texts", .int(sampleTexts)), .init("forward_batch_size", .int(forwardBatchSize))]
    }
}
