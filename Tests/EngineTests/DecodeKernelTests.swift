// The decode path's own kernels against brute force: the packed matrix products, attention of one query over a
// transposed key block (also the training forward's kernel), lane-wise min/max, the token draw's log-probability and
// frequencies; and the grouped decoder end to end (long contexts, several groups, thread
// counts) against a full forward pass.
import OverOptKernelsAVX512
import Testing
@testable import OverOptEngine
#if canImport(Glibc)
import Glibc
#endif

@Suite struct DecodeKernelTests {
    /// Reference attention in Double: softmax(scale·q·k_j) over j < count, times v_j.
    func referenceAttention(q: [Float], keys: [[Float]], values: [[Float]], scale: Float) -> [Double] {
        let s = keys.map { k in Double(scale) * zip(q, k).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
        let m = s.max()!
        let e = s.map { exp($0 - m) }, z = e.reduce(0, +)
        return (0..<q.count).map { u in (0..<keys.count).reduce(0.0) { $0 + e[$1] / z * Double(values[$1][u]) } }
    }

    @Test(arguments: [(32, 1), (32, 15), (32, 16), (32, 17), (32, 64), (32, 100), (16, 40), (12, 37), (4, 5)])
    func singleQueryAttentionMatchesBruteForce(hs: Int, count: Int) {
        var rng = RNG(seed: UInt64(hs * 1000 + count))
        let timeStride = (count + 15) / 16 * 16 + 16, valueStride = hs + 3
        let q = (0..<hs).map { _ in rng.normal() }
        let keys = (0..<count).map { _ in (0..<hs).map { _ in 2 * rng.normal() } }
        let values = (0..<count).map { _ in (0..<hs).map { _ in rng.normal() } }
        // Transposed keys, with garbage (huge values) in the unused positions, which must be masked out.
        let kT = FloatBuffer(count: hs * timeStride), v = FloatBuffer(count: count * valueStride)
        for i in 0..<kT.count { kT[i] = 1e6 }
        for j in 0..<count { for d in 0..<hs { kT[d * timeStride + j] = keys[j][d]; v[j * valueStride + d] = values[j][d] } }
        let qb = FloatBuffer(q), out = FloatBuffer(count: hs), scores = FloatBuffer(count: timeStride)
        let probs = FloatBuffer(count: count + 1)
        probs[count] = 42   // past the end: must stay untouched
        let scale = 1 / Float(hs).squareRoot()
        singleQueryAttention(q: qb.ptr, keysT: kT.ptr, values: v.ptr, count: count, timeStride: timeStride,
                             valueStride: valueStride, hs: hs, scale: scale, scores: scores.ptr, out: out.ptr,
                             probabilities: probs.ptr)
        let ref = referenceAttention(q: q, keys: keys, values: values, scale: scale)
        let err = (0..<hs).map { abs(Double(out[$0]) - ref[$0]) }.max()!
        #expect(err < 2e-6, "hs \(hs) count \(count): max error \(err)")
        // The probabilities are the softmax of the scores.
        let s = keys.map { k in Double(scale) * zip(q, k).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
        let p = softmax(s)
        let perr = (0..<count).map { abs(Double(probs[$0]) - p[$0]) }.max()!
        #expect(perr < 1e-6, "probabilities: max error \(perr)")
        #expect(probs[count] == 42)
    }

    /// The packed products against a Double reference: full and partial blocks of six rows,
    /// full and partial panels of 16 outputs, with and without bias, overwriting and adding.
    @Test(arguments: [(1, 16, 16), (5, 7, 3), (6, 128, 384), (7, 33, 40), (64, 128, 512), (97, 512, 128), (200, 20, 256),
                      (36, 24, 80), (131, 64, 48)])
    func packedLinearMatchesReference(N: Int, C: Int, OC: Int) {
        if N == 1 && CPUFeatures.host.level < .avx512 {
            print("AVX-512 kernels skipped: this CPU (\(CPUFeatures.host.summary)) has no AVX-512; their AVX2 build is tested")
        }
        var rng = RNG(seed: UInt64(N * 7919 + C * 31 + OC))
        let x = FloatBuffer((0..<(N * C)).map { _ in rng.normal() })
        let w = FloatBuffer((0..<(OC * C)).map { _ in rng.normal() / 4 })
        let bias = FloatBuffer((0..<OC).map { _ in rng.normal() })
        let before = (0..<(N * OC)).map { _ in rng.normal() }
        for withBias in [false, true] {
            let packed = PackedLinear(weight: w.ptr, bias: withBias ? bias.ptr : nil, C: C, OC: OC)
            for accumulate in [false, true] {
                // One float past the end must stay untouched.
                let out = FloatBuffer(before + [42])
                packed.forward(out: out.ptr, inp: x.ptr, N: N, accumulate: accumulate, wide: nil)
                // The 12 × 32 kernel gives the same bits: its AVX2 build always, and its
                // AVX-512 build (the one production uses there) where the CPU has AVX-512.
                var variants: [(String, WideKernel)] = [("wide kernel, AVX2 build", { x, ldx, w0, w1, b, c, ldc, C, acc in
                    OverOptEngine.panelKernel12x32(x, ldx: ldx, w0, w1, bias: b, c, ldc: ldc, C: C, accumulate: acc)
                })]
                if CPUFeatures.host.level >= .avx512 {
                    variants.append(("wide kernel, AVX-512 build", { x, ldx, w0, w1, b, c, ldc, C, acc in
                        OverOptKernelsAVX512.panelKernel12x32(x, ldx: ldx, w0, w1, bias: b, c, ldc: ldc, C: C, accumulate: acc)
                    }))
                }
                for (name, kernel) in variants {
                    let wideOut = FloatBuffer(before + [42])
                    packed.forward(out: wideOut.ptr, inp: x.ptr, N: N, accumulate: accumulate, wide: kernel)
                    #expect(wideOut.array == out.array, "\(name): N \(N) C \(C) OC \(OC) bias \(withBias) accumulate \(accumulate)")
                }
                var worst = 0.0
                for n in 0..<N {
                    for o in 0..<OC {
                        var ref = (withBias ? Double(bias[o]) : 0) + (accumulate ? Double(before[n * OC + o]) : 0)
                        var size = abs(ref)   // Σ|terms|: float rounding scales with it
                        for k in 0..<C {
                            let t = Double(x[n * C + k]) * Double(w[o * C + k])
                            ref += t; size += abs(t)
                        }
                        worst = max(worst, abs(Double(out[n * OC + o]) - ref) / max(size, 1e-30))
                    }
                }
                #expect(worst < 5e-7, "N \(N) C \(C) OC \(OC) bias \(withBias) accumulate \(accumulate): \(worst)")
                #expect(out[N * OC] == 42)
            }
        }
    }

    /// Response read-outs by the lean forward (log-probabilities, entropies, values) against
    /// the training forward's, for responses of every length down to none; independent of the
    /// chunking and the thread count.
    @Test func responseReadoutsMatchTheTrainingForward() {
        let cfg = TransformerConfig(vocabSize: 29, contextLength: 40, width: 64, layers: 2, heads: 2)
        let m = Transformer(config: cfg, heads: HeadConfig(value: true))
        var rng = RNG(seed: 31)
        m.initialize(rng: &rng)
        for t in m.layout.tensors { for i in 0..<t.count { m.params[t.offset + i] += 0.15 * rng.normal() } }
        let seqs = (0..<45).map { i in (0..<(2 + i % 30)).map { _ in Int32(rng.int(below: 29)) } }
        let starts = seqs.enumerated().map { i, s in [1, s.count / 2, s.count - 1, s.count][i % 4] }
        var logp: [Float] = [], entropy: [Float] = [], values: [Float] = []
        for start in stride(from: 0, to: seqs.count, by: 16) {
            let r = start..<min(seqs.count, start + 16)
            let batch = TokenBatch(sequences: Array(seqs[r]))
            let mask = responseLossMask(B: batch.B, T: batch.T, responseStart: Array(starts[r]), lengths: batch.lengths)
            let lp = m.tokenLogProbs(batch, mask: mask, entropy: true)
            let v = m.valueForward()
            for (b, i) in r.enumerated() {
                for t in (starts[i] - 1)..<(seqs[i].count - 1) {
                    logp.append(lp.logp[b * batch.T + t]); entropy.append(lp.entropy![b * batch.T + t]); values.append(v[b * batch.T + t])
                }
            }
        }
        let previous = engineThreadCount()
        defer { setEngineThreads(previous) }
        setEngineThreads(1)
        let lean = m.responseReadouts(seqs, responseStart: starts, entropy: true, values: true)
        #expect(lean.logp.count == logp.count && lean.entropy.count == logp.count && lean.values.count == logp.count)
        #expect(lean.tokens(of: 3).isEmpty)                            // a response of no tokens
        func gap(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) / (1 + abs($1)) }.max()! }
        print("response read-outs vs training forward: logp \(gap(lean.logp, logp)), entropy \(gap(lean.entropy, entropy)), values \(gap(lean.values, values))")
        #expect(gap(lean.logp, logp) < 1e-5 && gap(lean.entropy, entropy) < 1e-5 && gap(lean.values, values) < 1e-5)
        let sums = m.responseLogProbs(seqs, responseStart: starts)
        #expect(sums[0] == lean.logp[lean.tokens(of: 0)].reduce(0.0) { $0 + Double($1) })
        let chunked = m.responseReadouts(seqs, responseStart: starts, entropy: true, values: true, chunkSize: 5)
        #expect(chunked.logp == lean.logp && chunked.entropy == lean.entropy && chunked.values == lean.values)
        setEngineThreads(2)
        let two = m.responseReadouts(seqs, responseStart: starts, entropy: true, values: true)
        #expect(two.logp == lean.logp && two.entropy == lean.entropy && two.values == lean.values)
    }

    @Test func laneMinMaxAndReductionsAreExact() {
        var rng = RNG(seed: 4)
        for _ in 0..<200 {
            var a = F16(), b = F16()
            for i in 0..<16 { a[i] = rng.normal() * 100; b[i] = i % 5 == 0 ? a[i] : rng.normal() * 100 }
            let mx = vmax(a, b), mn = vmin(a, b)
            for i in 0..<16 {
                #expect(mx[i] == max(a[i], b[i]))
                #expect(mn[i] == min(a[i], b[i]))
            }
            #expect(hmax(a) == (0..<16).map { a[$0] }.max()!)
            let s = (0..<16).reduce(0.0) { $0 + Double(a[$1]) }
            #expect(abs(Double(hsum(a)) - s) < 1e-4)
        }
        // The clamp inside vexp: far outside the range saturates (huge or +inf, tiny), never NaN.
        let e = vexp(F16(repeating: 1000)), z = vexp(F16(repeating: -1000))
        #expect(!e[0].isNaN && e[0] > 1e38)
        #expect(z[0] >= 0 && z[0] < 1e-37)
    }

    @Test func drawnTokenLogProbAndFrequenciesMatchBruteForce() {
        var rng = RNG(seed: 8)
        let V = 37
        let z = FloatBuffer((0..<V).map { _ in 1.5 * rng.normal() })
        let probs = FloatBuffer(count: V)
        var order = [Int](repeating: 0, count: V)
        let logits = (0..<V).map { Double(z[$0]) }
        let logp = softmax(logits).map { log($0) }
        for temperature: Float in [1, 0.7] {
            let p = softmax(logits.map { $0 / Double(temperature) })
            var counts = [Int](repeating: 0, count: V)
            let draws = 40_000
            for _ in 0..<draws {
                let (t, lp) = drawTokenWithLogProb(z.ptr, V: V, config: SamplingConfig(temperature: temperature, maxNewTokens: 1),
                                                   probs: probs.ptr, order: &order, rng: &rng)
                counts[Int(t)] += 1
                // The reported log-probability is the raw log-softmax, whatever the temperature.
                #expect(abs(Double(lp) - logp[Int(t)]) < 1e-5)
            }
            for v in 0..<V {
                let sd = (Double(draws) * p[v] * (1 - p[v])).squareRoot()
                #expect(abs(Double(counts[v]) - Double(draws) * p[v]) < 5 * sd + 1, "T \(temperature) token \(v)")
            }
        }
        // Greedy returns the argmax and its log-probability.
        let (g, glp) = drawTokenWithLogProb(z.ptr, V: V, config: SamplingConfig(greedy: true, maxNewTokens: 1),
                                            probs: probs.ptr, order: &order, rng: &rng)
        let best = (0..<V).max { z[$0] < z[$1] }!
        #expect(Int(g) == best)
        #expect(abs(Double(glp) - logp[best]) < 1e-5)
    }

    @Test func decodeGroupsDependOnTheBatchSizeOnly() {
        for B in [1, 5, 31, 32, 63, 64, 65, 96, 127, 128, 200, 256, 1000] {
            let g = Sampler.decodeGroups(B)
            #expect(g.first!.lowerBound == 0 && g.last!.upperBound == B)
            for (a, b) in zip(g, g.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
            #expect(g.count == 1 || g.count % 2 == 0, "B \(B): \(g.count) groups")
            #expect(g.allSatisfy { $0.count >= 16 && $0.count <= 32 } || g.count == 1)
        }
    }

    @Test func groupedDecodingOfLongContextsMatchesFullForwardAtAnyThreadCount() {
        // A width-64 model with head size 32 (the vector path), context 100 (more than four
        // 16-position key chunks), 70 prompts (four decode groups), lengths from 1 to 20.
        let cfg = TransformerConfig(vocabSize: 29, contextLength: 100, width: 64, layers: 2, heads: 2)
        let m = Transformer(config: cfg)
        var rng = RNG(seed: 21)
        m.initialize(rng: &rng)
        for t in m.layout.tensors where t.decay { for i in 0..<t.count { m.params[t.offset + i] = 0.15 * rng.normal() } }
        let prompts = (0..<70).map { i in (0..<(1 + i % 20)).map { _ in Int32(rng.int(below: 29)) } }
        let scfg = SamplingConfig(temperature: 1.2, maxNewTokens: 79, eosToken: 3)
        let previous = engineThreadCount()
        defer { setEngineThreads(previous) }
        var runs: [(tokens: [[Int32]], logProbs: [[Float]])] = []
        for threads in [1, 2] {
            setEngineThreads(threads)
            var r = RNG(seed: 99)
            runs.append(Sampler(model: m).generateWithLogProbs(prompts: prompts, config: scfg, rng: &r))
        }
        #expect(runs[0].tokens == runs[1].tokens)
        #expect(runs[0].logProbs == runs[1].logProbs)
        let gen = runs[1]
        #expect(gen.tokens.contains { $0.count + 20 > 64 })   // some rows decode past 64 positions
        let worst = maxLogProbGapToFullForward(m, prompts: prompts, generated: gen)
        print("grouped decoding vs full forward: max |Δ log p| = \(worst)")
        #expect(worst < 1e-4)
    }
}
