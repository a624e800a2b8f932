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

/// `[grpo]`: Group Relative Policy Optimization (Shao et al. 2024) against each proxy.
public struct GRPOConfig: PolicyOptimizerSection, Equatable {
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

    public static let section = "grpo"

    public static var schema: [ConfigKey<GRPOConfig>] { [
        .key("steps", \.steps, "GRPO iterations", .atLeast(0)),
        .key("prompts_per_step", \.promptsPerStep, "training prompts per iteration (× `group_size` = 64 rollouts, as PPO's)", .atLeast(1)),
        .key("group_size", \.groupSize, "G: responses per prompt (advantages compare the responses of one prompt)", .within(2, 256)),
    ] + samplingKeys() + [
        .key("tempered_logprobs", \.temperedLogprobs, "ratios, KL and entropy use softmax(z/T), as `[ppo]`"),
        maxNewTokensKey,
        .key("learning_rate", \.learningRate, "AdamW, constant", .above(0)),
        weightDecayKey,
        .key("minibatch_size", \.minibatchSize, "responses per minibatch, one optimizer step each", .atLeast(1),
             .check("≤ prompts_per_step × group_size", detail: { "\($0.settings.rows)" }) { $1 <= $0.settings.rows }),
        .key("kl_coef", \.klCoef, "β of the KL term β·k(log π − log π_ref) in the loss (0 so over-optimization shows; the paper: 0.04)", .atLeast(0)),
    ] + updateAndEvaluationKeys + [
        .key("epochs", \.epochs, "updates per batch: epochs over shuffled minibatches of responses (GRPO's μ)", .atLeast(1)),
    ] + parKeys(shaping: "`par`: PAR-shaped scores before the advantages (as `[ppo]`, s = the first batch's score std)") + [
        .key("clip_range", \.clipRange, "ε of the clipped ratio", .above(0)),
        .key("kl_estimator", \.klEstimator, "the KL term's per-token estimator (k3: the paper's)"),
        .key("scale_rewards", \.scaleRewards, "divide by the group's std; `false` is Dr. GRPO (Liu et al. 2025)"),
        .key("length_normalization", \.lengthNormalization, "average a response's tokens; `false` divides by `max_new_tokens` instead (Dr. GRPO)"),
    ] }

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
}

/// `[rloo]`: REINFORCE Leave-One-Out (Ahmadian et al. 2024) against each proxy.
public struct RLOOConfig: PolicyOptimizerSection, Equatable {
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

    public static let section = "rloo"

    public static var schema: [ConfigKey<RLOOConfig>] { [
        .key("steps", \.steps, "RLOO iterations", .atLeast(0)),
        .key("prompts_per_step", \.promptsPerStep, "training prompts per iteration (× `k` = 64 rollouts)", .atLeast(1)),
        .key("k", \.k, "responses per prompt (the leave-one-out baseline uses the other k − 1)", .within(2, 256)),
    ] + samplingKeys() + [
        .key("tempered_logprobs", \.temperedLogprobs, "log-probabilities of softmax(z/T), as `[ppo]`"),
        maxNewTokensKey,
        .key("learning_rate", \.learningRate, "AdamW, constant (one step per batch, where PPO takes 16)", .above(0)),
        weightDecayKey,
        .key("minibatch_size", \.minibatchSize, "rows per gradient-accumulation chunk of the batch's one step", .atLeast(1),
             .check("≤ prompts_per_step × k", detail: { "\($0.settings.rows)" }) { $1 <= $0.settings.rows }),
        .key("kl_coef", \.klCoef, "β of the reward r = score − β·Σ_t (log π − log π_ref)", .atLeast(0)),
    ] + updateAndEvaluationKeys + parKeys(shaping: "`par`: PAR-shaped scores before the advantages, as in `[grpo]`")
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
}

extension CriticFreeSettings {
    var section: String { algorithm.rawValue }

    /// Rows per iteration, prompts_per_step × G (Int.max when the product overflows; such
    /// sizes are refused by the memory estimate).
    var rows: Int {
        let (product, overflow) = promptsPerStep.multipliedReportingOverflow(by: groupSize)
        return overflow ? Int.max : product
    }
}
