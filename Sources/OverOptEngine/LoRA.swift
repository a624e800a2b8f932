// LoRA.swift — low-rank adapters on the attention projections, with exact gradients.
//
// What it is: LoRA (Hu et al. 2021, arXiv 2106.09685) as the GRM paper uses it for its
// main reward models: every adapted linear map W (OC,C) becomes
//
//     y = x·Wᵀ + b + s · (drop(x)·Aᵀ)·Bᵀ,      A (r,C), B (OC,r), s = α/r
//
// with A ~ U(−1/√C, 1/√C) (PEFT's Kaiming-uniform) and B = 0, so a fresh adapter leaves
// the model unchanged. Adapted maps per block: q, k and v — three separate adapters, each
// writing its own column slice of the fused QKV output (as PEFT does on q_proj, k_proj,
// v_proj; one adapter on the fused qkv would share A across q, k, v) — and the attention
// output projection. Dropout is applied to each adapter's input independently.
// What it is not: a general adapter framework. The Transformer calls `loraForward` right
// after its qkv and attn_proj linear calls and `loraBackward` right after their backward.
//
// Parameters live in the model's flat layout in the `.lora` group, named
// h<l>.lora_{q,k,v,proj}_{A,B}, so AdamW, clipping, freezing and checkpoints treat them
// like any other tensor. `mergeLoRA()` folds W ← W + s·B·A into a plain model for fast
// scoring (and for the KV-cache sampler, which does not apply adapters).
//
// Shapes: N = B·T rows, C width, r rank, OC the adapted map's output size.

/// Low-rank adapter hyperparameters.
public struct LoRAConfig: Codable, Sendable, Equatable {
    /// Rank r of every adapter.
    public var rank: Int
    /// Scale numerator: the adapter output is multiplied by α/r.
    public var alpha: Float
    /// Dropout on each adapter's input while training.
    public var dropout: Float

    public init(rank: Int = 8, alpha: Float = 16, dropout: Float = 0.05) {
        self.rank = rank; self.alpha = alpha; self.dropout = dropout
    }

    /// s = α/r.
    public var scale: Float { alpha / Float(rank) }

    /// A message for the first invalid field, or nil.
    public func validationError() -> String? {
        if rank < 1 { return "LoRA rank must be at least 1 (got \(rank))" }
        if !(alpha > 0) { return "LoRA alpha must be positive (got \(alpha))" }
        if !(0..<1).contains(dropout) { return "LoRA dropout must be in [0, 1) (got \(dropout))" }
        return nil
    }
}

/// The four adapted projections of a block.
public enum LoRATarget: String, CaseIterable, Sendable {
    case q, k, v, proj
}

/// The adapters of one model: their configuration and per-forward scratch state.
/// Owned by a `Transformer` (its `lora` property); not shared between models.
public final class LoRAAdapters: @unchecked Sendable {
    public let config: LoRAConfig
    let work = Workspace()
    /// Whether the last forward applied adapter dropout (then the dropped inputs were saved).
    var dropoutUsed = false

    public init(config: LoRAConfig) {
        if let e = config.validationError() { preconditionFailure(e) }
        self.config = config
    }

    /// Parameter names of an adapter.
    public static func names(layer l: Int, _ target: LoRATarget) -> (a: String, b: String) {
        ("h\(l).lora_\(target.rawValue)_A", "h\(l).lora_\(target.rawValue)_B")
    }
}

extension ParameterLayout {
    /// Appends the adapters of every block (group `.lora`). Both matrices are marked for
    /// weight decay, as a Hugging Face trainer treats them (decay pulls ΔW toward 0, i.e.
    /// toward the base model).
    mutating func addLoRA(_ c: TransformerConfig, _ lora: LoRAConfig) {
        let C = c.width, r = lora.rank
        for l in 0..<c.layers {
            for target in LoRATarget.allCases {
                let n = LoRAAdapters.names(layer: l, target)
                add(n.a, [r, C], .lora, decay: true)
                add(n.b, [C, r], .lora, decay: true)
            }
        }
    }
}

// MARK: - Adapter kernels

/// out (N,OC; row stride ldo) += s·(xd·Aᵀ)·Bᵀ, saving u = xd·Aᵀ (N,r).
/// xd (N,C) is the (dropped-out) adapter input.
public func loraForward(out: FPtr, ldo: Int, u: FPtr, xd: FPtr, A: FPtr, B: FPtr,
                        N: Int, C: Int, OC: Int, r: Int, scale: Float) {
    gemm(transA: false, transB: true, M: N, N: r, K: C, alpha: 1, A: xd, lda: C, B: A, ldb: C, beta: 0, C: u, ldc: r)
    gemm(transA: false, transB: true, M: N, N: OC, K: r, alpha: scale, A: u, lda: r, B: B, ldb: r, beta: 1, C: out, ldc: ldo)
}

/// Backward of `loraForward` given dout (N,OC; row stride ldo):
///   dB (OC,r) += s·doutᵀ·u;  du = s·dout·B (N,r);  dA (r,C) += duᵀ·xd;  dxd (N,C) += du·A.
/// dA, dB may be nil (frozen adapters); dxd may be nil (no input gradient needed).
public func loraBackward(dxd: FPtr?, dA: FPtr?, dB: FPtr?, du: FPtr, dout: FPtr, ldo: Int, u: FPtr, xd: FPtr,
                         A: FPtr, B: FPtr, N: Int, C: Int, OC: Int, r: Int, scale: Float) {
    if let dB {
        gemm(transA: true, transB: false, M: OC, N: r, K: N, alpha: scale, A: dout, lda: ldo, B: u, ldb: r, beta: 1, C: dB, ldc: r)
    }
    if dA == nil && dxd == nil { return }
    gemm(transA: false, transB: false, M: N, N: r, K: OC, alpha: scale, A: dout, lda: ldo, B: B, ldb: r, beta: 0, C: du, ldc: r)
    if let dA {
        gemm(transA: true, transB: false, M: r, N: C, K: N, alpha: 1, A: du, lda: r, B: xd, ldb: C, beta: 1, C: dA, ldc: C)
    }
    if let dxd {
        gemm(transA: false, transB: false, M: N, N: C, K: r, alpha: 1, A: du, lda: r, B: A, ldb: C, beta: 1, C: dxd, ldc: C)
    }
}

// MARK: - Transformer integration

extension Transformer {
    /// Which adapters sit on a fused projection: q|k|v on "qkv" (column offsets 0, C, 2C of
    /// a 3C-wide output), proj on "attn_proj".
    static func loraTargets(qkv: Bool) -> [LoRATarget] { qkv ? [.q, .k, .v] : [.proj] }

    /// Adds the adapters' output to a projection just computed in `forward`:
    /// `out` (N, 3C for qkv or C for proj) = the linear output, `inp` (N,C) its input.
    func loraForward(qkv isQKV: Bool, layer l: Int, inp: FPtr, out: FPtr, N: Int, training: Bool, rng: inout RNG) {
        guard let lora else { return }
        let C = config.width, r = lora.config.rank, ldo = isQKV ? 3 * C : C
        let pDrop = training ? lora.config.dropout : 0
        if l == 0 && isQKV { lora.dropoutUsed = pDrop > 0 }
        for (j, target) in Transformer.loraTargets(qkv: isQKV).enumerated() {
            let key = "\(l).\(target.rawValue)"
            let names = LoRAAdapters.names(layer: l, target)
            var xd = inp
            if pDrop > 0 {
                xd = lora.work.get("xd" + key, N * C)
                dropoutForward(out: xd, mask: lora.work.get("mask" + key, N * C), inp: inp, n: N * C, p: pDrop, rng: &rng)
            }
            OverOptEngine.loraForward(out: out + j * C, ldo: ldo, u: lora.work.get("u" + key, N * r), xd: xd,
                                      A: p(names.a), B: p(names.b), N: N, C: C, OC: C, r: r, scale: lora.config.scale)
        }
    }

    /// Backward of `loraForward` for one projection: adds the adapters' weight gradients
    /// and their input gradient into `dinp` (N,C). `dout` is the projection's output gradient.
    func loraBackward(qkv isQKV: Bool, layer l: Int, inp: FPtr, dout: FPtr, dinp: FPtr, N: Int) {
        guard let lora else { return }
        let C = config.width, r = lora.config.rank, ldo = isQKV ? 3 * C : C
        let du = lora.work.get("du", N * r)
        for (j, target) in Transformer.loraTargets(qkv: isQKV).enumerated() {
            let key = "\(l).\(target.rawValue)"
            let names = LoRAAdapters.names(layer: l, target)
            let xd = lora.dropoutUsed ? lora.work.get("xd" + key, N * C) : inp
            if lora.dropoutUsed {
                let dxd = lora.work.zeroed("dxd", N * C)
                OverOptEngine.loraBackward(dxd: dxd, dA: g(names.a), dB: g(names.b), du: du, dout: dout + j * C, ldo: ldo,
                                           u: lora.work.get("u" + key, N * r), xd: xd, A: p(names.a), B: p(names.b),
                                           N: N, C: C, OC: C, r: r, scale: lora.config.scale)
                dropoutBackward(dinp: dinp, mask: lora.work.get("mask" + key, N * C), dout: dxd, n: N * C)
            } else {
                OverOptEngine.loraBackward(dxd: dinp, dA: g(names.a), dB: g(names.b), du: du, dout: dout + j * C, ldo: ldo,
                                           u: lora.work.get("u" + key, N * r), xd: xd, A: p(names.a), B: p(names.b),
                                           N: N, C: C, OC: C, r: r, scale: lora.config.scale)
            }
        }
    }

    /// Fresh adapters: A ~ U(−1/√C, 1/√C) (PEFT's Kaiming-uniform with a = √5), B = 0.
    /// Draws nothing from `rng` when the model has no adapters.
    public func initializeLoRA(rng: inout RNG) {
        guard lora != nil else { return }
        let bound = 1 / Float(config.width).squareRoot()
        for t in layout.tensors where t.group == .lora {
            let ptr = params.ptr + t.offset
            if t.name.hasSuffix("_A") {
                for i in 0..<t.count { ptr[i] = bound * (2 * rng.uniform() - 1) }
            } else {
                ptr.update(repeating: 0, count: t.count)
            }
        }
    }

    /// A plain model (same config and heads, no adapters) whose base weights have the
    /// adapters folded in: W_q ← W_q + s·B_q·A_q (rows 0..<C of qkv_w; k and v likewise),
    /// attn_proj_w ← attn_proj_w + s·B_proj·A_proj. Gives the same outputs as this model
    /// without dropout, at the plain model's speed. Without adapters: a copy.
    public func mergeLoRA() -> Transformer {
        let merged = Transformer(config: config, heads: heads)
        merged.copyParameters(from: self)
        merged.frozen = frozen.subtracting([.lora])
        guard let lora else { return merged }
        let C = config.width, r = lora.config.rank
        for l in 0..<config.layers {
            for target in LoRATarget.allCases {
                let names = LoRAAdapters.names(layer: l, target)
                // W (OC,C) rows of this target: ΔW = s·B (C,r) · A (r,C).
                let w = target == .proj
                    ? merged.p("h\(l).attn_proj_w")
                    : merged.p("h\(l).qkv_w") + (target == .q ? 0 : target == .k ? 1 : 2) * C * C
                gemm(transA: false, transB: false, M: C, N: C, K: r, alpha: lora.config.scale, A: p(names.b), lda: r,
                     B: p(names.a), ldb: C, beta: 1, C: w, ldc: C)
            }
        }
        return merged
    }
}
