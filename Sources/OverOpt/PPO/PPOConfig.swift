// PPOConfig.swift — the PPO stage's settings, their defaults and their validation.
//
// Keys are the snake_case names used in TOML. Defaults follow the paper (arXiv 2406.10216
// §3 / appendix: temperature 0.7, top-p 0.9, no KL penalty, rewards normalized with the
// first batch's statistics) and common PPO-for-LM practice (TRL) elsewhere; the learning
// rate and the evaluation cadence follow what a small CPU world needs (the learning
// rate sets the resolution of the gold-vs-KL curve; docs/world.md, "Design lessons").
import OverOptEngine
import OverOptHDF5

/// Settings of one PPO run against a proxy reward.
public struct PPOConfig: PolicyOptimizerSection, Equatable {
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

    public static let section = "ppo"

    public static var schema: [ConfigKey<PPOConfig>] { [
        .key("steps", \.steps, "PPO iterations", .atLeast(0)),
        .key("prompts_per_step", \.promptsPerStep, "rollouts per iteration (training prompts)", .atLeast(1)),
    ] + samplingKeys(note: " (as in the paper)") + [
        maxNewTokensKey,
        .key("tempered_logprobs", \.temperedLogprobs, "ratios, KL and entropy use softmax(z/T), the distribution actually sampled"),
        .key("learning_rate", \.learningRate, "AdamW, constant", .above(0)),
        weightDecayKey,
        .key("ppo_epochs", \.ppoEpochs, "update epochs over each rollout batch", .atLeast(1)),
        .key("minibatch_size", \.minibatchSize, "responses per minibatch", .atLeast(1),
             .check("≤ prompts_per_step", detail: { "\($0.promptsPerStep)" }) { $1 <= $0.promptsPerStep }),
        .key("clip_range", \.clipRange, "ε of the clipped surrogate", .above(0)),
        .key("value_clip_range", \.valueClipRange, "ε_v of the clipped value loss", .above(0)),
        .key("gamma", \.gamma, "GAE discount γ", .within(0, 1)),
        .key("lambda", \.lambda, "GAE λ", .within(0, 1)),
        .key("vf_coef", \.vfCoef, "weight of the value loss", .atLeast(0)),
        .key("entropy_coef", \.entropyCoef, "weight of the entropy bonus", .atLeast(0)),
        .key("kl_coef", \.klCoef, "per-token KL penalty β (0 as in the paper, so over-optimization shows); the initial β with `target_kl`",
             .atLeast(0), .check("> 0 when target_kl is set (the initial β)") { $0.targetKL == nil || $1 > 0 }),
        .key("normalize_reward", \.normalizeReward, "normalize by the first batch's mean and std (as in the paper)"),
        .key("whiten_advantages", \.whitenAdvantages, "whiten advantages over each rollout batch"),
    ] + updateAndEvaluationKeys + [
        .key("target_kl", \.targetKL, "adaptive KL controller target in nats (needs `kl_coef` > 0)", .above(0), unset: "unset"),
        .key("reward_clip", \.rewardClip, "clip normalized rewards to ±value", .above(0),
             .check("unset with reward_shaping = \"par\" (its reward is bounded in (−½, ½))") { r, _ in r.shaping != .par }, unset: "unset"),
        .key("kl_estimator", \.klEstimator, "the penalty's per-token estimator", unset: "`\"k1\"`"),
        .key("kl_horizon", \.klHorizon, "the adaptive controller's horizon in samples", .above(0),
             .check("unset unless target_kl is set (it is the adaptive controller's horizon)") { r, _ in r.targetKL != nil }, unset: "`10000`"),
    ] + parKeys(shaping: "`par`: PAR's sigmoid of the score minus the reference responses' scores (\"Mitigations\"; excludes `reward_clip`)")
    }
}

/// A Float as the Double of its shortest decimal form (0.7 rather than 0.699999988), so that
/// attributes show the value the config gave.
func decimalDouble(_ value: Float) -> Double { Double("\(value)") ?? Double(value) }
