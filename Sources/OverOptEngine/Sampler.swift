// Sampler.swift — batched incremental decoding with a KV cache.
//
// Prompts of different lengths are decoded together: the prefill runs every prompt token
// through the trunk in one pass (each appends its key and value to the cache and attends
// over its own row's positions 0…pos); then each step feeds every unfinished row its last
// token at that row's own position, the same way. Finished rows
// (EOS or length limit) are dropped from the step's matrices, so the matmuls shrink as
// sequences end. Every row draws from its own RNG stream (split from the caller's RNG by
// row index), so a row's sample does not depend on the batch it was decoded in.
//
// Parallelism: the rows are cut into decode groups of 16–32 rows (fixed by the batch size,
// never by the thread count, so samples are identical at any thread count), and each group
// decodes to its end on one thread without waiting for the others, its matrix products
// single-threaded on weights packed once per call (PackedLinear.swift). Threads take the
// next group when they finish one. Small groups keep a group's KV cache and activations
// close to the core: for the `large` preset a 16-row group's cache is ≤ 4 MB, 1 MB per
// layer, and attention over it is bound by memory traffic. Measured on 2 cores at 256 rows
// (`overopt bench`): 16-row groups sample at ≈ 72 K tokens/s, 32-row ones at ≈ 64 K, 64-row
// ones at ≈ 53 K.
//
// The same forward serves read-outs without decoding (LeanForward.swift).
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
    let work: Workspace

    public convenience init(model: Transformer) { self.init(model: model, work: Workspace()) }

    /// A sampler whose buffers live in `work` (reused from call to call).
    init(model: Transformer, work: Workspace) { self.model = model; self.work = work }

    /// Generates continuations of `prompts`. Returns, per prompt, the generated tokens
    /// (ending with EOS if it was emitted).
    public func generate(prompts: [[Int32]], config s: SamplingConfig, rng: inout RNG) -> [[Int32]] {
        generateWithLogProbs(prompts: prompts, config: s, rng: &rng).tokens
    }

    /// The decode groups for a batch of B rows: contiguous, balanced, 16 rows or more each,
    /// an even number when there are several. They depend on B only.
    static func decodeGroups(_ B: Int) -> [Range<Int>] {
        var G = max(1, B / 16)
        if G > 1 && G % 2 == 1 { G -= 1 }      // an even count balances two threads
        return (0..<G).map { ($0 * B / G)..<(($0 + 1) * B / G) }
    }

    /// Like `generate`, also returning each generated token's log-probability under the
    /// model (log-softmax of the raw logits: no temperature, no filtering).
    public func generateWithLogProbs(prompts: [[Int32]], config s: SamplingConfig, rng: inout RNG)
        -> (tokens: [[Int32]], logProbs: [[Float]]) {
        let B = prompts.count
        if B == 0 { return ([], []) }
        let c = model.config, C = c.width, L = c.layers
        let maxPrompt = prompts.map(\.count).max()!
        let maxT = min(c.contextLength, maxPrompt + s.maxNewTokens)
        precondition(prompts.allSatisfy { !$0.isEmpty }, "every prompt needs at least one token")
        precondition(model.lora == nil, "the sampler does not apply LoRA adapters: sample from the merged model (mergeLoRA())")
        precondition(maxPrompt < c.contextLength, "prompt of \(maxPrompt) tokens leaves no room in context \(c.contextLength)")
        var rowRNG = (0..<B).map { rng.split(UInt64($0)) }
        _ = rng.next()

        let cache = KVCache(work: work, L: L, B: B, maxT: maxT, C: C, heads: c.heads)

        // Every group of rows runs to its end on its own — prefill, then one token per step —
        // without synchronizing with the others; the groups spread over the engine's threads,
        // their matrix products on packed weights (no OpenBLAS; see the header).
        let groups = Self.decodeGroups(B)
        let weights = DecodeWeights(model)
        let scratch = groups.indices.map {   // named by index, so later calls reuse the buffers
            DecodeScratch(work: work, name: "g\($0)", rows: groups[$0].count, tokens: groups[$0].count * maxPrompt, config: c, maxT: maxT)
        }
        var out = [[Int32]](repeating: [], count: B)
        var outLogp = [[Float]](repeating: [], count: B)
        out.withUnsafeMutableBufferPointer { outBuf in
            outLogp.withUnsafeMutableBufferPointer { lpBuf in
                rowRNG.withUnsafeMutableBufferPointer { rngBuf in
                    let shared = UncheckedSendable((outBuf, lpBuf, rngBuf))
                    // Each thread takes the next undecoded group when it finishes one, so a
                    // slower core simply decodes fewer groups.
                    parallelForEachDynamic(groups.count) { g in
                        decodeGroup(rows: groups[g], prompts: prompts, cache: cache, weights: weights, scratch: scratch[g],
                                    config: s, maxT: maxT, out: shared.value.0, outLogp: shared.value.1, rng: shared.value.2)
                    }
                }
            }
        }
        return (out, outLogp)
    }

    /// A token to run through the model: its row, its position in the row, its id.
    struct TokenAt { let row: Int, pos: Int, token: Int32 }

    /// Decodes rows `rows` to the end: prefill every prompt token in one pass, then repeat —
    /// sample every active row's next token, retire finished rows, one step for the rest.
    private func decodeGroup(rows: Range<Int>, prompts: [[Int32]], cache: KVCache, weights w: DecodeWeights,
                             scratch sc: DecodeScratch, config s: SamplingConfig, maxT: Int,
                             out: UnsafeMutableBufferPointer<[Int32]>, outLogp: UnsafeMutableBufferPointer<[Float]>,
                             rng: UnsafeMutableBufferPointer<RNG>) {
        let V = model.config.vocabSize
        // 1. Prefill; the logits at each prompt's last token.
        var feed: [TokenAt] = []
        for b in rows { for (t, token) in prompts[b].enumerated() { feed.append(TokenAt(row: b, pos: t, token: token)) } }
        var lastTokens: [Int] = []
        for b in rows { lastTokens.append((lastTokens.last ?? -1) + prompts[b].count) }
        forwardTokens(feed, outputsOf: lastTokens, cache: cache, weights: w, scratch: sc)
        w.lmHead.forward(out: sc.logits, inp: sc.ln, N: rows.count)

        var active = Array(rows)             // logits row i belongs to active[i]
        var pos = rows.map { prompts[$0].count }   // next position, by row − rows.lowerBound
        var order = [Int](repeating: 0, count: V)
        while true {
            // 2. Sample the next token of every active row; retire finished rows.
            feed.removeAll(keepingCapacity: true)
            for (i, b) in active.enumerated() {
                let (token, logp) = drawTokenWithLogProb(sc.logits + i * V, V: V, config: s, probs: sc.probs, order: &order, rng: &rng[b])
                out[b].append(token)
                outLogp[b].append(logp)
                let p = pos[b - rows.lowerBound]
                let done = (s.eosToken.map { token == $0 } ?? false) || out[b].count >= s.maxNewTokens || p >= maxT
                if !done { feed.append(TokenAt(row: b, pos: p, token: token)) }
            }
            if feed.isEmpty { return }
            active = feed.map(\.row)
            // 3. One step for the remaining rows.
            forwardTokens(feed, cache: cache, weights: w, scratch: sc)
            w.lmHead.forward(out: sc.logits, inp: sc.ln, N: feed.count)
            for b in active { pos[b - rows.lowerBound] += 1 }
        }
    }

    /// Runs tokens (any rows, any positions whose predecessors are cached or in `feed`)
    /// through the trunk: appends their keys and values to the cache, each attends over its
    /// row's positions 0…pos, and the final LayerNorm's output lands in `sc.ln`, one row per
    /// token — or, with `outputsOf`, only for those tokens (in that order): the last layer
    /// then computes keys and values for every token but the rest only for these.
    func forwardTokens(_ feed: [TokenAt], outputsOf selected: [Int]? = nil, cache: KVCache,
                               weights w: DecodeWeights, scratch sc: DecodeScratch) {
        let c = model.config, C = c.width, NH = c.heads, hs = C / NH, H = c.mlpRatio * C
        var M = feed.count
        var feed = feed
        let scale = 1 / Float(hs).squareRoot()
        for (i, f) in feed.enumerated() {
            let e = w.wte + Int(f.token) * C, pe = w.wpe + f.pos * C
            let xi = sc.x + i * C
            for j in 0..<C { xi[j] = e[j] + pe[j] }
        }
        for l in 0..<c.layers {
            let lw = w.layers[l]
            layerNormForward(out: sc.ln, mean: sc.mean, rstd: sc.rstd, inp: sc.x, weight: lw.ln1w, bias: lw.ln1b, N: M, C: C)
            lw.qkv.forward(out: sc.qkv, inp: sc.ln, N: M)
            for (i, f) in feed.enumerated() { cache.append(l, f.row, f.pos, qkvRow: sc.qkv + i * 3 * C) }
            if l == c.layers - 1, let selected {
                // Only the selected tokens go on: compact their queries and residual rows.
                for (k, i) in selected.enumerated() where k != i {
                    (sc.qkv + k * 3 * C).update(from: sc.qkv + i * 3 * C, count: C)
                    (sc.x + k * C).update(from: sc.x + i * C, count: C)
                }
                feed = selected.map { feed[$0] }
                M = feed.count
            }
            for (i, f) in feed.enumerated() {
                let q = sc.qkv + i * 3 * C
                for hd in 0..<NH {
                    singleQueryAttention(q: q + hd * hs, keysT: cache.keys(l, f.row, head: hd), values: cache.values(l, f.row) + hd * hs,
                                         count: f.pos + 1, timeStride: cache.timeStride, valueStride: C, hs: hs, scale: scale,
                                         scores: sc.scores, out: sc.atty + i * C + hd * hs)
                }
            }
            lw.attnProj.forward(out: sc.x, inp: sc.atty, N: M, accumulate: true)   // the residual stream
            layerNormForward(out: sc.ln, mean: sc.mean, rstd: sc.rstd, inp: sc.x, weight: lw.ln2w, bias: lw.ln2b, N: M, C: C)
            lw.fc.forward(out: sc.fch, inp: sc.ln, N: M)
            geluForward(out: sc.fch, inp: sc.fch, n: M * H)
            lw.mlpProj.forward(out: sc.x, inp: sc.fch, N: M, accumulate: true)
        }
        layerNormForward(out: sc.ln, mean: sc.mean, rstd: sc.rstd, inp: sc.x, weight: w.lnfw, bias: w.lnfb, N: M, C: C)
    }
}

/// The KV cache of one `generate` call. Keys are stored transposed per head, (hs, time) with
/// a time stride rounded up to whole 16-lane vectors, so that one query's scores over 16
/// positions are a single vector multiply-add per head dimension; values are (time, C).
struct KVCache: @unchecked Sendable {
    let kCache, vCache: FPtr
    let B, maxT, C, hs, timeStride: Int

    init(work: Workspace, L: Int, B: Int, maxT: Int, C: Int, heads: Int) {
        self.B = B; self.maxT = maxT; self.C = C; hs = C / heads
        timeStride = (maxT + 15) / 16 * 16
        kCache = work.get("k", L * B * C * timeStride)
        vCache = work.get("v", L * B * maxT * C)
    }

    /// Keys of layer l, row b, head `head`: (hs, timeStride).
    @inline(__always) func keys(_ l: Int, _ b: Int, head: Int) -> FPtr { kCache + ((l * B + b) * C + head * hs) * timeStride }
    /// Values of layer l, row b: (maxT, C).
    @inline(__always) func values(_ l: Int, _ b: Int) -> FPtr { vCache + (l * B + b) * maxT * C }

    /// Stores the key and value of position t from a fused QKV row (q, k, v of C each).
    @inline(__always) func append(_ l: Int, _ b: Int, _ t: Int, qkvRow: FPtr) {
        let k = qkvRow + C, kt = kCache + ((l * B + b) * C) * timeStride + t
        for j in 0..<C { kt[j * timeStride] = k[j] }
        values(l, b).advanced(by: t * C).update(from: qkvRow + 2 * C, count: C)
    }
}
/// The decoder's weights, looked up once per `generate`; those of the matrix products are
/// packed for `PackedLinear`.
struct DecodeWeights: @unchecked Sendable {
    struct Layer { let ln1w, ln1b, ln2w, ln2b: FPtr; let qkv, attnProj, fc, mlpProj: PackedLinear }
    let wte, wpe, lnfw, lnfb: FPtr
    let lmHead: PackedLinear
    let layers: [Layer]

    init(_ m: Transformer) {
        let c = m.config, C = c.width, H = c.mlpRatio * C
        func packed(_ name: String, _ C: Int, _ OC: Int, bias: Bool = true) -> PackedLinear {
            PackedLinear(weight: m.p(name + "_w"), bias: bias ? m.p(name + "_b") : nil, C: C, OC: OC)
        }
        wte = m.p("wte"); wpe = m.p("wpe"); lnfw = m.p("lnf_w"); lnfb = m.p("lnf_b")
        lmHead = packed("lm_head", C, c.vocabSize, bias: false)
        layers = (0..<c.layers).map { l in
            let h = "h\(l)."
            return Layer(ln1w: m.p(h + "ln1_w"), ln1b: m.p(h + "ln1_b"), ln2w: m.p(h + "ln2_w"), ln2b: m.p(h + "ln2_b"),
                         qkv: packed(h + "qkv", C, 3 * C), attnProj: packed(h + "attn_proj", C, C),
                         fc: packed(h + "fc", C, H), mlpProj: packed(h + "mlp_proj", H, C))
        }
    }
}

/// One decode group's activations (up to `tokens` tokens: the prefill of all its prompts,
/// ≥ one per row), allocated before the threads start.
struct DecodeScratch: @unchecked Sendable {
    let x, ln, qkv, atty, fch, mean, rstd, logits, scores, probs: FPtr

    init(work: Workspace, name: String, rows: Int, tokens: Int, config c: TransformerConfig, maxT: Int) {
        let C = c.width, H = c.mlpRatio * C, n = max(tokens, rows)
        func get(_ what: String, _ n: Int) -> FPtr { work.get("\(name).\(what)", n) }
        x = get("x", n * C); ln = get("ln", n * C); qkv = get("qkv", n * 3 * C)
        atty = get("atty", n * C); fch = get("fch", n * H)
        mean = get("mean", n); rstd = get("rstd", n); logits = get("logits", rows * c.vocabSize)
        scores = get("scores", (maxT + 15) / 16 * 16); probs = get("probs", c.vocabSize)
    }
}

/// log softmax(z)[index] over V logits.
@inline(__always)
func logSoftmaxAt(_ z: FPtr, V: Int, index: Int) -> Float {
    let mx = maxOf(z, V)
    return z[index] - mx - logf(expSum(z, V, shift: mx, scale: 1, into: nil))
}

/// max of z[0..<n].
@inline(__always)
func maxOf(_ z: FPtr, _ n: Int) -> Float {
    var m = F16(repeating: -.greatestFiniteMagnitude)
    var i = 0
    while i + 16 <= n { m = vmax(m, load16(z + i)); i += 16 }
    var r = hmax(m)
    while i < n { r = max(r, z[i]); i += 1 }
    return r
}

/// Σ_v exp((z[v] − shift)·scale), also writing each term to `into` when given.
@inline(__always)
func expSum(_ z: FPtr, _ n: Int, shift: Float, scale: Float, into out: FPtr?) -> Float {
    var acc = F16()
    var i = 0
    while i < n {
        let c = min(16, n - i)
        var e = vexp((load16(z + i, c) - shift) * scale)
        if c < 16 { for k in c..<16 { e[k] = 0 } }
        if let out { store16(e, out + i, c) }
        acc += e
        i += 16
    }
    return hsum(acc)
}

/// Draws one token from logits z (V) under the sampling config. `probs` is V scratch
/// floats, `order` V scratch indices.
public func drawToken(_ z: FPtr, V: Int, config s: SamplingConfig, probs: FPtr, order: inout [Int], rng: inout RNG) -> Int32 {
    drawTokenWithLogProb(z, V: V, config: s, probs: probs, order: &order, rng: &rng).token
}

/// `drawToken`, also returning the token's log-probability under the raw logits
/// (log-softmax without temperature or filtering). At temperature 1 both share one pass
/// of exponentials.
func drawTokenWithLogProb(_ z: FPtr, V: Int, config s: SamplingConfig, probs: FPtr, order: inout [Int],
                          rng: inout RNG) -> (token: Int32, logProb: Float) {
    let mx = maxOf(z, V)
    var rawSum: Float?
    var token = 0
    if s.greedy || s.temperature <= 0 {
        for v in 1..<V where z[v] > z[token] { token = v }
    } else {
        let invT = 1 / s.temperature
        var total = expSum(z, V, shift: mx, scale: invT, into: probs)
        if invT == 1 { rawSum = total }
        if s.topK > 0 || s.topP < 1 {
            let inv = 1 / total
            for v in 0..<V { probs[v] *= inv }
            filterTopKTopP(probs, V: V, topK: s.topK, topP: s.topP, order: &order)
            total = 0
            for v in 0..<V { total += probs[v] }
        }
        var u = rng.uniform() * total
        token = -1
        for v in 0..<V where probs[v] > 0 {
            u -= probs[v]
            token = v
            if u < 0 { break }
        }
        if token < 0 { token = 0 }   // no positive probability (non-finite logits): as before, token 0
    }
    let sum = rawSum ?? expSum(z, V, shift: mx, scale: 1, into: nil)
    return (Int32(token), z[token] - mx - logf(sum))
}

/// Zeroes the probabilities outside the top-k and outside the top-p nucleus (in place,
/// unnormalized). Ties at the boundary are broken by token id so the result is deterministic.
/// Tokens are ranked by one integer key each, (0x7FFF_FFFF − bits of p) << 32 | token id:
/// for p ≥ 0 the bits of a Float order as the values do, so ascending keys are descending
/// probabilities with ties by ascending id. The keys go into a binary min-heap (`order`,
/// V entries) and are taken off it in rank order only until the nucleus is complete —
/// usually a few dozen of V — instead of sorting all V.
public func filterTopKTopP(_ probs: FPtr, V: Int, topK: Int, topP: Float, order: inout [Int]) {
    let limit = topK > 0 ? min(V, topK) : V
    if limit == V && topP >= 1 { return }
    precondition(V <= 1 << 31, "filterTopKTopP: vocabulary too large for the ranking keys")
    order.withUnsafeMutableBufferPointer { heap in
        func siftDown(_ start: Int, _ count: Int) {
            var i = start
            let item = heap[i]
            while true {
                var child = 2 * i + 1
                if child >= count { break }
                if child + 1 < count && heap[child + 1] < heap[child] { child += 1 }
                if heap[child] >= item { break }
                heap[i] = heap[child]
                i = child
            }
            heap[i] = item
        }
        for v in 0..<V { heap[v] = (0x7FFF_FFFF - Int(probs[v].bitPattern)) << 32 | v }
        for i in stride(from: V / 2 - 1, through: 0, by: -1) { siftDown(i, V) }
        // Take the smallest key off the heap into the slot it frees at the end: the kept
        // tokens end up in heap[count..<V], each with its probability's bits.
        var count = V, cum: Float = 0
        while V - count < limit {
            let v = heap[0] & 0xFFFF_FFFF
            count -= 1
            heap[0] = heap[count]
            heap[count] = Int(probs[v].bitPattern) << 32 | v
            siftDown(0, count)
            if topP < 1 {
                cum += probs[v]
                if cum >= topP { break }
            }
        }
        probs.update(repeating: 0, count: V)
        for i in count..<V { probs[heap[i] & 0xFFFF_FFFF] = Float(bitPattern: UInt32(truncatingIfNeeded: heap[i] >> 32)) }
    }
}
