// Sampler.swift — batched incremental decoding with a KV cache.
//
// Prompts of different lengths are decoded together: the prompt prefill is one trunk
// forward pass over the right-padded prompts (its fused QKV activations hold every
// prompt position's keys and values, which are copied into the cache); then each step
// feeds every unfinished row its last token at that row's own position, appends its key
// and value to the cache and attends over positions 0…pos of its own row. Finished rows
// (EOS or length limit) are dropped from the step's matrices, so the matmuls shrink as
// sequences end. Every row draws from its own RNG stream (split from the caller's RNG by
// row index), so a row's sample does not depend on the batch it was decoded in.
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// How tokens are drawn from the next-token distribution.
public struct SamplingConfig: Codable, Sendable, Equatable {
    /// Softmax temperature (ignored when `greedy`).
    public var temperature: Float = 1
    /// Keep only the k most likely tokens (0 = off).
    public var topK: Int = 0
    /// Nucleus sampling: keep the smallest set of most likely tokens with mass ≥ topP (1 = off).
    public var topP: Float = 1
    /// Argmax decoding.
    public var greedy: Bool = false
    /// Maximum number of generated tokens per row (EOS included).
    public var maxNewTokens: Int
    /// Stop a row after it emits this token (it is kept in the output).
    public var eosToken: Int32?

    public init(temperature: Float = 1, topK: Int = 0, topP: Float = 1, greedy: Bool = false,
                maxNewTokens: Int, eosToken: Int32? = nil) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.greedy = greedy
        self.maxNewTokens = maxNewTokens; self.eosToken = eosToken
    }
}

/// Batched KV-cache decoder for one model.
public final class Sampler: @unchecked Sendable {
    public let model: Transformer
    let work = Workspace()

    public init(model: Transformer) { self.model = model }

    /// Generates continuations of `prompts`. Returns, per prompt, the generated tokens
    /// (ending with EOS if it was emitted).
    public func generate(prompts: [[Int32]], config s: SamplingConfig, rng: inout RNG) -> [[Int32]] {
        generateWithLogProbs(prompts: prompts, config: s, rng: &rng).tokens
    }

    /// Like `generate`, also returning each generated token's log-probability under the
    /// model (log-softmax of the raw logits: no temperature, no filtering).
    public func generateWithLogProbs(prompts: [[Int32]], config s: SamplingConfig, rng: inout RNG)
        -> (tokens: [[Int32]], logProbs: [[Float]]) {
        let B = prompts.count
        if B == 0 { return ([], []) }
        let c = model.config, C = c.width, L = c.layers, V = c.vocabSize, NH = c.heads, hs = C / NH
        let H = c.mlpRatio * C
        let maxPrompt = prompts.map(\.count).max()!
        let maxT = min(c.contextLength, maxPrompt + s.maxNewTokens)
        precondition(prompts.allSatisfy { !$0.isEmpty }, "every prompt needs at least one token")
        precondition(maxPrompt < c.contextLength, "prompt of \(maxPrompt) tokens leaves no room in context \(c.contextLength)")
        var rowRNG = (0..<B).map { rng.split(UInt64($0)) }
        _ = rng.next()

        // KV cache: per layer, K and V of shape (B, maxT, C).
        let kCache = work.get("k", L * B * maxT * C), vCache = work.get("v", L * B * maxT * C)
        @inline(__always) func kAt(_ l: Int, _ b: Int, _ t: Int) -> FPtr { kCache + ((l * B + b) * maxT + t) * C }
        @inline(__always) func vAt(_ l: Int, _ b: Int, _ t: Int) -> FPtr { vCache + ((l * B + b) * maxT + t) * C }

        // Prefill: one trunk pass over the right-padded prompts.
        let prefill = TokenBatch(sequences: prompts)
        model.forward(prefill)
        let a = model.acts!
        let T0 = prefill.T, N0 = B * T0
        for l in 0..<L {
            let qkv = a.qkv.ptr + l * N0 * 3 * C
            for b in 0..<B {
                for t in 0..<prompts[b].count {
                    let row = qkv + (b * T0 + t) * 3 * C
                    kAt(l, b, t).update(from: row + C, count: C)
                    vAt(l, b, t).update(from: row + 2 * C, count: C)
                }
            }
        }
        // Logits at each prompt's last position.
        let logits = work.get("logits", B * V)
        let lastHidden = work.get("lastHidden", B * C)
        for b in 0..<B {
            lastHidden.advanced(by: b * C).update(from: a.hidden.ptr + (b * T0 + prompts[b].count - 1) * C, count: C)
        }
        linearForward(out: logits, inp: lastHidden, weight: model.p("lm_head_w"), bias: nil, N: B, C: C, OC: V)

        var out = [[Int32]](repeating: [], count: B)
        var outLogp = [[Float]](repeating: [], count: B)
        var pos = prompts.map(\.count)          // position of the next token to feed
        var active = [Int](0..<B)
        let threads = engineThreadCount()   // read once: the per-part scratch below is sized by it
        let probs = work.get("probs", threads * V)

        // Buffers for the decode step (M ≤ B rows).
        let x = work.get("x", B * C), ln = work.get("ln", B * C), qkv = work.get("qkv", B * 3 * C)
        let atty = work.get("atty", B * C), proj = work.get("proj", B * C)
        let fch = work.get("fch", B * H), fchGelu = work.get("fchGelu", B * H)
        let mean = work.get("mean", B), rstd = work.get("rstd", B)
        let scores = work.get("scores", threads * maxT)
        let scale = 1 / Float(hs).squareRoot()
        let wte = model.p("wte"), wpe = model.p("wpe")
        var logitRow = [Int](0..<B)             // row of `logits` holding each active sequence's logits

        while !active.isEmpty {
            // 1. Sample the next token of every active row.
            var next = [Int32](repeating: 0, count: active.count)
            let stepLogp = UnsafeMutablePointer<Float>.allocate(capacity: active.count)
            defer { stepLogp.deallocate() }
            next.withUnsafeMutableBufferPointer { nx in
                rowRNG.withUnsafeMutableBufferPointer { rr in
                    active.withUnsafeBufferPointer { act in
                        logitRow.withUnsafeBufferPointer { lr in
                            parallelFor(act.count, parts: min(threads, parallelParts(act.count, costPerItem: 16 * V))) { part, rows in
                                var ord = [Int](repeating: 0, count: V)
                                let pr = probs + part * V
                                for i in rows {
                                    let z = logits + lr[i] * V
                                    nx[i] = drawToken(z, V: V, config: s, probs: pr, order: &ord, rng: &rr[act[i]])
                                    stepLogp[i] = logSoftmaxAt(z, V: V, index: Int(nx[i]))
                                }
                            }
                        }
                    }
                }
            }
            for (i, b) in active.enumerated() {
                out[b].append(next[i])
                outLogp[b].append(stepLogp[i])
            }
            // 2. Retire finished rows.
            var feed: [(row: Int, token: Int32)] = []
            for (i, b) in active.enumerated() {
                let done = (s.eosToken.map { next[i] == $0 } ?? false) || out[b].count >= s.maxNewTokens
                    || pos[b] >= maxT
                if !done { feed.append((b, next[i])) }
            }
            active = feed.map(\.row)
            if active.isEmpty { break }
            let M = active.count
            // 3. One decode step for the M remaining rows.
            for (i, f) in feed.enumerated() {
                let e = wte + Int(f.token) * C, pe = wpe + pos[f.row] * C
                let xi = x + i * C
                for j in 0..<C { xi[j] = e[j] + pe[j] }
            }
            for l in 0..<L {
                let h = "h\(l)."
                layerNormForward(out: ln, mean: mean, rstd: rstd, inp: x, weight: model.p(h + "ln1_w"),
                                 bias: model.p(h + "ln1_b"), N: M, C: C)
                linearForward(out: qkv, inp: ln, weight: model.p(h + "qkv_w"), bias: model.p(h + "qkv_b"), N: M, C: C, OC: 3 * C)
                active.withUnsafeBufferPointer { act in
                    pos.withUnsafeBufferPointer { ps in
                        parallelFor(M, parts: min(threads, parallelParts(M, costPerItem: 4 * C * maxT))) { part, rows in
                            let sc = scores + part * maxT
                            for i in rows {
                                let b = act[i], t = ps[b]
                                let row = qkv + i * 3 * C
                                kAt(l, b, t).update(from: row + C, count: C)
                                vAt(l, b, t).update(from: row + 2 * C, count: C)
                                for hd in 0..<NH {
                                    decodeAttention(q: row + hd * hs, keys: kAt(l, b, 0) + hd * hs, values: vAt(l, b, 0) + hd * hs,
                                                    stride: C, count: t + 1, hs: hs, scale: scale, scores: sc,
                                                    out: atty + i * C + hd * hs)
                                }
                            }
                        }
                    }
                }
                linearForward(out: proj, inp: atty, weight: model.p(h + "attn_proj_w"), bias: model.p(h + "attn_proj_b"), N: M, C: C, OC: C)
                for j in 0..<(M * C) { x[j] += proj[j] }
                layerNormForward(out: ln, mean: mean, rstd: rstd, inp: x, weight: model.p(h + "ln2_w"),
                                 bias: model.p(h + "ln2_b"), N: M, C: C)
                linearForward(out: fch, inp: ln, weight: model.p(h + "fc_w"), bias: model.p(h + "fc_b"), N: M, C: C, OC: H)
                geluForward(out: fchGelu, inp: fch, n: M * H)
                linearForward(out: proj, inp: fchGelu, weight: model.p(h + "mlp_proj_w"), bias: model.p(h + "mlp_proj_b"), N: M, C: H, OC: C)
                for j in 0..<(M * C) { x[j] += proj[j] }
            }
            layerNormForward(out: ln, mean: mean, rstd: rstd, inp: x, weight: model.p("lnf_w"), bias: model.p("lnf_b"), N: M, C: C)
            linearForward(out: logits, inp: ln, weight: model.p("lm_head_w"), bias: nil, N: M, C: C, OC: V)
            logitRow = Array(0..<M)
            for b in active { pos[b] += 1 }
        }
        return (out, outLogp)
    }
}

/// One query attending over `count` cached keys and values (row stride `stride`):
/// out (hs) = Σ_j softmax_j(scale·q·k_j) v_j.  `scores` holds `count` floats.
@inline(__always)
func decodeAttention(q: FPtr, keys: FPtr, values: FPtr, stride: Int, count: Int, hs: Int, scale: Float,
                     scores: FPtr, out: FPtr) {
    var mx = -Float.greatestFiniteMagnitude
    for j in 0..<count {
        let k = keys + j * stride
        var acc = F16()
        var u = 0
        while u + 16 <= hs { acc += load16(q + u) * load16(k + u); u += 16 }
        var d = acc.sum()
        while u < hs { d += q[u] * k[u]; u += 1 }
        d *= scale
        scores[j] = d
        if d > mx { mx = d }
    }
    var sum: Float = 0
    for j in 0..<count { let e = expf(scores[j] - mx); scores[j] = e; sum += e }
    let inv = 1 / sum
    for u in 0..<hs { out[u] = 0 }
    for j in 0..<count {
        let w = scores[j] * inv
        let v = values + j * stride
        var u = 0
        while u + 16 <= hs { store16(load16(out + u) + w * load16(v + u), out + u); u += 16 }
        while u < hs { out[u] += w * v[u]; u += 1 }
    }
}

/// log softmax(z)[index] over V logits.
@inline(__always)
func logSoftmaxAt(_ z: FPtr, V: Int, index: Int) -> Float {
    var mx = -Float.greatestFiniteMagnitude
    for v in 0..<V where z[v] > mx { mx = z[v] }
    var sum: Float = 0
    for v in 0..<V { sum += expf(z[v] - mx) }
    return z[index] - mx - logf(sum)
}

/// Draws one token from logits z (V) under the sampling config. `probs` is V scratch
/// floats, `order` V scratch indices.
public func drawToken(_ z: FPtr, V: Int, config s: SamplingConfig, probs: FPtr, order: inout [Int], rng: inout RNG) -> Int32 {
    if s.greedy || s.temperature <= 0 {
        var best = 0
        for v in 1..<V where z[v] > z[best] { best = v }
        return Int32(best)
    }
    let invT = 1 / s.temperature
    var mx = -Float.greatestFiniteMagnitude
    for v in 0..<V where z[v] > mx { mx = z[v] }
    var sum: Float = 0
    for v in 0..<V { let e = expf((z[v] - mx) * invT); probs[v] = e; sum += e }
    let inv = 1 / sum
    for v in 0..<V { probs[v] *= inv }
    if s.topK > 0 || s.topP < 1 {
        filterTopKTopP(probs, V: V, topK: s.topK, topP: s.topP, order: &order)
    }
    var total: Float = 0
    for v in 0..<V { total += probs[v] }
    var u = rng.uniform() * total
    var last = 0
    for v in 0..<V where probs[v] > 0 {
        u -= probs[v]
        last = v
        if u < 0 { return Int32(v) }
    }
    return Int32(last)
}

/// Zeroes the probabilities outside the top-k and outside the top-p nucleus (in place,
/// unnormalized). Ties at the boundary are broken by token id so the result is deterministic.
public func filterTopKTopP(_ probs: FPtr, V: Int, topK: Int, topP: Float, order: inout [Int]) {
    for v in 0..<V { order[v] = v }
    order.sort { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
    var keep = V
    if topK > 0 { keep = min(keep, topK) }
    if topP < 1 {
        var cum: Float = 0
        var n = 0
        while n < keep {
            cum += probs[order[n]]
            n += 1
            if cum >= topP { break }
        }
        keep = n
    }
    for r in keep..<V { probs[order[r]] = 0 }
}
