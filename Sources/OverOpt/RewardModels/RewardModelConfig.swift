// RewardModelConfig.swift — the settings of the proxy reward model stage (`[rm]`).
//
// One config trains one proxy variant (docs/paper.md §2): the objective picks the variant,
// the other keys its hyperparameters. Keys are the snake_case names used in TOML.

import OverOptEngine

/// Which proxy is trained (the config value of `objective`).
public enum RewardObjective: String, Codable, Sendable, CaseIterable {
    /// Bradley–Terry: −log σ(r_c − r_r).
    case bt
    /// −log σ(r_c − r_r − m), m = |gold margin| × `margin_scale`.
    case margin
    /// −(1−ε) log σ(Δr) − ε log σ(−Δr), ε = `smoothing`.
    case labelSmoothing = "label-smoothing"
    /// Trunk and LM head frozen; an MLP head trained with Bradley–Terry.
    case frozen
    /// `ensemble_size` Bradley–Terry members with different seeds, combined by `combiner`.
    case ensemble
    /// WARM: `ensemble_size` members from one initialization, averaged in weight space.
    case warm
    /// GRM: (1−α)·Bradley–Terry + α·`regularizer` through the kept LM head.
    case grm
    /// InfoRM (Miao et al. 2024): a variational information bottleneck between the last
    /// hidden state and the reward: Bradley–Terry + β·KL(q(z|h) ‖ N(0, I)), the latent
    /// `inform_latent_dim` wide, β = `inform_beta`.
    case inform
}

/// The text-generation regularizer of GRM (docs/paper.md §2).
public enum GRMRegularizer: String, Codable, Sendable, CaseIterable {
    /// −log σ(β·log π(y_c|x)).
    case sft
    /// −log π(y_c|x) / |y_c| (per-token NLL; see `sftNLL`).
    case sftNLL = "sft-nll"
    /// DPO against the frozen base policy.
    case dpo
    /// DPO without the reference term.
    case dpoNoRef = "dpo-noref"
}

/// Reward head on the final hidden state of the last token.
public enum RewardHeadChoice: String, Codable, Sendable, CaseIterable {
    case linear, mlp
}

/// Which weights fine-tune.
public enum FinetuneMode: String, Codable, Sendable, CaseIterable {
    /// Trunk (and, for GRM, the LM head) train with the reward head.
    case full
    /// LoRA adapters on q, k, v and the attention output train with the reward head;
    /// embeddings, trunk and LM head stay frozen (the paper's main setting).
    case lora
}

/// Settings of one proxy reward model variant.
public struct RewardModelConfig: ConfigSection, Equatable {
    /// The model preset the proxy is fine-tuned from (`TransformerConfig.presetNames`): a
    /// base model of that size pretrained with the run's `[base]` settings on the same world.
    /// nil (the default, and not encoded, so configs without it keep their hashes): the
    /// policy's own base.
    public var base: String?
    /// The variant: bt, margin, label-smoothing, frozen, ensemble, warm, grm.
    public var objective: RewardObjective = .bt
    /// GRM regularizer: sft, sft-nll, dpo, dpo-noref.
    public var regularizer: GRMRegularizer = .sft
    /// GRM weight α of the regularizer, in [0, 1] (paper default 0.01).
    public var alpha = 0.01
    /// GRM β inside the regularizer's σ (paper default 0.1).
    public var beta = 0.1
    /// `margin`: m = |r*(y_c) − r*(y_r)| × margin_scale.
    public var marginScale = 1.0
    /// `label-smoothing`: ε in [0, 0.5).
    public var smoothing = 0.1
    /// Reward head: linear or mlp (Linear(C, head_hidden) → ReLU → Linear(head_hidden, 1)).
    /// `frozen` always uses the MLP head (the paper's baseline).
    public var head: RewardHeadChoice = .linear
    /// Hidden units of the MLP head. The paper's 1024 is ¼–½ of its models' widths; 64 is
    /// ½–1× the width of the small/large presets.
    public var headHidden = 64
    /// Dropout on the MLP head's input while training (paper: 0.1). The linear head has none.
    public var headDropout = 0.1
    /// Members of `ensemble` and `warm`.
    public var ensembleSize = 3
    /// How an ensemble's member scores are combined: mean, min, uwo.
    public var combiner: EnsembleCombiner = .mean
    /// λ of uwo: mean − λ·variance.
    public var uwoLambda = 0.5
    /// full or lora.
    public var finetune: FinetuneMode = .full
    /// LoRA rank r.
    public var loraRank = 8
    /// LoRA α (adapter output scaled by α/r).
    public var loraAlpha = 16.0
    /// Dropout on each adapter's input while training.
    public var loraDropout = 0.05
    /// Passes over the training pairs.
    public var epochs = 2
    /// Pairs per step (one forward of 2×batch_size sequences).
    public var batchSize = 32
    /// Peak AdamW learning rate (after warmup; cosine decay to 0).
    public var learningRate = 3e-4
    /// Share of the steps spent in linear warmup (paper: 3%).
    public var warmupFraction = 0.03
    /// Gradient-norm clip (paper: 5).
    public var maxGradNorm = 5.0
    /// Decoupled AdamW weight decay (on matrices only; 0 as a Hugging Face trainer).
    public var weightDecay = 0.0
    /// Sequences per forward when scoring.
    public var evalBatchSize = 256
    /// `inform`: the bottleneck's latent dimension (nil: `defaultInformLatentDim`). Set for
    /// inform variants and absent for the others once resolved, so that other variants'
    /// settings (and cache keys) do not carry it.
    public var informLatentDim: Int?
    /// `inform`: the weight β of the KL term (nil: `defaultInformBeta`).
    public var informBeta: Double?

    /// The bottleneck's default width: ¼–½ of the small and tiny presets' widths.
    public static let defaultInformLatentDim = 16
    /// The KL weight's default (InfoRM sweeps β over decades; 0.01 is our middle choice).
    public static let defaultInformBeta = 0.01

    public init() {}

    public static let section = "rm"

    public static var schema: [ConfigKey<RewardModelConfig>] { [
        .key("base", \.base, "the preset the proxy is fine-tuned from: a base model of that size pretrained with the run's `[base]` settings on the same world (cached like the policy's base, key `base` of the stage cache). The policy, its best-of-n samples and PPO stay those of `base.preset`; the proxy's LM head (GRM's regularizer, DPO's reference, the `lm_*` and `base_lm_*` metrics) is its own base's. Works per variant (`[variants.bt-xl] base = \"xl\"`), with ensembles and LoRA",
             .isPreset, unset: "unset (the policy's preset)"),
        .key("objective", \.objective, "the proxy variant's training objective (\"Mitigations\")"),
        .key("regularizer", \.regularizer, "GRM's text loss: `sft` (−log σ(β log π(y_c))), `sft-nll`, `dpo`, `dpo-noref`"),
        .key("alpha", \.alpha, "GRM weight: (1−α)·L_reward + α·L_reg", .within(0, 1)),
        .key("beta", \.beta, "β of the GRM regularizers", .above(0)),
        .key("margin_scale", \.marginScale, "margin m = scale × |gold gap|", .atLeast(0)),
        .key("smoothing", \.smoothing, "label-smoothing ε", .halfOpen(0, 0.5)),
        .key("head", \.head, "reward head (`frozen` always uses the MLP head)"),
        .key("head_hidden", \.headHidden, "MLP head width", .atLeast(1)),
        .key("head_dropout", \.headDropout, "dropout before the MLP head while training", .halfOpen(0, 1)),
        .key("ensemble_size", \.ensembleSize, "members of `ensemble` and `warm`", .atLeast(1)),
        .key("combiner", \.combiner, "ensemble combiner (`min`: WCO)"),
        .key("uwo_lambda", \.uwoLambda, "UWO: mean − λ·variance", .atLeast(0)),
        .key("finetune", \.finetune, "`lora`: adapters on q, k, v and the attention output; trunk and LM head frozen",
             .check("\"full\" with objective = \"frozen\" (a frozen trunk has nothing for adapters to do)") { !($0.objective == .frozen && $1 == .lora) }),
        .key("lora_rank", \.loraRank, "LoRA rank r", .atLeast(1)),
        .key("lora_alpha", \.loraAlpha, "LoRA α (adapter output scaled by α/r)", .above(0)),
        .key("lora_dropout", \.loraDropout, "dropout on each adapter's input while training", .halfOpen(0, 1)),
        .key("epochs", \.epochs, "passes over the training pairs", .atLeast(1)),
        .key("batch_size", \.batchSize, "pairs per step", .atLeast(1)),
        .key("learning_rate", \.learningRate, "AdamW peak (3% warmup, cosine to 0)", .above(0)),
        .key("warmup_fraction", \.warmupFraction, "warmup share of the steps", .halfOpen(0, 1)),
        .key("max_grad_norm", \.maxGradNorm, "gradient-norm clip, as in the paper", .above(0)),
        .key("weight_decay", \.weightDecay, "AdamW weight decay on matrices", .atLeast(0)),
        .key("eval_batch_size", \.evalBatchSize, "sequences per scoring batch", .atLeast(1)),
        .key("inform_latent_dim", \.informLatentDim, "InfoRM's bottleneck width D; kept only for `objective = \"inform\"` (other variants drop it, so their settings and cache keys are unchanged)",
             .within(1, 4096), unset: "`16` (inform only)"),
        .key("inform_beta", \.informBeta, "InfoRM's β: loss = Bradley–Terry + β·KL(q(z|h) ‖ N(0, I))", .atLeast(0), unset: "`0.01` (inform only)"),
    ] }

    // MARK: Derived settings

    /// Members trained: `ensemble_size` for ensemble and warm, else 1.
    public var memberCount: Int { objective == .ensemble || objective == .warm ? ensembleSize : 1 }

    /// The settings with the InfoRM keys filled in for `inform` (defaults where unset) and
    /// removed for every other objective, which does not use them.
    public var resolvingInformKeys: RewardModelConfig {
        var c = self
        if objective == .inform {
            c.informLatentDim = informLatentDim ?? Self.defaultInformLatentDim
            c.informBeta = informBeta ?? Self.defaultInformBeta
        } else {
            c.informLatentDim = nil
            c.informBeta = nil
        }
        return c
    }

    /// InfoRM's latent dimension and KL weight in effect.
    public var informSettings: (latentDim: Int, beta: Double) {
        (informLatentDim ?? Self.defaultInformLatentDim, informBeta ?? Self.defaultInformBeta)
    }

    /// Whether training runs the LM head (GRM's regularizer).
    public var usesLanguageModel: Bool { objective == .grm && alpha > 0 }

    /// The reward head of every member.
    public var headKind: RewardHeadKind {
        if objective == .inform { return .variational(latent: informSettings.latentDim) }
        return objective == .frozen || head == .mlp ? .mlp(hidden: headHidden) : .linear
    }

    /// Head configuration of every member (dropout only for the MLP head).
    public var headConfig: HeadConfig {
        if case .mlp = headKind { return HeadConfig(reward: headKind, rewardDropout: Float(headDropout)) }
        return HeadConfig(reward: headKind)
    }

    /// Adapters for `finetune = lora`.
    public var loraConfig: LoRAConfig? {
        finetune == .lora ? LoRAConfig(rank: loraRank, alpha: Float(loraAlpha), dropout: Float(loraDropout)) : nil
    }

    /// Parameter groups that do not train.
    public var frozenGroups: Set<ParameterGroup> {
        if objective == .frozen { return [.trunk, .lmHead] }
        if finetune == .lora { return [.trunk, .lmHead] }
        return usesLanguageModel ? [] : [.lmHead]
    }

    /// A short variant name, e.g. "bt", "grm-sft", "ensemble-min", "warm", "bt-lora".
    public var variantName: String {
        var n: String
        switch objective {
        case .grm: n = "grm-" + regularizer.rawValue
        case .ensemble: n = "ensemble-" + combiner.rawValue
        default: n = objective.rawValue
        }
        if finetune == .lora { n += "-lora" }
        return n
    }
}
