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
public struct RewardModelConfig: Codable, Sendable, Equatable {
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

    enum CodingKeys: String, CodingKey {
        case base, objective, regularizer, alpha, beta, smoothing, head, combiner, finetune, epochs
        case marginScale = "margin_scale", headHidden = "head_hidden", headDropout = "head_dropout"
        case ensembleSize = "ensemble_size", uwoLambda = "uwo_lambda"
        case loraRank = "lora_rank", loraAlpha = "lora_alpha", loraDropout = "lora_dropout"
        case batchSize = "batch_size", learningRate = "learning_rate", warmupFraction = "warmup_fraction"
        case maxGradNorm = "max_grad_norm", weightDecay = "weight_decay", evalBatchSize = "eval_batch_size"
        case informLatentDim = "inform_latent_dim", informBeta = "inform_beta"
    }

    /// Checks every key; the error names the first bad one (as `rm.<key>`).
    public func validate() throws {
        func bad(_ key: String, _ message: String) -> ConfigError { .invalid(key: "rm." + key, message) }
        if let base, let message = presetError(base) { throw bad("base", message) }
        if !(0...1).contains(alpha) { throw bad("alpha", "must be in [0, 1] (got \(alpha))") }
        if !(beta > 0) { throw bad("beta", "must be positive (got \(beta))") }
        if !(marginScale >= 0) { throw bad("margin_scale", "must be non-negative (got \(marginScale))") }
        if !(0..<0.5).contains(smoothing) { throw bad("smoothing", "must be in [0, 0.5) (got \(smoothing))") }
        if headHidden < 1 { throw bad("head_hidden", "must be positive (got \(headHidden))") }
        if !(0..<1).contains(headDropout) { throw bad("head_dropout", "must be in [0, 1) (got \(headDropout))") }
        if ensembleSize < 1 { throw bad("ensemble_size", "must be positive (got \(ensembleSize))") }
        if !(uwoLambda >= 0) { throw bad("uwo_lambda", "must be non-negative (got \(uwoLambda))") }
        if loraRank < 1 { throw bad("lora_rank", "must be positive (got \(loraRank))") }
        if !(loraAlpha > 0) { throw bad("lora_alpha", "must be positive (got \(loraAlpha))") }
        if !(0..<1).contains(loraDropout) { throw bad("lora_dropout", "must be in [0, 1) (got \(loraDropout))") }
        if epochs < 1 { throw bad("epochs", "must be positive (got \(epochs))") }
        if batchSize < 1 { throw bad("batch_size", "must be positive (got \(batchSize))") }
        if !(learningRate > 0) { throw bad("learning_rate", "must be positive (got \(learningRate))") }
        if !(0..<1).contains(warmupFraction) { throw bad("warmup_fraction", "must be in [0, 1) (got \(warmupFraction))") }
        if !(maxGradNorm > 0) { throw bad("max_grad_norm", "must be positive (got \(maxGradNorm))") }
        if !(weightDecay >= 0) { throw bad("weight_decay", "must be non-negative (got \(weightDecay))") }
        if evalBatchSize < 1 { throw bad("eval_batch_size", "must be positive (got \(evalBatchSize))") }
        if let d = informLatentDim, !(1...4096).contains(d) { throw bad("inform_latent_dim", "must be in 1...4096 (got \(d))") }
        if let b = informBeta, !(b >= 0 && b.isFinite) { throw bad("inform_beta", "must be non-negative and finite (got \(b))") }
        if objective == .frozen && finetune == .lora {
            throw bad("finetune", "must be \"full\" with objective = \"frozen\" (a frozen trunk has nothing for adapters to do)")
        }
    }

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
