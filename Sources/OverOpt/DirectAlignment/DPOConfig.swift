// DPOConfig.swift — the settings of the direct-alignment stage (`[dpo]`): DPO or IPO on the
// run's preference data, evaluated like the RL optimizers.
import OverOptEngine
import OverOptHDF5

/// `[dpo]`: the policy trained directly on the run's training pairs (with their label noise),
/// the base policy as reference; written to `/dpo/<loss>/`.
public struct DPOConfig: ConfigSection, Equatable {
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

    public static let section = "dpo"

    public static var schema: [ConfigKey<DPOConfig>] { [
        .key("loss", \.loss, "`dpo`: −log σ(β·h); `ipo`: (h − 1/(2β))², h = log-ratio of chosen minus that of rejected"),
        .key("beta", \.beta, "β (a sweep over it gives the gold-vs-KL picture of Rafailov et al. 2024)", .above(0)),
        .key("steps", \.steps, "optimizer steps of `batch_size` pairs (shuffled passes over the pairs)", .atLeast(0)),
        .key("batch_size", \.batchSize, "pairs per step", .atLeast(1)),
        .key("learning_rate", \.learningRate, "AdamW, constant; not yet tuned for this world", .above(0)),
        .key("weight_decay", \.weightDecay, "AdamW weight decay on matrices", .atLeast(0)),
        .key("max_grad_norm", \.maxGradNorm, "global gradient-norm clip", .above(0)),
        .key("temperature", \.temperature, "evaluation sampling temperature, as `[ppo]`", .above(0)),
        .key("top_p", \.topP, "evaluation nucleus threshold, as `[ppo]`", .openClosed(0, 1)),
        .key("tempered_logprobs", \.temperedLogprobs, "KL and entropy of the tempered distribution, as `[ppo]`"),
        .key("max_new_tokens", \.maxNewTokens, "evaluation response length limit (≤ `world.max_response_tokens`)", .atLeast(1)),
        .key("eval_every", \.evalEvery, "evaluation cadence in steps", .atLeast(1)),
        .key("eval_prompts", \.evalPrompts, "held-out prompts per evaluation", .atLeast(1)),
        .key("sample_texts", \.sampleTexts, "sample texts recorded per evaluation", .atLeast(0),
             .check("≤ eval_prompts", detail: { "\($0.evalPrompts)" }) { $1 <= $0.evalPrompts }),
        .key("forward_batch_size", \.forwardBatchSize, "rows per forward pass", .atLeast(1)),
    ] }
}
