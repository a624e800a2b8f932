// Transformer.swift — the GPT-2-style decoder with its heads, forward and backward.
//
// What it is: token + learned position embeddings, pre-LayerNorm blocks (causal
// multi-head self-attention with a fused QKV projection, GELU-tanh MLP), a final
// LayerNorm, an untied LM head, and optional heads on the same final hidden states: a
// scalar reward head read at the last non-padding token and a per-token value head.
// What it is not: a general autograd. The forward is the layer calls of Layers.swift in
// order; the backward is the same calls in reverse. Callers (objectives in the simulator)
// turn losses into gradients with respect to the heads' outputs and call `backward`.
//
// The LM head is untied from the token embedding so that reward-model fine-tuning can
// freeze it (GRM keeps the base model's LM head) without freezing the input embedding.
//
// Shapes: B batch, T time, C width, V vocab, N = B·T, Hh reward-MLP hidden size,
// D the variational reward head's latent dimension.
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// A right-padded batch of token sequences.
public struct TokenBatch: Sendable {
    public let B: Int
    public let T: Int
    /// (B,T) token ids, padded with 0 after each sequence's length.
    public var tokens: [Int32]
    /// Number of real tokens per row, 1...T. The reward head reads position lengths[b] − 1.
    public var lengths: [Int]

    public init(B: Int, T: Int, tokens: [Int32], lengths: [Int]) {
        precondition(tokens.count == B * T, "TokenBatch: tokens.count \(tokens.count) != B·T = \(B * T)")
        precondition(lengths.count == B, "TokenBatch: lengths.count \(lengths.count) != B = \(B)")
        precondition(lengths.allSatisfy { $0 >= 1 && $0 <= T }, "TokenBatch: every length must be in 1...T")
        self.B = B; self.T = T; self.tokens = tokens; self.lengths = lengths
    }

    /// Right-pads variable-length sequences to the longest one (or to `T` if given).
    public init(sequences: [[Int32]], T: Int? = nil) {
        let t = T ?? sequences.map(\.count).max() ?? 1
        var toks = [Int32](repeating: 0, count: sequences.count * t)
        for (b, s) in sequences.enumerated() {
            precondition(!s.isEmpty && s.count <= t, "TokenBatch: sequence \(b) has length \(s.count), not in 1...\(t)")
            for (i, x) in s.enumerated() { toks[b * t + i] = x }
        }
        self.init(B: sequences.count, T: t, tokens: toks, lengths: sequences.map(\.count))
    }
}

/// Saved forward activations for batches of up to `capacityB`×`capacityT` tokens.
public final class Activations: @unchecked Sendable {
    public let capacityB: Int, capacityT: Int
    let L: Int
    // Per layer (N,·) buffers, each of length L·N·width.
    let encoded, ln1, ln1Mean, ln1Rstd, qkv, att, atty, res2, ln2, ln2Mean, ln2Rstd: FloatBuffer
    /// fch holds gelu'(fc output) after the forward (all the backward needs of it); fchGelu gelu(fc output).
    let fch, fchGelu, res3, mask1, mask2: FloatBuffer
    /// Final hidden states after the last LayerNorm, (N,C).
    public let hidden: FloatBuffer
    let lnfMean, lnfRstd: FloatBuffer
    /// LM logits (N,V), computed by `lmLogits`.
    public let logits: FloatBuffer
    // Reward head (B,·) and value head (N).
    let rhIn, rhMask, rhDrop, rhHid, rhAct: FloatBuffer
    /// The variational head's latent (B,D): mean μ, log-variance log σ², noise ε (0 when
    /// not training) and the sample z = μ + σ·ε the reward reads.
    let rhMu, rhLogVar, rhEps, rhZ: FloatBuffer
    public let rewards: FloatBuffer
    public let values: FloatBuffer
    var tokens: [Int32] = []
    var lengths: [Int] = []
    var B = 0, T = 0
    /// The rows the last forward computed (the others hold zeros).
    var rows: TokenRows { TokenRows(B: B, T: T, lengths: lengths) }
    var dropoutUsed = false

    public init(config c: TransformerConfig, heads: HeadConfig, B: Int, T: Int) {
        capacityB = B; capacityT = T; L = c.layers
        let N = B * T, C = c.width, H = c.mlpRatio * c.width
        encoded = FloatBuffer(count: N * C)
        ln1 = FloatBuffer(count: L * N * C); ln1Mean = FloatBuffer(count: L * N); ln1Rstd = FloatBuffer(count: L * N)
        qkv = FloatBuffer(count: L * N * 3 * C)
        att = FloatBuffer(count: L * B * c.heads * T * T)
        atty = FloatBuffer(count: L * N * C)
        res2 = FloatBuffer(count: L * N * C)
        ln2 = FloatBuffer(count: L * N * C); ln2Mean = FloatBuffer(count: L * N); ln2Rstd = FloatBuffer(count: L * N)
        fch = FloatBuffer(count: L * N * H); fchGelu = FloatBuffer(count: L * N * H)
        res3 = FloatBuffer(count: L * N * C)
        let dropN = c.dropout > 0 ? L * N * C : 0
        mask1 = FloatBuffer(count: dropN); mask2 = FloatBuffer(count: dropN)
        hidden = FloatBuffer(count: N * C); lnfMean = FloatBuffer(count: N); lnfRstd = FloatBuffer(count: N)
        logits = FloatBuffer(count: N * c.vocabSize)
        var hh = 0
        if case .mlp(let h) = heads.reward { hh = h }
        rhIn = FloatBuffer(count: B * C); rhMask = FloatBuffer(count: B * C); rhDrop = FloatBuffer(count: B * C)
        rhHid = FloatBuffer(count: B * hh); rhAct = FloatBuffer(count: B * hh)
        var d = 0
        if case .variational(let latent) = heads.reward { d = latent }
        rhMu = FloatBuffer(count: B * d); rhLogVar = FloatBuffer(count: B * d)
        rhEps = FloatBuffer(count: B * d); rhZ = FloatBuffer(count: B * d)
        rewards = FloatBuffer(count: B)
        values = FloatBuffer(count: heads.value ? N : 0)
    }

    public func fits(B: Int, T: Int) -> Bool { B <= capacityB && T <= capacityT }
}

/// A GPT-2-style transformer with an LM head and optional reward and value heads.
public final class Transformer: @unchecked Sendable {
    public let config: TransformerConfig
    public let heads: HeadConfig
    public let layout: ParameterLayout
    /// All parameters, in `layout` order.
    public let params: FloatBuffer
    /// Gradients, same layout as `params`.
    public let grads: FloatBuffer
    /// Groups whose parameters receive no gradient and are never updated.
    public var frozen: Set<ParameterGroup> = []
    /// The activations of the last forward pass (grown as needed).
    public private(set) var acts: Activations?
    let work = Workspace()
    /// The buffers of `rewardScores` (KV cache, activations), kept from call to call.
    let scoringWork = Workspace()
    // Saved by `tokenLogProbs` for `backwardTokenLogProbs`.
    var lastTargets: [Int32] = []
    var lastEntropy: [Float]?
    /// Low-rank adapters on the attention projections (LoRA.swift), or nil.
    public let lora: LoRAAdapters?
    /// The replicas behind `replicas` (DataParallel.swift), made on first use.
    var cachedReplicas: [Transformer]?

    /// A model with the given heads; with `lora`, adapter tensors (group `.lora`) are
    /// appended to the layout and applied after the qkv and attn_proj projections.
    public init(config: TransformerConfig, heads: HeadConfig = .languageModel, lora: LoRAConfig? = nil) {
        if let e = config.validationError() { preconditionFailure("TransformerConfig: \(e)") }
        self.config = config
        self.heads = heads
        var layout = ParameterLayout.transformer(config, heads: heads)
        if let lora { layout.addLoRA(config, lora) }
        self.layout = layout
        self.lora = lora.map(LoRAAdapters.init(config:))
        params = FloatBuffer(count: layout.count)
        grads = FloatBuffer(count: layout.count)
    }

    /// A replica for data parallelism: it shares `model`'s parameters (the same memory, read
    /// only while replicas run) and has its own gradients, activations and scratch, so that
    /// replicas can run forward and backward passes on different rows at the same time.
    /// The frozen groups are copied. Models with LoRA adapters have no replicas.
    public init(replicaOf model: Transformer) {
        precondition(model.lora == nil, "replicas of a model with LoRA adapters are not supported")
        config = model.config
        heads = model.heads
        layout = model.layout
        lora = nil
        params = model.params
        grads = FloatBuffer(count: model.layout.count)
        frozen = model.frozen
    }

    /// Number of parameters.
    public var parameterCount: Int { layout.count }

    /// Pointer to the named parameter tensor.
    @inline(__always)
    public func p(_ name: String) -> FPtr { params.ptr + layout.offset(name) }

    /// Pointer to the named gradient tensor, or nil when its group is frozen.
    @inline(__always)
    public func g(_ name: String) -> FPtr? {
        guard let t = layout[name] else { preconditionFailure("no parameter named \(name)") }
        return frozen.contains(t.group) ? nil : grads.ptr + t.offset
    }

    public func zeroGrad() { grads.zero() }

    // MARK: Initialization

    /// GPT-2 initialization: N(0, 0.02) weights, residual projections N(0, 0.02/√(2L)),
    /// zero biases, unit LayerNorm gains. Heads and LoRA adapters are initialized too.
    public func initialize(rng: inout RNG) {
        let resStd = 0.02 / Float(2 * config.layers).squareRoot()
        for t in layout.tensors where t.group == .trunk || t.group == .lmHead {
            let ptr = params.ptr + t.offset
            if t.name.hasSuffix("ln1_w") || t.name.hasSuffix("ln2_w") || t.name == "lnf_w" {
                ptr.update(repeating: 1, count: t.count)
            } else if t.decay {
                let std: Float = t.name.hasSuffix("proj_w") ? resStd : 0.02
                for i in 0..<t.count { ptr[i] = std * rng.normal() }
            } else {
                ptr.update(repeating: 0, count: t.count)
            }
        }
        initializeHeads(rng: &rng)
        initializeLoRA(rng: &rng)   // no-op (no draws) without adapters
    }

    /// Fresh reward and value heads: N(0, 1/√fan_in) weights (so that rewards start at unit
    /// scale), zero biases.
    public func initializeHeads(rng: inout RNG) {
        for t in layout.tensors where t.group == .rewardHead || t.group == .valueHead {
            let ptr = params.ptr + t.offset
            if t.decay {
                let std = 1 / Float(t.shape[1]).squareRoot()
                for i in 0..<t.count { ptr[i] = std * rng.normal() }
            } else {
                ptr.update(repeating: 0, count: t.count)
            }
        }
    }

    /// Copies every tensor of `other` whose name and shape match; returns the names copied.
    @discardableResult
    public func copyParameters(from other: Transformer) -> [String] {
        var copied: [String] = []
        for t in layout.tensors {
            guard let o = other.layout[t.name], o.shape == t.shape else { continue }
            (params.ptr + t.offset).update(from: other.params.ptr + o.offset, count: t.count)
            copied.append(t.name)
        }
        return copied
    }

    /// Named parameter values as arrays (for tests and checkpoints).
    public func tensor(_ name: String) -> [Float] {
        guard let t = layout[name] else { preconditionFailure("no parameter named \(name)") }
        return Array(UnsafeBufferPointer(start: params.ptr + t.offset, count: t.count))
    }

    public func setTensor(_ name: String, _ values: [Float]) {
        guard let t = layout[name] else { preconditionFailure("no parameter named \(name)") }
        precondition(values.count == t.count, "\(name): expected \(t.count) values, got \(values.count)")
        values.withUnsafeBufferPointer { (params.ptr + t.offset).update(from: $0.baseAddress!, count: t.count) }
    }

    // MARK: Forward

    /// Activations for a B × T batch. They are made for the whole context length, since a
    /// padded batch's T changes from batch to batch: growing them a few positions at a time
    /// would allocate (and have the kernel zero) tens of megabytes each time.
    func activations(B: Int, T: Int) -> Activations {
        if let a = acts, a.fits(B: B, T: T) { return a }
        let a = Activations(config: config, heads: heads, B: max(B, acts?.capacityB ?? 0),
                            T: max(T, config.contextLength))
        acts = a
        return a
    }

    /// Runs the trunk: embeddings, blocks and the final LayerNorm. Final hidden states are
    /// in `acts!.hidden` (N,C). With `training`, dropout is applied (if configured).
    public func forward(_ batch: TokenBatch, training: Bool = false, rng: inout RNG) {
        let B = batch.B, T = batch.T, N = B * T, C = config.width, H = config.mlpRatio * C
        precondition(T <= config.contextLength, "sequence length \(T) exceeds the context \(config.contextLength)")
        let a = activations(B: B, T: T)
        a.B = B; a.T = T; a.tokens = batch.tokens; a.lengths = batch.lengths
        let pDrop = training ? config.dropout : 0
        a.dropoutUsed = pDrop > 0
        // Only each sequence's token rows are computed; padding rows are zeros (TokenRows.swift).
        let rows = a.rows
        let proj = work.get("proj", N * C)
        a.tokens.withUnsafeBufferPointer { tok in
            embeddingForward(out: a.encoded.ptr, tokens: tok.baseAddress!, wte: p("wte"), wpe: p("wpe"), B: B, T: T, C: C,
                             lengths: rows.lengths)
        }
        var residual = a.encoded.ptr
        for l in 0..<config.layers {
            let h = "h\(l).", nc = l * N * C
            let ln1 = a.ln1.ptr + nc, qkv = a.qkv.ptr + l * N * 3 * C, atty = a.atty.ptr + nc
            let res2 = a.res2.ptr + nc, ln2 = a.ln2.ptr + nc, res3 = a.res3.ptr + nc
            let fch = a.fch.ptr + l * N * H, fchGelu = a.fchGelu.ptr + l * N * H
            let att = a.att.ptr + l * B * config.heads * T * T
            layerNormForward(out: ln1, mean: a.ln1Mean.ptr + l * N, rstd: a.ln1Rstd.ptr + l * N, inp: residual,
                             weight: p(h + "ln1_w"), bias: p(h + "ln1_b"), N: N, C: C, rows: rows)
            packedLinearForward(out: qkv, inp: ln1, weight: p(h + "qkv_w"), bias: p(h + "qkv_b"), N: N, C: C, OC: 3 * C, rows: rows)
            if lora != nil { loraForward(qkv: true, layer: l, inp: ln1, out: qkv, N: N, training: training, rng: &rng) }
            attentionForward(out: atty, att: att, qkv: qkv, B: B, T: T, C: C, NH: config.heads, lengths: rows.lengths)
            packedLinearForward(out: proj, inp: atty, weight: p(h + "attn_proj_w"), bias: p(h + "attn_proj_b"), N: N, C: C, OC: C,
                                rows: rows)
            if lora != nil { loraForward(qkv: false, layer: l, inp: atty, out: proj, N: N, training: training, rng: &rng) }
            if pDrop > 0 { dropoutForward(out: proj, mask: a.mask1.ptr + nc, inp: proj, n: N * C, p: pDrop, rng: &rng) }
            residualForward(out: res2, a: residual, b: proj, rows: rows, width: C)
            layerNormForward(out: ln2, mean: a.ln2Mean.ptr + l * N, rstd: a.ln2Rstd.ptr + l * N, inp: res2,
                             weight: p(h + "ln2_w"), bias: p(h + "ln2_b"), N: N, C: C, rows: rows)
            packedLinearForward(out: fch, inp: ln2, weight: p(h + "fc_w"), bias: p(h + "fc_b"), N: N, C: C, OC: H, rows: rows)
            geluForwardSavingDerivative(out: fchGelu, inp: fch, n: N * H, rows: rows, width: H)   // fch now holds gelu'(fc)
            packedLinearForward(out: proj, inp: fchGelu, weight: p(h + "mlp_proj_w"), bias: p(h + "mlp_proj_b"), N: N, C: H, OC: C,
                                rows: rows)
            if pDrop > 0 { dropoutForward(out: proj, mask: a.mask2.ptr + nc, inp: proj, n: N * C, p: pDrop, rng: &rng) }
            residualForward(out: res3, a: res2, b: proj, rows: rows, width: C)
            residual = res3
        }
        layerNormForward(out: a.hidden.ptr, mean: a.lnfMean.ptr, rstd: a.lnfRstd.ptr, inp: residual,
                         weight: p("lnf_w"), bias: p("lnf_b"), N: N, C: C, rows: rows)
    }

    /// Convenience forward without dropout.
    public func forward(_ batch: TokenBatch) {
        var rng = RNG(seed: 0)
        forward(batch, training: false, rng: &rng)
    }

    /// LM head: logits (N,V) = hidden · lm_head_wᵀ, into `acts!.logits` (zero at padding).
    @discardableResult
    public func lmLogits() -> FPtr {
        let a = acts!, N = a.B * a.T
        packedLinearForward(out: a.logits.ptr, inp: a.hidden.ptr, weight: p("lm_head_w"), bias: nil,
                            N: N, C: config.width, OC: config.vocabSize, rows: a.rows)
        return a.logits.ptr
    }

    /// Reward head at each row's last real token: rewards (B), into `acts!.rewards`.
    @discardableResult
    public func rewardForward(training: Bool = false, rng: inout RNG) -> [Float] {
        let a = acts!, B = a.B, T = a.T, C = config.width
        for b in 0..<B {
            (a.rhIn.ptr + b * C).update(from: a.hidden.ptr + (b * T + a.lengths[b] - 1) * C, count: C)
        }
        var input = a.rhIn.ptr
        if case .mlp = heads.reward {
            let pd = training ? heads.rewardDropout : 0
            dropoutForward(out: a.rhDrop.ptr, mask: a.rhMask.ptr, inp: a.rhIn.ptr, n: B * C, p: pd, rng: &rng)
            input = a.rhDrop.ptr
        }
        if case .variational(let D) = heads.reward {
            variationalRewardHead(input: input, B: B, D: D, mean: a.rhMu.ptr, logVariance: a.rhLogVar.ptr, noise: a.rhEps.ptr,
                                  sample: a.rhZ.ptr, out: a.rewards.ptr, training: training, rng: &rng)
        } else {
            rewardHead(input: input, B: B, hidden: a.rhHid.ptr, activated: a.rhAct.ptr, out: a.rewards.ptr)
        }
        return Array(UnsafeBufferPointer(start: a.rewards.ptr, count: B))
    }

    /// The variational head on B rows of final states (B, C): μ and log σ² (B, D); with
    /// `training`, ε ~ N(0, I) drawn row by row from `rng` and z = μ + exp(½ log σ²)·ε, else
    /// ε = 0 and z = μ; rewards r = w·z + b into `out` (B).
    func variationalRewardHead(input: FPtr, B: Int, D: Int, mean: FPtr, logVariance: FPtr, noise: FPtr, sample: FPtr,
                               out: FPtr, training: Bool, rng: inout RNG) {
        let C = config.width
        linearForward(out: mean, inp: input, weight: p("rh_mu_w"), bias: p("rh_mu_b"), N: B, C: C, OC: D)
        linearForward(out: logVariance, inp: input, weight: p("rh_logvar_w"), bias: p("rh_logvar_b"), N: B, C: C, OC: D)
        for i in 0..<(B * D) {
            let e: Float = training ? rng.normal() : 0
            noise[i] = e
            sample[i] = mean[i] + expf(0.5 * logVariance[i]) * e
        }
        linearForward(out: out, inp: sample, weight: p("rh_w"), bias: p("rh_b"), N: B, C: D, OC: 1)
    }

    /// The latent dimension of a variational reward head, else nil.
    public var latentDimension: Int? {
        if case .variational(let d) = heads.reward { return d }
        return nil
    }

    /// μ and log σ² (B·D each, row-major) of the variational head's latent in the last
    /// `rewardForward`.
    public func lastLatents() -> (mean: [Float], logVariance: [Float]) {
        guard let D = latentDimension, let a = acts else { preconditionFailure("no variational reward head or no forward pass") }
        return (Array(UnsafeBufferPointer(start: a.rhMu.ptr, count: a.B * D)),
                Array(UnsafeBufferPointer(start: a.rhLogVar.ptr, count: a.B * D)))
    }

    /// The latent means μ (count·D, row-major) of the variational head for full sequences,
    /// read at each sequence's last token by the decoder's lean forward (as `rewardScores`).
    public func rewardLatentMeans(_ sequences: [[Int32]], chunkSize: Int = 256) -> [Float] {
        guard let D = latentDimension else { preconditionFailure("this model has no variational reward head") }
        let states = Sampler(model: self, work: scoringWork).finalStatesAtLastTokens(sequences, chunkSize: chunkSize)
        let B = sequences.count
        let mean = scoringWork.get("head.hidden", B * D)
        linearForward(out: mean, inp: states, weight: p("rh_mu_w"), bias: p("rh_mu_b"), N: B, C: config.width, OC: D)
        return Array(UnsafeBufferPointer(start: mean, count: B * D))
    }

    /// The reward head on B rows of final states (B, C): rewards into `out` (B); the MLP head
    /// keeps its hidden layer before and after the ReLU in `hidden` and `activated` (B, h).
    func rewardHead(input: FPtr, B: Int, hidden: FPtr, activated: FPtr, out: FPtr) {
        let C = config.width
        switch heads.reward {
        case .none:
            preconditionFailure("this model has no reward head")
        case .linear:
            linearForward(out: out, inp: input, weight: p("rh_w"), bias: p("rh_b"), N: B, C: C, OC: 1)
        case .mlp(let hh):
            linearForward(out: hidden, inp: input, weight: p("rh_fc_w"), bias: p("rh_fc_b"), N: B, C: C, OC: hh)
            reluForward(out: activated, inp: hidden, n: B * hh)
            linearForward(out: out, inp: activated, weight: p("rh_out_w"), bias: p("rh_out_b"), N: B, C: hh, OC: 1)
        case .variational(let D):
            // Scoring reads the latent mean: r = w·μ + b (`hidden` holds μ).
            linearForward(out: hidden, inp: input, weight: p("rh_mu_w"), bias: p("rh_mu_b"), N: B, C: C, OC: D)
            linearForward(out: out, inp: hidden, weight: p("rh_w"), bias: p("rh_b"), N: B, C: D, OC: 1)
        }
    }

    /// Reward-head scores of full sequences by the decoder's lean forward
    /// (`Sampler.finalStatesAtLastTokens`): no dropout, no activations kept; its buffers are
    /// kept for the next call. The model must have no unmerged LoRA adapters.
    public func rewardScores(_ sequences: [[Int32]], chunkSize: Int = 256) -> [Float] {
        let states = Sampler(model: self, work: scoringWork).finalStatesAtLastTokens(sequences, chunkSize: chunkSize)
        let B = sequences.count, hh: Int
        switch heads.reward {
        case .mlp(let h), .variational(let h): hh = h
        default: hh = 1
        }
        let hidden = scoringWork.get("head.hidden", B * hh), activated = scoringWork.get("head.activated", B * hh)
        let out = scoringWork.get("head.out", B)
        rewardHead(input: states, B: B, hidden: hidden, activated: activated, out: out)
        return Array(UnsafeBufferPointer(start: out, count: B))
    }

    /// Final hidden states (after the last LayerNorm) at the last token of each sequence, the
    /// input of the reward head: sequences × width, row-major, by the same lean forward as
    /// `rewardScores`. The model must have no unmerged LoRA adapters.
    public func lastTokenStates(_ sequences: [[Int32]], chunkSize: Int = 256) -> [Float] {
        let states = Sampler(model: self, work: scoringWork).finalStatesAtLastTokens(sequences, chunkSize: chunkSize)
        return Array(UnsafeBufferPointer(start: states, count: sequences.count * config.width))
    }

    /// Σ_t log p(x_t | x_<t) over the response tokens t ≥ responseStart[i] of each sequence,
    /// by the decoder's lean forward (`responseReadouts`).
    public func responseLogProbs(_ sequences: [[Int32]], responseStart: [Int], chunkSize: Int = 256) -> [Double] {
        let r = responseReadouts(sequences, responseStart: responseStart, chunkSize: chunkSize)
        return sequences.indices.map { i in r.logp[r.tokens(of: i)].reduce(0.0) { $0 + Double($1) } }
    }

    /// Per response token t ≥ responseStart[i] of each sequence (predicted at position t − 1):
    /// its log-probability, and with `entropy` / `values` the next-token entropy and the value
    /// head there, by the decoder's lean forward (`Sampler.responseReadouts`): no dropout, the
    /// LM head only at the response positions, nothing kept for a backward. The model must
    /// have no unmerged LoRA adapters.
    public func responseReadouts(_ sequences: [[Int32]], responseStart: [Int], entropy: Bool = false, values: Bool = false,
                                 chunkSize: Int = 256) -> ResponseReadouts {
        precondition(!values || heads.value, "this model has no value head")
        return Sampler(model: self, work: scoringWork).responseReadouts(sequences, responseStart: responseStart, entropy: entropy,
                                                                         values: values, chunkSize: chunkSize)
    }

    /// Reward head without dropout.
    @discardableResult
    public func rewardForward() -> [Float] {
        var rng = RNG(seed: 0)
        return rewardForward(training: false, rng: &rng)
    }

    /// Value head at every position: values (N), into `acts!.values`.
    @discardableResult
    public func valueForward() -> FPtr {
        precondition(heads.value, "this model has no value head")
        let a = acts!, N = a.B * a.T
        linearForward(out: a.values.ptr, inp: a.hidden.ptr, weight: p("vh_w"), bias: p("vh_b"), N: N, C: config.width, OC: 1)
        return a.values.ptr
    }

    // MARK: Backward

    /// Back-propagates the gradients of a loss with respect to the heads' outputs of the last
    /// forward pass — dLogits (N,V), dRewards (B), dValues (N); any may be nil — into
    /// `grads` (accumulating). Frozen groups get no gradient; a frozen trunk is skipped.
    /// Padding rows' hidden states are constant zeros, so gradients there reach only the heads.
    /// `dLatent`: gradients of a loss term on the variational head's μ and log σ² (B·D
    /// each, e.g. a KL regularizer), added to those that flow back from the rewards.
    public func backward(dLogits: FPtr? = nil, dRewards: [Float]? = nil, dValues: FPtr? = nil,
                         dLatent: (mean: [Float], logVariance: [Float])? = nil) {
        let a = acts!, B = a.B, T = a.T, N = B * T, C = config.width
        let dhf = work.zeroed("dhf", N * C)
        if let dLogits {
            linearBackward(dinp: dhf, dweight: g("lm_head_w"), dbias: nil, dout: dLogits, inp: a.hidden.ptr,
                           weight: p("lm_head_w"), N: N, C: C, OC: config.vocabSize, rows: a.rows)
        }
        precondition(dLatent == nil || latentDimension != nil, "dLatent needs a variational reward head")
        if dRewards != nil || dLatent != nil {
            rewardBackward(dRewards ?? [Float](repeating: 0, count: B), dLatent: dLatent, dhf: dhf)
        }
        if let dValues {
            linearBackward(dinp: dhf, dweight: g("vh_w"), dbias: nil, dout: dValues, inp: a.hidden.ptr,
                           weight: p("vh_w"), N: N, C: C, OC: 1, rows: a.rows)
            // A padding row's value is the bias alone (its hidden state is 0): its gradient counts.
            if let db = g("vh_b") { columnSums(into: db, dValues, N: N, OC: 1) }
        }
        // Padding rows were not computed (their hidden states are the constant 0): the heads'
        // input gradients skip them, and the trunk's backward reads only token rows.
        // LoRA hook: adapters need the trunk's backward even when its weights are frozen.
        let loraTrains = lora != nil && !frozen.contains(.lora)
        if !frozen.contains(.trunk) || loraTrains { trunkBackward(dhf: dhf) }
    }

    func rewardBackward(_ dRewards: [Float], dLatent: (mean: [Float], logVariance: [Float])? = nil, dhf: FPtr) {
        let a = acts!, B = a.B, T = a.T, C = config.width
        precondition(dRewards.count == B, "dRewards needs one value per row")
        let dr = work.get("dr", B)
        for b in 0..<B { dr[b] = dRewards[b] }
        let dx = work.zeroed("drhIn", B * C)
        switch heads.reward {
        case .none:
            preconditionFailure("this model has no reward head")
        case .linear:
            linearBackward(dinp: dx, dweight: g("rh_w"), dbias: g("rh_b"), dout: dr, inp: a.rhIn.ptr,
                           weight: p("rh_w"), N: B, C: C, OC: 1)
        case .mlp(let hh):
            let dact = work.zeroed("drhAct", B * hh), dhid = work.zeroed("drhHid", B * hh)
            let ddrop = work.zeroed("drhDrop", B * C)
            linearBackward(dinp: dact, dweight: g("rh_out_w"), dbias: g("rh_out_b"), dout: dr, inp: a.rhAct.ptr,
                           weight: p("rh_out_w"), N: B, C: hh, OC: 1)
            reluBackward(dinp: dhid, inp: a.rhHid.ptr, dout: dact, n: B * hh)
            linearBackward(dinp: ddrop, dweight: g("rh_fc_w"), dbias: g("rh_fc_b"), dout: dhid, inp: a.rhDrop.ptr,
                           weight: p("rh_fc_w"), N: B, C: C, OC: hh)
            dropoutBackward(dinp: dx, mask: a.rhMask.ptr, dout: ddrop, n: B * C)
        case .variational(let D):
            // r = w·z + b, z = μ + exp(½ log σ²)·ε: ∂r/∂μ = w, ∂r/∂log σ² = w·½·σ·ε.
            let dz = work.zeroed("drhZ", B * D), dmu = work.get("drhMu", B * D), dlv = work.get("drhLogVar", B * D)
            linearBackward(dinp: dz, dweight: g("rh_w"), dbias: g("rh_b"), dout: dr, inp: a.rhZ.ptr,
                           weight: p("rh_w"), N: B, C: D, OC: 1)
            for i in 0..<(B * D) {
                dmu[i] = dz[i] + (dLatent?.mean[i] ?? 0)
                dlv[i] = dz[i] * 0.5 * expf(0.5 * a.rhLogVar[i]) * a.rhEps[i] + (dLatent?.logVariance[i] ?? 0)
            }
            linearBackward(dinp: dx, dweight: g("rh_mu_w"), dbias: g("rh_mu_b"), dout: dmu, inp: a.rhIn.ptr,
                           weight: p("rh_mu_w"), N: B, C: C, OC: D)
            linearBackward(dinp: dx, dweight: g("rh_logvar_w"), dbias: g("rh_logvar_b"), dout: dlv, inp: a.rhIn.ptr,
                           weight: p("rh_logvar_w"), N: B, C: C, OC: D)
        }
        for b in 0..<B {
            let dst = dhf + (b * T + a.lengths[b] - 1) * C, src = dx + b * C
            for i in 0..<C { dst[i] += src[i] }
        }
    }

    func trunkBackward(dhf: FPtr) {
        let a = acts!, B = a.B, T = a.T, N = B * T, C = config.width, H = config.mlpRatio * C, L = config.layers
        let rows = a.rows
        let dres = work.zeroed("dresidual", N * C)
        let lastResidual = a.res3.ptr + (L - 1) * N * C
        layerNormBackward(dinp: dres, dweight: g("lnf_w"), dbias: g("lnf_b"), dout: dhf, inp: lastResidual,
                          weight: p("lnf_w"), mean: a.lnfMean.ptr, rstd: a.lnfRstd.ptr, N: N, C: C, rows: rows)
        let dln = work.get("dln", N * C), dqkv = work.get("dqkv", N * 3 * C), datty = work.get("datty", N * C)
        let dfch = work.get("dfch", N * H), dfchGelu = work.get("dfchGelu", N * H)
        let dproj = work.get("dproj", N * C)
        for l in stride(from: L - 1, through: 0, by: -1) {
            let h = "h\(l).", nc = l * N * C
            let residualIn = l == 0 ? a.encoded.ptr : a.res3.ptr + (l - 1) * N * C
            let ln1 = a.ln1.ptr + nc, qkv = a.qkv.ptr + l * N * 3 * C, atty = a.atty.ptr + nc
            let res2 = a.res2.ptr + nc, ln2 = a.ln2.ptr + nc
            let fch = a.fch.ptr + l * N * H, fchGelu = a.fchGelu.ptr + l * N * H
            let att = a.att.ptr + l * B * config.heads * T * T
            // res3 = res2 + dropout(mlp_proj(gelu(fc(ln2(res2)))))
            var dbranch = dres
            if a.dropoutUsed { dproj.update(repeating: 0, count: N * C); dropoutBackward(dinp: dproj, mask: a.mask2.ptr + nc, dout: dres, n: N * C); dbranch = dproj }
            linearBackward(dinp: dfchGelu, dweight: g(h + "mlp_proj_w"), dbias: g(h + "mlp_proj_b"), dout: dbranch,
                           inp: fchGelu, weight: p(h + "mlp_proj_w"), N: N, C: H, OC: C, accumulate: false, rows: rows)
            geluBackward(dinp: dfch, derivative: fch, dout: dfchGelu, n: N * H, accumulate: false, rows: rows, width: H)
            linearBackward(dinp: dln, dweight: g(h + "fc_w"), dbias: g(h + "fc_b"), dout: dfch, inp: ln2,
                           weight: p(h + "fc_w"), N: N, C: C, OC: H, accumulate: false, rows: rows)
            layerNormBackward(dinp: dres, dweight: g(h + "ln2_w"), dbias: g(h + "ln2_b"), dout: dln, inp: res2,
                              weight: p(h + "ln2_w"), mean: a.ln2Mean.ptr + l * N, rstd: a.ln2Rstd.ptr + l * N, N: N, C: C, rows: rows)
            // res2 = residualIn + dropout(attn_proj(attention(qkv(ln1(residualIn)))))
            dbranch = dres
            if a.dropoutUsed { dproj.update(repeating: 0, count: N * C); dropoutBackward(dinp: dproj, mask: a.mask1.ptr + nc, dout: dres, n: N * C); dbranch = dproj }
            linearBackward(dinp: datty, dweight: g(h + "attn_proj_w"), dbias: g(h + "attn_proj_b"), dout: dbranch,
                           inp: atty, weight: p(h + "attn_proj_w"), N: N, C: C, OC: C, accumulate: false, rows: rows)
            if lora != nil { loraBackward(qkv: false, layer: l, inp: atty, dout: dbranch, dinp: datty, N: N) }
            attentionBackward(dqkv: dqkv, dout: datty, qkv: qkv, att: att, B: B, T: T, C: C, NH: config.heads, accumulate: false,
                              lengths: rows.lengths)
            linearBackward(dinp: dln, dweight: g(h + "qkv_w"), dbias: g(h + "qkv_b"), dout: dqkv, inp: ln1,
                           weight: p(h + "qkv_w"), N: N, C: C, OC: 3 * C, accumulate: false, rows: rows)
            if lora != nil { loraBackward(qkv: true, layer: l, inp: ln1, dout: dqkv, dinp: dln, N: N) }
            layerNormBackward(dinp: dres, dweight: g(h + "ln1_w"), dbias: g(h + "ln1_b"), dout: dln, inp: residualIn,
                              weight: p(h + "ln1_w"), mean: a.ln1Mean.ptr + l * N, rstd: a.ln1Rstd.ptr + l * N, N: N, C: C, rows: rows)
        }
        let dwte = g("wte"), dwpe = g("wpe")
        if dwte != nil || dwpe != nil {
            a.tokens.withUnsafeBufferPointer { tok in
                embeddingBackward(dwte: dwte, dwpe: dwpe, dout: dres, tokens: tok.baseAddress!, B: B, T: T, C: C,
                                  lengths: rows.lengths)
            }
        }
    }
}
