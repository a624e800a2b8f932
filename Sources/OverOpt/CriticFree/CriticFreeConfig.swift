// CriticFreeConfig.swift — the settings of the GRPO (`[grpo]`) and RLOO (`[rloo]`) stages,
// their defaults and validation.
//
// Both share PPO's rollout settings (temperature 0.7, top-p 0.9, tempered log-probabilities,
// 50 new tokens) and its evaluation (`eval_every`, `eval_prompts`, `sample_texts`), and by
// default draw as many rollouts per iteration as PPO (16 prompts × 4 = 64), so the curves
// compare at matched sampling cost. Neither penalizes KL by default (as PPO here, so that
// over-optimization shows).
import OverOptEngine
import OverOptHDF5

/// The optimizer a `CriticFreeTrainer` runs.
public enum CriticFreeAlgorithm: String, Sendable { case grpo, rloo }

/// The resolved settings a `CriticFreeTrainer` runs with (from `GRPOConfig` or `RLOOConfig`).
public struct CriticFreeSettings: Sendable, Equatable {
    public var algorithm: CriticFreeAlgorithm
    public var steps: Int
    public var promptsPerStep: Int
    /// G (GRPO) or k (RLOO): responses per prompt.
    public var groupSize: Int
    public var temperature: Float
    public var topP: Float
    public var temperedLogprobs: Bool
    public var maxNewTokens: Int
    public var learningRate: Double
    public var weightDecay: Double
    /// Optimization epochs over each batch (RLOO: 1).
    public var epochs: Int
    /// Responses per optimizer step (GRPO); rows per gradient-accumulation chunk (RLOO, one
    /// optimizer step per batch).
    public var minibatchSize: Int
    /// ε of GRPO's clipped ratio (unused by RLOO).
    public var clipRange: Double
    /// β: GRPO's KL term in the loss, RLOO's KL penalty in the reward.
    public var klCoef: Double
    public var klEstimator: KLPenaltyEstimator
    public var scaleRewards: Bool
    public var lengthNormalization: Bool
    public var maxGradNorm: Double
    public var evalEvery: Int
    public var evalPrompts: Int
    public var sampleTexts: Int
    public var forwardBatchSize: Int
    /// `reward_shaping`: `none` (absent) or `par`, PAR's sigmoid of the score minus reference
    /// responses' scores (RewardShaping.swift), applied before the advantages.
    public var rewardShaping: RewardShaping? = nil
    /// `par_reference_samples`: M reference responses per training prompt for PAR (absent: 1).
    public var parReferenceSamples: Int? = nil

    /// The reward shaping (none unless set).
    public var shaping: RewardShaping { rewardShaping ?? .none }
}

/// A GRPO or RLOO setting outside its valid range.
public struct CriticFreeConfigError: Error, CustomStringConvertible, Equatable {
    public let section: String
    public let key: String
    public let message: String
    public var description: String { "\(section).\(key): \(message)" }
}

/// `[grpo]`: Group Relative Policy Optimization (Shao et al. 2024) against each proxy.
public struct GRPOConfig: Codable, Sendable, Equatable {
    public var steps = 60
    /// Training prompts per iteration; each gets `group_size` responses.
    public var promptsPerStep = 16
    /// G: responses per prompt (the group the advantages are normalized in).
    public var groupSize = 4
    public var temperature: Float = 0.7
    public var topP: Float = 0.9
    public var temperedLogprobs = true
    public var maxNewTokens = 50
    public var learningRate = 1e-5
    public var weightDecay = 0.0
    /// Updates per batch: epochs over shuffled minibatches (GRPO's μ).
    public var epochs = 4
    /// Responses per minibatch (one optimizer step each).
    public var minibatchSize = 16
    public var clipRange = 0.2
    /// β of the KL term in the loss (0: off, so that over-optimization shows; DeepSeekMath: 0.04).
    public var klCoef = 0.0
    /// The per-token KL estimator of that term: "k1", "k2" or "k3" (DeepSeekMath).
    public var klEstimator = KLPenaltyEstimator.k3
    /// Divide group-centred rewards by the group's std (false: Dr. GRPO, Liu et al. 2025).
    public var scaleRewards = true
    /// Average tokens within each response (false: divide by max_new_tokens, Dr. GRPO).
    public var lengthNormalization = true
    public var maxGradNorm = 1.0
    public var evalEvery = 5
    public var evalPrompts = 64
    public var sampleTexts = 4
    public var forwardBatchSize = 64
    /// `reward_shaping` and `par_reference_samples`: PAR (`CriticFreeSettings`).
    public var rewardShaping: RewardShaping? = nil
    public var parReferenceSamples: Int? = nil

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case rewardShaping = "reward_shaping", parReferenceSamples = "par_reference_samples"
        case steps, temperature, epochs
        case promptsPerStep = "prompts_per_step", groupSize = "group_size", topP = "top_p"
        case temperedLogprobs = "tempered_logprobs", maxNewTokens = "max_new_tokens", learningRate = "learning_rate"
        case weightDecay = "weight_decay", minibatchSize = "minibatch_size", clipRange = "clip_range", klCoef = "kl_coef"
        case klEstimator = "kl_estimator", scaleRewards = "scale_rewards", lengthNormalization = "length_normalization"
        case maxGradNorm = "max_grad_norm", evalEvery = "eval_every", evalPrompts = "eval_prompts"
        case sampleTexts = "sample_texts", forwardBatchSize = "forward_batch_size"
    }

    /// Decodes with every missing key at its default.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = GRPOConfig()
        func get<T: Decodable>(_ k: CodingKeys, _ def: T) throws -> T { try c.decodeIfPresent(T.self, forKey: k) ?? def }
        steps = try get(.steps, d.steps); promptsPerStep = try get(.promptsPerStep, d.promptsPerStep)
        groupSize = try get(.groupSize, d.groupSize); temperature = try get(.temperature, d.temperature)
        topP = try get(.topP, d.topP); temperedLogprobs = try get(.temperedLogprobs, d.temperedLogprobs)
        maxNewTokens = try get(.maxNewTokens, d.maxNewTokens); learningRate = try get(.learningRate, d.learningRate)
        weightDecay = try get(.weightDecay, d.weightDecay); epochs = try get(.epochs, d.epochs)
        minibatchSize = try get(.minibatchSize, d.minibatchSize); clipRange = try get(.clipRange, d.clipRange)
        klCoef = try get(.klCoef, d.klCoef)
        let est = try get(.klEstimator, d.klEstimator.rawValue)
        guard let e = KLPenaltyEstimator(rawValue: est) else {
            throw DecodingError.dataCorruptedError(forKey: .klEstimator, in: c, debugDescription: "must be k1, k2 or k3, got \"\(est)\"")
        }
        klEstimator = e
        scaleRewards = try get(.scaleRewards, d.scaleRewards)
        lengthNormalization = try get(.lengthNormalization, d.lengthNormalization)
        maxGradNorm = try get(.maxGradNorm, d.maxGradNorm); evalEvery = try get(.evalEvery, d.evalEvery)
        evalPrompts = try get(.evalPrompts, d.evalPrompts); sampleTexts = try get(.sampleTexts, d.sampleTexts)
        forwardBatchSize = try get(.forwardBatchSize, d.forwardBatchSize)
        rewardShaping = try c.decodeIfPresent(RewardShaping.self, forKey: .rewardShaping)
        parReferenceSamples = try c.decodeIfPresent(Int.self, forKey: .parReferenceSamples)
    }

    public var settings: CriticFreeSettings {
        var s = CriticFreeSettings(algorithm: .grpo, steps: steps, promptsPerStep: promptsPerStep, groupSize: groupSize,
                           temperature: temperature, topP: topP, temperedLogprobs: temperedLogprobs, maxNewTokens: maxNewTokens,
                           learningRate: learningRate, weightDecay: weightDecay, epochs: epochs, minibatchSize: minibatchSize,
                           clipRange: clipRange, klCoef: klCoef, klEstimator: klEstimator, scaleRewards: scaleRewards,
                           lengthNormalization: lengthNormalization, maxGradNorm: maxGradNorm, evalEvery: evalEvery,
                           evalPrompts: evalPrompts, sampleTexts: sampleTexts, forwardBatchSize: forwardBatchSize)
        s.rewardShaping = rewardShaping; s.parReferenceSamples = parReferenceSamples
        return s
    }

    /// Throws `CriticFreeConfigError` naming the first key out of range.
    public func validate() throws {
        try settings.validate()
    }

    /// Every setting as an HDF5 attribute with its type.
    public var attributes: [OptimizerSetting] {
        settings.commonAttributes(groupKey: "group_size", epochs: true) + [
            OptimizerSetting("clip_range", .float(clipRange)), OptimizerSetting("kl_estimator", .string(klEstimator.rawValue)),
            OptimizerSetting("scale_rewards", .bool(scaleRewards)), OptimizerSetting("length_normalization", .bool(lengthNormalization)),
        ]
    }
}

/// `[rloo]`: REINFORCE Leave-One-Out (Ahmadian et al. 2024) against each proxy.
public struct RLOOConfig: Codable, Sendable, Equatable {
    public var steps = 60
    /// Training prompts per iteration; each gets `k` responses.
    public var promptsPerStep = 16
    /// k: responses per prompt (the leave-one-out baseline uses the other k − 1).
    public var k = 4
    public var temperature: Float = 0.7
    public var topP: Float = 0.9
    public var temperedLogprobs = true
    public var maxNewTokens = 50
    /// AdamW, constant. One REINFORCE step per batch of 64 takes a larger step than PPO's 16
    /// minibatch steps at the same rate would, so the default is PPO's × 4.
    public var learningRate = 4e-5
    public var weightDecay = 0.0
    /// Rows per gradient-accumulation chunk (the batch is one optimizer step).
    public var minibatchSize = 16
    /// β of the KL penalty in the reward: r = score − β·Σ_t log π/π_ref (0: off).
    public var klCoef = 0.0
    public var maxGradNorm = 1.0
    public var evalEvery = 5
    public var evalPrompts = 64
    public var sampleTexts = 4
    public var forwardBatchSize = 64
    /// `reward_shaping` and `par_reference_samples`: PAR (`CriticFreeSettings`).
    public var rewardShaping: RewardShaping? = nil
    public var parReferenceSamples: Int? = nil

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case rewardShaping = "reward_shaping", parReferenceSamples = "par_reference_samples"
        case steps, temperature, k
        case promptsPerStep = "prompts_per_step", topP = "top_p"
        case temperedLogprobs = "tempered_logprobs", maxNewTokens = "max_new_tokens", learningRate = "learning_rate"
        case weightDecay = "weight_decay", minibatchSize = "minibatch_size", klCoef = "kl_coef"
        case maxGradNorm = "max_grad_norm", evalEvery = "eval_every", evalPrompts = "eval_prompts"
        case sampleTexts = "sample_texts", forwardBatchSize = "forward_batch_size"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RLOOConfig()
        func get<T: Decodable>(_ key: CodingKeys, _ def: T) throws -> T { try c.decodeIfPresent(T.self, forKey: key) ?? def }
        steps = try get(.steps, d.steps); promptsPerStep = try get(.promptsPerStep, d.promptsPerStep)
        k = try get(.k, d.k); temperature = try get(.temperature, d.temperature)
        topP = try get(.topP, d.topP); temperedLogprobs = try get(.temperedLogprobs, d.temperedLogprobs)
        maxNewTokens = try get(.maxNewTokens, d.maxNewTokens); learningRate = try get(.learningRate, d.learningRate)
        weightDecay = try get(.weightDecay, d.weightDecay); minibatchSize = try get(.minibatchSize, d.minibatchSize)
        klCoef = try get(.klCoef, d.klCoef); maxGradNorm = try get(.maxGradNorm, d.maxGradNorm)
        evalEvery = try get(.evalEvery, d.evalEvery); evalPrompts = try get(.evalPrompts, d.evalPrompts)
        sampleTexts = try get(.sampleTexts, d.sampleTexts); forwardBatchSize = try get(.forwardBatchSize, d.forwardBatchSize)
        rewardShaping = try c.decodeIfPresent(RewardShaping.self, forKey: .rewardShaping)
        parReferenceSamples = try c.decodeIfPresent(Int.self, forKey: .parReferenceSamples)
    }

    public var settings: CriticFreeSettings {
        var s = CriticFreeSettings(algorithm: .rloo, steps: steps, promptsPerStep: promptsPerStep, groupSize: k,
                           temperature: temperature, topP: topP, temperedLogprobs: temperedLogprobs, maxNewTokens: maxNewTokens,
                           learningRate: learningRate, weightDecay: weightDecay, epochs: 1, minibatchSize: minibatchSize,
                           clipRange: 0.2, klCoef: klCoef, klEstimator: .k1, scaleRewards: false,
                           lengthNormalization: false, maxGradNorm: maxGradNorm, evalEvery: evalEvery,
                           evalPrompts: evalPrompts, sampleTexts: sampleTexts, forwardBatchSize: forwardBatchSize)
        s.rewardShaping = rewardShaping; s.parReferenceSamples = parReferenceSamples
        return s
    }

    public func validate() throws {
        try settings.validate()
    }

    public var attributes: [OptimizerSetting] { settings.commonAttributes(groupKey: "k", epochs: false) }
}

extension CriticFreeSettings {
    var section: String { algorithm.rawValue }

    /// Throws `CriticFreeConfigError` naming the first key out of range.
    public func validate() throws {
        func check(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw CriticFreeConfigError(section: section, key: key, message: message) }
        }
        // Rows per iteration; sizes too large to multiply are refused by the memory estimate.
        let (product, overflow) = promptsPerStep.multipliedReportingOverflow(by: groupSize)
        let rows = overflow ? Int.max : product
        try check(steps >= 0, "steps", "must be ≥ 0, got \(steps)")
        try check(promptsPerStep >= 1, "prompts_per_step", "must be ≥ 1, got \(promptsPerStep)")
        try check(groupSize >= 2 && groupSize <= 256, algorithm == .grpo ? "group_size" : "k",
                  "must be in 2...256 (advantages compare the responses of one prompt), got \(groupSize)")
        try check(temperature > 0, "temperature", "must be > 0, got \(temperature)")
        try check(topP > 0 && topP <= 1, "top_p", "must be in (0, 1], got \(topP)")
        try check(maxNewTokens >= 1, "max_new_tokens", "must be ≥ 1, got \(maxNewTokens)")
        try check(learningRate > 0 && learningRate.isFinite, "learning_rate", "must be > 0, got \(learningRate)")
        try check(weightDecay >= 0, "weight_decay", "must be ≥ 0, got \(weightDecay)")
        try check(epochs >= 1, "epochs", "must be ≥ 1, got \(epochs)")
        try check(minibatchSize >= 1 && minibatchSize <= rows, "minibatch_size",
                  "must be in 1...prompts_per_step × \(algorithm == .grpo ? "group_size" : "k") (\(rows)), got \(minibatchSize)")
        try check(clipRange > 0, "clip_range", "must be > 0, got \(clipRange)")
        try check(klCoef >= 0 && klCoef.isFinite, "kl_coef", "must be ≥ 0, got \(klCoef)")
        try check(maxGradNorm > 0, "max_grad_norm", "must be > 0, got \(maxGradNorm)")
        try check(evalEvery >= 1, "eval_every", "must be ≥ 1, got \(evalEvery)")
        try check(evalPrompts >= 1, "eval_prompts", "must be ≥ 1, got \(evalPrompts)")
        try check(sampleTexts >= 0 && sampleTexts <= evalPrompts, "sample_texts",
                  "must be in 0...eval_prompts (\(evalPrompts)), got \(sampleTexts)")
        try check(forwardBatchSize >= 1, "forward_batch_size", "must be ≥ 1, got \(forwardBatchSize)")
        if let m = parReferenceSamples {
            try check(m >= 1 && m <= 64, "par_reference_samples", "must be in 1...64 when set, got \(m)")
            try check(shaping == .par, "par_reference_samples", "needs reward_shaping = \"par\"")
        }
    }

    func commonAttributes(groupKey: String, epochs withEpochs: Bool) -> [OptimizerSetting] {
        var a: [OptimizerSetting] = [
            .init("steps", .int(steps)), .init("prompts_per_step", .int(promptsPerStep)), .init(groupKey, .int(groupSize)),
            .init("temperature", .float(decimalDouble(temperature))), .init("top_p", .float(decimalDouble(topP))),
            .init("tempered_logprobs", .bool(temperedLogprobs)), .init("max_new_tokens", .int(maxNewTokens)),
            .init("learning_rate", .float(learningRate)), .init("weight_decay", .float(weightDecay)),
            .init("minibatch_size", .int(minibatchSize)), .init("kl_coef", .float(klCoef)), .init("max_grad_norm", .float(maxGradNorm)),
            .init("eval_every", .int(evalEvery)), .init("eval_prompts", .int(evalPrompts)), .init("sample_texts", .int(sampleTexts)),
            .init("forward_batch_size", .int(forwardBatchSize)),
        ]
        if withEpochs { a.append(.init("epochs", .int(epochs))) }
        if let r = rewardShaping { a.append(.init("reward_shaping", .string(r.rawValue))) }
        if let m = parReferenceSamples { a.append(.init("par_reference_samples", .int(m))) }
        return a
    }
}
