// PolicyOptimizerKeys.swift — the config keys `[ppo]`, `[grpo]` and `[rloo]` share, declared
// once: the policy optimizers sample rollouts, update and evaluate the same way.
import OverOptEngine

/// A policy optimizer's config section: the settings every optimizer has, under the same
/// names and meanings.
protocol PolicyOptimizerSection: ConfigSection {
    var temperature: Float { get set }
    var topP: Float { get set }
    var maxNewTokens: Int { get set }
    var weightDecay: Double { get set }
    var maxGradNorm: Double { get set }
    var evalEvery: Int { get set }
    var evalPrompts: Int { get set }
    var sampleTexts: Int { get set }
    var forwardBatchSize: Int { get set }
    var rewardShaping: RewardShaping? { get set }
    var parReferenceSamples: Int? { get set }
}

extension PolicyOptimizerSection {
    /// `temperature` and `top_p` of the rollouts.
    static func samplingKeys(note: String = "") -> [ConfigKey<Self>] { [
        .key("temperature", \.temperature, "rollout sampling temperature" + note, .above(0)),
        .key("top_p", \.topP, "rollout nucleus threshold" + note, .openClosed(0, 1)),
    ] }

    static var maxNewTokensKey: ConfigKey<Self> {
        .key("max_new_tokens", \.maxNewTokens, "response length limit, EOS included (≤ `world.max_response_tokens`)", .atLeast(1))
    }

    static var weightDecayKey: ConfigKey<Self> {
        .key("weight_decay", \.weightDecay, "AdamW weight decay on matrices", .atLeast(0))
    }

    /// `max_grad_norm`, `eval_every`, `eval_prompts`, `sample_texts` and `forward_batch_size`.
    static var updateAndEvaluationKeys: [ConfigKey<Self>] { [
        .key("max_grad_norm", \.maxGradNorm, "global gradient-norm clip", .above(0)),
        .key("eval_every", \.evalEvery, "held-out evaluation cadence in iterations (and at 0 and at the end)", .atLeast(1)),
        .key("eval_prompts", \.evalPrompts, "held-out prompts per evaluation", .atLeast(1)),
        .key("sample_texts", \.sampleTexts, "sample texts recorded per evaluation", .atLeast(0),
             .check("≤ eval_prompts", detail: { "\($0.evalPrompts)" }) { $1 <= $0.evalPrompts }),
        .key("forward_batch_size", \.forwardBatchSize, "rows per forward pass in the update", .atLeast(1)),
    ] }

    /// `reward_shaping` (described by `shaping`) and `par_reference_samples`.
    static func parKeys(shaping: String) -> [ConfigKey<Self>] { [
        .key("reward_shaping", \.rewardShaping, shaping, unset: "`\"none\"`"),
        .key("par_reference_samples", \.parReferenceSamples, "M reference responses per rollout prompt for PAR", .within(1, 64),
             .check("unset unless reward_shaping = \"par\"") { r, _ in r.rewardShaping == .par }, unset: "`1`"),
    ] }
}
