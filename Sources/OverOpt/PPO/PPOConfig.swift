// PPOConfig.swift — the PPO stage's settings, their defaults and their validation.
//
// Keys are the snake_case names used in TOML. Defaults follow the paper (arXiv 2406.10216
// §3 / appendix: temperature 0.7, top-p 0.9, no KL penalty, rewards normalized with the
// first batch's statistics) and common PPO-for-LM practice (TRL) elsewhere; the learning
// rate and the evaluation cadence follow what a small CPU world needs (the learning
// rate sets the resolution of the gold-vs-KL curve; docs/world.md, "Design lessons").
import OverOptEngine
import OverOptHDF5

/// A PPO setting outside its valid range.
public struct PPOConfigError: Error, CustomStringConvertible, Equatable {
    public let key: String
    public let message: String
    public var description: String { "ppo.\(key): \(message)" }
}

/// Settings of one PPO run against a proxy reward.
public struct PPOConfig: Codable, Sendable, Equatable {
    /// Number of PPO iterations (rollout batch + update).
    public var steps = 60
    /// Training prompts per iteration (the rollout batch size; one response each).
    public var promptsPerStep = 64
    /// Sampling temperature of rollouts and evaluation samples (paper: 0.7).
    public var temperature: Float = 0.7
    /// Nucleus sampling threshold of rollouts and evaluation samples (paper: 0.9).
    public var topP: Float = 0.9
    /// Whether log-probabilities (PPO ratio, KL penalty, KL estimates, entropy) are those of
    /// the tempered distribution softmax(z/temperature) the rollouts are drawn from (true, the
    /// default and TRL's choice) or the raw model's softmax(z) (false). Top-p is never
    /// included.
    public var temperedLogprobs = true
    /// Maximum response tokens, EOS included (≤ the world's `maxResponseTokens`, 50).
    public var maxNewTokens = 50
    /// AdamW learning rate (constant). Sets the resolution of the curves in KL: with the
    /// small preset against a hackable reward, 1e-5 reached ≈ 1.3 nats at step 20, ≈ 5 at 30
    /// and ≈ 30 at 80; 3e-5 reached ≈ 3.5 at step 10 and ≈ 16 at 20.
    public var learningRate = 1e-5
    /// AdamW weight decay on matrices (0: PPO fine-tunes; decay toward 0 would move the
    /// policy away from the reference for no reason).
    public var weightDecay = 0.0
    /// Optimization epochs over each rollout batch.
    public var ppoEpochs = 4
    /// Responses per minibatch (prompts_per_step should be a multiple; the last may be smaller).
    public var minibatchSize = 16
    /// ε of the clipped surrogate.
    public var clipRange = 0.2
    /// ε_v of the clipped value loss (in units of the normalized reward).
    public var valueClipRange = 0.2
    /// Discount γ of GAE.
    public var gamma = 1.0
    /// λ of GAE.
    public var lambda = 0.95
    /// Weight of the value loss (it shares the trunk with the policy: see PPOTrainer.swift).
    public var vfCoef = 0.1
    /// Weight of the entropy bonus (0: off).
    public var entropyCoef = 0.0
    /// β of the per-token KL penalty −β·(logπ − logπ_ref) (paper: 0, so that
    /// over-optimization shows). The initial β when `target_kl` is set.
    public var klCoef = 0.0
    /// If set, β adapts to keep the rollout KL near this many nats (Ziegler et al. 2019).
    public var targetKL: Double? = nil
    /// Normalize proxy scores with the mean and standard deviation of the first rollout batch
    /// (fixed for the whole run, as in the paper).
    public var normalizeReward = true
    /// If set, normalized scores are clipped to ±reward_clip.
    public var rewardClip: Double? = nil
    /// Whiten advantages over each rollout batch.
    public var whitenAdvantages = true
    /// Global gradient-norm clipping threshold.
    public var maxGradNorm = 1.0
    /// Evaluate every this many iterations (and at 0 and at the end).
    public var evalEvery = 5
    /// Number of held-out prompts evaluated (one sample each, fixed sampling seed).
    public var evalPrompts = 64
    /// Rendered sample texts kept per evaluation.
    public var sampleTexts = 4
    /// Rows per forward pass when recomputing log-probabilities and values.
    public var forwardBatchSize = 64
    /// `kl_estimator`: the per-token estimator k(l) of the KL penalty −β·k(log πold − log π_ref):
    /// `k1` (absent: the default, Ziegler et al.), `k2` or `k3` (RewardShaping.swift).
    public var klEstimator: KLPenaltyEstimator? = nil
    /// `kl_horizon`: the adaptive controller's horizon in samples (absent: 10 000, as Ziegler
    /// et al.); needs `target_kl`.
    public var klHorizon: Double? = nil
    /// `reward_shaping`: `none` (absent: the default) or `par` (RewardShaping.swift).
    public var rewardShaping: RewardShaping? = nil
    /// `par_reference_samples`: M reference responses per prompt for PAR (absent: 1).
    public var parReferenceSamples: Int? = nil

    /// The KL penalty's estimator (k1 unless set).
    public var penaltyEstimator: KLPenaltyEstimator { klEstimator ?? .k1 }
    /// The reward shaping (none unless set).
    public var shaping: RewardShaping { rewardShaping ?? .none }

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case steps
        case promptsPerStep = "prompts_per_step"
        case temperature
        case topP = "top_p"
        case temperedLogprobs = "tempered_logprobs"
        case maxNewTokens = "max_new_tokens"
        case learningRate = "learning_rate"
        case weightDecay = "weight_decay"
        case ppoEpochs = "ppo_epochs"
        case minibatchSize = "minibatch_size"
        case clipRange = "clip_range"
        case valueClipRange = "value_clip_range"
        case gamma
        case lambda
        case vfCoef = "vf_coef"
        case entropyCoef = "entropy_coef"
        case klCoef = "kl_coef"
        case targetKL = "target_kl"
        case normalizeReward = "normalize_reward"
        case rewardClip = "reward_clip"
        case whitenAdvantages = "whiten_advantages"
        case maxGradNorm = "max_grad_norm"
        case evalEvery = "eval_every"
        case evalPrompts = "eval_prompts"
        case sampleTexts = "sample_texts"
        case forwardBatchSize = "forward_batch_size"
        case klEstimator = "kl_estimator"
        case klHorizon = "kl_horizon"
        case rewardShaping = "reward_shaping"
        case parReferenceSamples = "par_reference_samples"
    }

    /// Decodes with every missing key at its default.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PPOConfig()
        func get<T: Decodable>(_ k: CodingKeys, _ def: T) throws -> T { try c.decodeIfPresent(T.self, forKey: k) ?? def }
        steps = try get(.steps, d.steps)
        promptsPerStep = try get(.promptsPerStep, d.promptsPerStep)
        temperature = try get(.temperature, d.temperature)
        topP = try get(.topP, d.topP)
        temperedLogprobs = try get(.temperedLogprobs, d.temperedLogprobs)
        maxNewTokens = try get(.maxNewTokens, d.maxNewTokens)
        learningRate = try get(.learningRate, d.learningRate)
        weightDecay = try get(.weightDecay, d.weightDecay)
        ppoEpochs = try get(.ppoEpochs, d.ppoEpochs)
        minibatchSize = try get(.minibatchSize, d.minibatchSize)
        clipRange = try get(.clipRange, d.clipRange)
        valueClipRange = try get(.valueClipRange, d.valueClipRange)
        gamma = try get(.gamma, d.gamma)
        lambda = try get(.lambda, d.lambda)
        vfCoef = try get(.vfCoef, d.vfCoef)
        entropyCoef = try get(.entropyCoef, d.entropyCoef)
        klCoef = try get(.klCoef, d.klCoef)
        targetKL = try c.decodeIfPresent(Double.self, forKey: .targetKL)
        normalizeReward = try get(.normalizeReward, d.normalizeReward)
        rewardClip = try c.decodeIfPresent(Double.self, forKey: .rewardClip)
        whitenAdvantages = try get(.whitenAdvantages, d.whitenAdvantages)
        maxGradNorm = try get(.maxGradNorm, d.maxGradNorm)
        evalEvery = try get(.evalEvery, d.evalEvery)
        evalPrompts = try get(.evalPrompts, d.evalPrompts)
        sampleTexts = try get(.sampleTexts, d.sampleTexts)
        forwardBatchSize = try get(.forwardBatchSize, d.forwardBatchSize)
        klEstimator = try c.decodeIfPresent(KLPenaltyEstimator.self, forKey: .klEstimator)
        klHorizon = try c.decodeIfPresent(Double.self, forKey: .klHorizon)
        rewardShaping = try c.decodeIfPresent(RewardShaping.self, forKey: .rewardShaping)
        parReferenceSamples = try c.decodeIfPresent(Int.self, forKey: .parReferenceSamples)
    }

    /// Throws `PPOConfigError` naming the first key out of range.
    public func validate() throws {
        func check(_ ok: Bool, _ key: CodingKeys, _ message: String) throws {
            if !ok { throw PPOConfigError(key: key.rawValue, message: message) }
        }
        try check(steps >= 0, .steps, "must be ≥ 0, got \(steps)")
        try check(promptsPerStep >= 1, .promptsPerStep, "must be ≥ 1, got \(promptsPerStep)")
        try check(temperature > 0, .temperature, "must be > 0, got \(temperature)")
        try check(topP > 0 && topP <= 1, .topP, "must be in (0, 1], got \(topP)")
        try check(maxNewTokens >= 1, .maxNewTokens, "must be ≥ 1, got \(maxNewTokens)")
        try check(learningRate > 0 && learningRate.isFinite, .learningRate, "must be > 0, got \(learningRate)")
        try check(weightDecay >= 0, .weightDecay, "must be ≥ 0, got \(weightDecay)")
        try check(ppoEpochs >= 1, .ppoEpochs, "must be ≥ 1, got \(ppoEpochs)")
        try check(minibatchSize >= 1 && minibatchSize <= promptsPerStep, .minibatchSize,
                  "must be in 1...prompts_per_step (\(promptsPerStep)), got \(minibatchSize)")
        try check(clipRange > 0, .clipRange, "must be > 0, got \(clipRange)")
        try check(valueClipRange > 0, .valueClipRange, "must be > 0, got \(valueClipRange)")
        try check(gamma >= 0 && gamma <= 1, .gamma, "must be in [0, 1], got \(gamma)")
        try check(lambda >= 0 && lambda <= 1, .lambda, "must be in [0, 1], got \(lambda)")
        try check(vfCoef >= 0, .vfCoef, "must be ≥ 0, got \(vfCoef)")
        try check(entropyCoef >= 0, .entropyCoef, "must be ≥ 0, got \(entropyCoef)")
        try check(klCoef >= 0, .klCoef, "must be ≥ 0, got \(klCoef)")
        if let t = targetKL {
            try check(t > 0, .targetKL, "must be > 0 nats when set, got \(t)")
            try check(klCoef > 0, .klCoef, "must be > 0 (the initial β) when target_kl is set")
        }
        if let c = rewardClip { try check(c > 0, .rewardClip, "must be > 0 when set, got \(c)") }
        if let h = klHorizon {
            try check(h > 0 && h.isFinite, .klHorizon, "must be > 0 samples when set, got \(h)")
            try check(targetKL != nil, .klHorizon, "is the adaptive controller's horizon and needs target_kl")
        }
        if let m = parReferenceSamples {
            try check(m >= 1 && m <= 64, .parReferenceSamples, "must be in 1...64 when set, got \(m)")
            try check(shaping == .par, .parReferenceSamples, "needs reward_shaping = \"par\"")
        }
        if shaping == .par {
            try check(rewardClip == nil, .rewardClip, "has no effect with reward_shaping = \"par\" (its reward is bounded in (0, 1)); unset it")
        }
        try check(maxGradNorm > 0, .maxGradNorm, "must be > 0, got \(maxGradNorm)")
        try check(evalEvery >= 1, .evalEvery, "must be ≥ 1, got \(evalEvery)")
        try check(evalPrompts >= 1, .evalPrompts, "must be ≥ 1, got \(evalPrompts)")
        try check(sampleTexts >= 0 && sampleTexts <= evalPrompts, .sampleTexts,
                  "must be in 0...eval_prompts (\(evalPrompts)), got \(sampleTexts)")
        try check(forwardBatchSize >= 1, .forwardBatchSize, "must be ≥ 1, got \(forwardBatchSize)")
    }

    /// Every setting as (key, value) for HDF5 attributes, with its type (integer, boolean or
    /// float); optional unset values are omitted.
    public var attributes: [(key: String, value: AttributeValue)] {
        var a: [(String, AttributeValue)] = [
            ("steps", .int(steps)), ("prompts_per_step", .int(promptsPerStep)),
            ("temperature", .float(decimalDouble(temperature))), ("top_p", .float(decimalDouble(topP))),
            ("max_new_tokens", .int(maxNewTokens)), ("tempered_logprobs", .bool(temperedLogprobs)),
            ("learning_rate", .float(learningRate)), ("weight_decay", .float(weightDecay)), ("ppo_epochs", .int(ppoEpochs)),
            ("minibatch_size", .int(minibatchSize)), ("clip_range", .float(clipRange)), ("value_clip_range", .float(valueClipRange)),
            ("gamma", .float(gamma)), ("lambda", .float(lambda)), ("vf_coef", .float(vfCoef)), ("entropy_coef", .float(entropyCoef)),
            ("kl_coef", .float(klCoef)), ("normalize_reward", .bool(normalizeReward)),
            ("whiten_advantages", .bool(whitenAdvantages)), ("max_grad_norm", .float(maxGradNorm)),
            ("eval_every", .int(evalEvery)), ("eval_prompts", .int(evalPrompts)),
            ("sample_texts", .int(sampleTexts)), ("forward_batch_size", .int(forwardBatchSize)),
        ]
        if let t = targetKL { a.append(("target_kl", .float(t))) }
        if let c = rewardClip { a.append(("reward_clip", .float(c))) }
        if let e = klEstimator { a.append(("kl_estimator", .string(e.rawValue))) }
        if let h = klHorizon { a.append(("kl_horizon", .float(h))) }
        if let r = rewardShaping { a.append(("reward_shaping", .string(r.rawValue))) }
        if let m = parReferenceSamples { a.append(("par_reference_samples", .int(m))) }
        return a
    }
}

/// A Float as the Double of its shortest decimal form (0.7 rather than 0.699999988), so that
/// attributes show the value the config gave.
func decimalDouble(_ value: Float) -> Double { Double("\(value)") ?? Double(value) }
