// Parameters.swift — model configuration and the flat parameter layout.
//
// All parameters of a model live in one allocation; each tensor is a named view
// (offset, shape) into it. Gradients and the AdamW moments use the same layout, so the
// optimizer is one loop. Names follow the PyTorch reference in Tests/Fixtures.

/// GPT-2-style decoder configuration.
public struct TransformerConfig: Codable, Sendable, Equatable {
    public var vocabSize: Int
    /// Maximum sequence length (size of the learned position embedding).
    public var contextLength: Int
    /// Channels C.
    public var width: Int
    public var layers: Int
    public var heads: Int
    /// MLP hidden size = mlpRatio · width.
    public var mlpRatio: Int = 4
    /// Dropout on the residual branches (attention and MLP outputs) while training.
    public var dropout: Float = 0

    public init(vocabSize: Int, contextLength: Int, width: Int, layers: Int, heads: Int,
                mlpRatio: Int = 4, dropout: Float = 0) {
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.width = width
        self.layers = layers
        self.heads = heads
        self.mlpRatio = mlpRatio
        self.dropout = dropout
    }

    /// The paper's 2B analogue: width 64, 2 layers, 2 heads, context 64.
    public static func small(vocabSize: Int) -> TransformerConfig {
        TransformerConfig(vocabSize: vocabSize, contextLength: 64, width: 64, layers: 2, heads: 2)
    }

    /// The paper's 7B analogue: width 128, 4 layers, 4 heads, context 64.
    public static func large(vocabSize: Int) -> TransformerConfig {
        TransformerConfig(vocabSize: vocabSize, contextLength: 64, width: 128, layers: 4, heads: 4)
    }

    /// The ladder of named sizes, smallest first, all with context 64 (parameters with the
    /// world's 188-token vocabulary): tiny (width 32, 1 layer, 2 heads; ≈ 27 K), small
    /// (64, 2, 2; ≈ 128 K), medium (96, 3, 3; ≈ 375 K), large (128, 4, 4; ≈ 850 K),
    /// xl (192, 6, 6; ≈ 2.75 M). Heads are 32 channels wide except tiny's 16.
    public static let presetNames = ["tiny", "small", "medium", "large", "xl"]

    /// A named preset (one of `presetNames`).
    public static func preset(_ name: String, vocabSize: Int) -> TransformerConfig? {
        switch name {
        case "tiny": return TransformerConfig(vocabSize: vocabSize, contextLength: 64, width: 32, layers: 1, heads: 2)
        case "small": return .small(vocabSize: vocabSize)
        case "medium": return TransformerConfig(vocabSize: vocabSize, contextLength: 64, width: 96, layers: 3, heads: 3)
        case "large": return .large(vocabSize: vocabSize)
        case "xl": return TransformerConfig(vocabSize: vocabSize, contextLength: 64, width: 192, layers: 6, heads: 6)
        default: return nil
        }
    }

    /// Checks the shape constraints; returns a message for the first violation.
    public func validationError() -> String? {
        if vocabSize < 2 { return "vocabSize must be at least 2 (got \(vocabSize))" }
        if contextLength < 1 { return "contextLength must be positive (got \(contextLength))" }
        if width < 1 || layers < 1 || heads < 1 { return "width, layers and heads must be positive" }
        if width % heads != 0 { return "width (\(width)) must be divisible by heads (\(heads))" }
        if !(0..<1).contains(dropout) { return "dropout must be in [0, 1) (got \(dropout))" }
        return nil
    }
}

/// The scalar reward head read at the last non-padding token.
public enum RewardHeadKind: Codable, Sendable, Equatable {
    /// No reward head (a plain language model).
    case none
    /// r = w·h + b.
    case linear
    /// r = w₂·ReLU(W₁·dropout(h) + b₁) + b₂ with `hidden` units.
    case mlp(hidden: Int)
    /// A variational information bottleneck (InfoRM, Miao et al. 2024): an encoder to a
    /// Gaussian latent q(z|h) = N(μ, diag σ²), μ = W_μ·h + b_μ, log σ² = W_σ·h + b_σ, with
    /// `latent` dimensions, and r = w·z + b. Training samples z = μ + σ·ε, ε ~ N(0, I)
    /// (reparameterized); scoring reads z = μ.
    case variational(latent: Int)
}

/// Which heads sit on the final hidden states besides the LM head.
public struct HeadConfig: Codable, Sendable, Equatable {
    public var reward: RewardHeadKind
    /// Dropout on the reward head's input while training (the paper uses 0.1 for its MLP head).
    public var rewardDropout: Float
    /// A per-token scalar value head (PPO).
    public var value: Bool

    public init(reward: RewardHeadKind = .none, rewardDropout: Float = 0, value: Bool = false) {
        self.reward = reward
        self.rewardDropout = rewardDropout
        self.value = value
    }

    public static let languageModel = HeadConfig()
}

/// The part of the model a tensor belongs to; parts can be frozen independently.
public enum ParameterGroup: String, Codable, Sendable, CaseIterable {
    case trunk, lmHead, rewardHead, valueHead, lora
}

/// One named tensor inside the flat parameter buffer.
public struct ParameterTensor: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
    public let group: ParameterGroup
    /// AdamW weight decay applies to matrices and embeddings, not to biases or LayerNorm.
    public let decay: Bool
}

/// The ordered list of tensors of a model and their offsets.
public struct ParameterLayout: Sendable, Equatable {
    public private(set) var tensors: [ParameterTensor] = []
    public private(set) var count = 0
    private var index: [String: Int] = [:]

    public init() {}

    mutating func add(_ name: String, _ shape: [Int], _ group: ParameterGroup, decay: Bool) {
        precondition(index[name] == nil, "duplicate parameter \(name)")
        let t = ParameterTensor(name: name, shape: shape, offset: count, group: group, decay: decay)
        index[name] = tensors.count
        tensors.append(t)
        count += t.count
    }

    public subscript(name: String) -> ParameterTensor? {
        index[name].map { tensors[$0] }
    }

    public func offset(_ name: String) -> Int {
        guard let t = self[name] else { preconditionFailure("no parameter named \(name)") }
        return t.offset
    }

    /// The layout of a transformer with the given heads.
    public static func transformer(_ c: TransformerConfig, heads: HeadConfig) -> ParameterLayout {
        var p = ParameterLayout()
        let C = c.width, H = c.mlpRatio * c.width
        p.add("wte", [c.vocabSize, C], .trunk, decay: true)
        p.add("wpe", [c.contextLength, C], .trunk, decay: true)
        for l in 0..<c.layers {
            let h = "h\(l)."
            p.add(h + "ln1_w", [C], .trunk, decay: false)
            p.add(h + "ln1_b", [C], .trunk, decay: false)
            p.add(h + "qkv_w", [3 * C, C], .trunk, decay: true)
            p.add(h + "qkv_b", [3 * C], .trunk, decay: false)
            p.add(h + "attn_proj_w", [C, C], .trunk, decay: true)
            p.add(h + "attn_proj_b", [C], .trunk, decay: false)
            p.add(h + "ln2_w", [C], .trunk, decay: false)
            p.add(h + "ln2_b", [C], .trunk, decay: false)
            p.add(h + "fc_w", [H, C], .trunk, decay: true)
            p.add(h + "fc_b", [H], .trunk, decay: false)
            p.add(h + "mlp_proj_w", [C, H], .trunk, decay: true)
            p.add(h + "mlp_proj_b", [C], .trunk, decay: false)
        }
        p.add("lnf_w", [C], .trunk, decay: false)
        p.add("lnf_b", [C], .trunk, decay: false)
        p.add("lm_head_w", [c.vocabSize, C], .lmHead, decay: true)
        switch heads.reward {
        case .none: break
        case .linear:
            p.add("rh_w", [1, C], .rewardHead, decay: true)
            p.add("rh_b", [1], .rewardHead, decay: false)
        case .mlp(let hidden):
            p.add("rh_fc_w", [hidden, C], .rewardHead, decay: true)
            p.add("rh_fc_b", [hidden], .rewardHead, decay: false)
            p.add("rh_out_w", [1, hidden], .rewardHead, decay: true)
            p.add("rh_out_b", [1], .rewardHead, decay: false)
        case .variational(let latent):
            p.add("rh_mu_w", [latent, C], .rewardHead, decay: true)
            p.add("rh_mu_b", [latent], .rewardHead, decay: false)
            p.add("rh_logvar_w", [latent, C], .rewardHead, decay: true)
            p.add("rh_logvar_b", [latent], .rewardHead, decay: false)
            p.add("rh_w", [1, latent], .rewardHead, decay: true)
            p.add("rh_b", [1], .rewardHead, decay: false)
        }
        if heads.value {
            p.add("vh_w", [1, C], .valueHead, decay: true)
            p.add("vh_b", [1], .valueHead, decay: false)
        }
        return p
    }
}
