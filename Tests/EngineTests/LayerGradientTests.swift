// Finite-difference gradient checks for every layer of Layers.swift and TokenLogProbs.swift.
import Testing
import OverOptEngine

@Suite struct LayerGradientTests {
    @Test func layerNormGradientsMatchFiniteDifferences() {
        var rng = RNG(seed: 1)
        let N = 3, C = 8
        let inp = randomBuffer(N * C, &rng), w = randomBuffer(C, &rng), b = randomBuffer(C, &rng)
        let out = FloatBuffer(count: N * C), mean = FloatBuffer(count: N), rstd = FloatBuffer(count: N)
        let upstream = randomBuffer(N * C, &rng)
        func loss() -> Double {
            layerNormForward(out: out.ptr, mean: mean.ptr, rstd: rstd.ptr, inp: inp.ptr, weight: w.ptr, bias: b.ptr, N: N, C: C)
            return weightedSum(out.ptr, upstream)
        }
        _ = loss()
        let dinp = FloatBuffer(count: N * C), dw = FloatBuffer(count: C), db = FloatBuffer(count: C)
        layerNormBackward(dinp: dinp.ptr, dweight: dw.ptr, dbias: db.ptr, dout: upstream.ptr, inp: inp.ptr,
                          weight: w.ptr, mean: mean.ptr, rstd: rstd.ptr, N: N, C: C)
        let e1 = gradientError(x: inp.ptr, n: N * C, analytic: dinp.array, loss: loss)
        let e2 = gradientError(x: w.ptr, n: C, analytic: dw.array, loss: loss)
        let e3 = gradientError(x: b.ptr, n: C, analytic: db.array, loss: loss)
        print("layernorm max rel err: inp \(e1) weight \(e2) bias \(e3)")
        #expect(e1 < 1e-2 && e2 < 1e-2 && e3 < 1e-2)
    }

    @Test func linearGradientsMatchFiniteDifferences() {
        var rng = RNG(seed: 2)
        let N = 4, C = 5, OC = 3
        let inp = randomBuffer(N * C, &rng), w = randomBuffer(OC * C, &rng), b = randomBuffer(OC, &rng)
        let out = FloatBuffer(count: N * OC), upstream = randomBuffer(N * OC, &rng)
        func loss() -> Double {
            linearForward(out: out.ptr, inp: inp.ptr, weight: w.ptr, bias: b.ptr, N: N, C: C, OC: OC)
            return weightedSum(out.ptr, upstream)
        }
        let dinp = FloatBuffer(count: N * C), dw = FloatBuffer(count: OC * C), db = FloatBuffer(count: OC)
        linearBackward(dinp: dinp.ptr, dweight: dw.ptr, dbias: db.ptr, dout: upstream.ptr, inp: inp.ptr, weight: w.ptr, N: N, C: C, OC: OC)
        let e = [gradientError(x: inp.ptr, n: N * C, analytic: dinp.array, loss: loss),
                 gradientError(x: w.ptr, n: OC * C, analytic: dw.array, loss: loss),
                 gradientError(x: b.ptr, n: OC, analytic: db.array, loss: loss)]
        print("linear max rel err: \(e)")
        #expect(e.max()! < 1e-2)
    }

    /// The backward's packed products against a Double reference: partial blocks of rows
    /// and of outputs, overwriting and adding, on every row or on the token rows of a padded
    /// batch (whose padding rows of dout hold values that must reach neither dweight nor
    /// dinp), at 1 and 2 threads, which must give the same bits.
    @Test(arguments: [(1, 7, 16, 16), (3, 11, 24, 80), (4, 13, 64, 192), (2, 45, 256, 64), (5, 9, 33, 1), (3, 20, 64, 203)])
    func linearBackwardMatchesDoubleReference(B: Int, T: Int, C: Int, OC: Int) {
        let previous = engineThreadCount()
        defer { setEngineThreads(previous) }
        var rng = RNG(seed: UInt64(B * 1000 + T * 31 + C * 7 + OC))
        let N = B * T
        let lengths = (0..<B).map { b in b == 0 ? T : 1 + rng.int(below: T) }
        let inp = randomBuffer(N * C, &rng), w = randomBuffer(OC * C, &rng, scale: 0.25), dout = randomBuffer(N * OC, &rng)
        let dinp0 = randomBuffer(N * C, &rng), dw0 = randomBuffer(OC * C, &rng)
        for padded in [false, true] {
            let rows = TokenRows(B: B, T: T, lengths: padded ? lengths : [Int](repeating: T, count: B))
            let isToken = (0..<N).map { n in !padded || n % T < lengths[n / T] }
            // The forward leaves the input zero at padding rows.
            let x = FloatBuffer(inp.array)
            for n in 0..<N where !isToken[n] { for c in 0..<C { x[n * C + c] = 0 } }
            for accumulate in [false, true] {
                var bits: [[UInt32]] = []
                for threads in [1, 2] {
                    setEngineThreads(threads)
                    let dinp = FloatBuffer(dinp0.array), dw = FloatBuffer(dw0.array)
                    linearBackward(dinp: dinp.ptr, dweight: dw.ptr, dbias: nil, dout: dout.ptr, inp: x.ptr, weight: w.ptr,
                                   N: N, C: C, OC: OC, accumulate: accumulate, rows: rows)
                    var worst = 0.0
                    for n in 0..<N {
                        for c in 0..<C {
                            let start = accumulate ? Double(dinp0[n * C + c]) : 0
                            guard isToken[n] else {
                                #expect(Double(dinp[n * C + c]) == start, "padding row \(n) of dinp")
                                continue
                            }
                            var sum = start, scale = abs(start)
                            for o in 0..<OC { let t = Double(dout[n * OC + o]) * Double(w[o * C + c]); sum += t; scale += abs(t) }
                            worst = max(worst, abs(Double(dinp[n * C + c]) - sum) / (scale + 1e-30))
                        }
                    }
                    for o in 0..<OC {
                        for c in 0..<C {
                            var sum = Double(dw0[o * C + c]), scale = abs(sum)
                            for n in 0..<N where isToken[n] {
                                let t = Double(dout[n * OC + o]) * Double(x[n * C + c]); sum += t; scale += abs(t)
                            }
                            worst = max(worst, abs(Double(dw[o * C + c]) - sum) / (scale + 1e-30))
                        }
                    }
                    #expect(worst < 1e-6, "padded \(padded), accumulate \(accumulate), threads \(threads): relative error \(worst)")
                    bits.append((dinp.array + dw.array).map(\.bitPattern))
                }
                #expect(bits[0] == bits[1], "padded \(padded), accumulate \(accumulate): 1 and 2 threads differ")
            }
        }
    }

    @Test func attentionGradientsMatchFiniteDifferences() {
        var rng = RNG(seed: 3)
        let B = 2, T = 5, C = 8, NH = 2
        let qkv = randomBuffer(B * T * 3 * C, &rng)
        let out = FloatBuffer(count: B * T * C), att = FloatBuffer(count: B * NH * T * T)
        let upstream = randomBuffer(B * T * C, &rng)
        func loss() -> Double {
            attentionForward(out: out.ptr, att: att.ptr, qkv: qkv.ptr, B: B, T: T, C: C, NH: NH)
            return weightedSum(out.ptr, upstream)
        }
        _ = loss()
        let dqkv = FloatBuffer(count: B * T * 3 * C)
        attentionBackward(dqkv: dqkv.ptr, dout: upstream.ptr, qkv: qkv.ptr, att: att.ptr, B: B, T: T, C: C, NH: NH)
        let e = gradientError(x: qkv.ptr, n: qkv.count, analytic: dqkv.array, loss: loss)
        print("attention max rel err: \(e)")
        #expect(e < 1e-2)
    }

    /// Causal attention in Double, by the definition (the brute-force reference).
    func attentionReference(_ qkv: [Double], B: Int, T: Int, C: Int, NH: Int) -> [Double] {
        let hs = C / NH, C3 = 3 * C, scale = 1 / Double(hs).squareRoot()
        var out = [Double](repeating: 0, count: B * T * C)
        for b in 0..<B { for h in 0..<NH { for t in 0..<T {
            let q = (b * T + t) * C3 + h * hs
            let s = (0...t).map { j in scale * (0..<hs).reduce(0.0) { $0 + qkv[q + $1] * qkv[(b * T + j) * C3 + C + h * hs + $1] } }
            let m = s.max()!, e = s.map { exp($0 - m) }, z = e.reduce(0, +)
            for u in 0..<hs {
                out[(b * T + t) * C + h * hs + u] = (0...t).reduce(0.0) { $0 + e[$1] / z * qkv[(b * T + $1) * C3 + 2 * C + h * hs + u] }
            }
        } } }
        return out
    }

    /// The forward and the gradient against a Double reference (central differences in
    /// Double are accurate where Float ones are not): 32-wide heads over 37 positions take
    /// the vector paths of the forward's per-query kernel (3 key chunks) and of the
    /// backward's softmax rows (whole chunks up to 32 positions, then a scalar tail).
    @Test(arguments: [(2, 5, 8, 2), (1, 37, 64, 2), (2, 16, 32, 1)])
    func attentionMatchesDoubleReference(B: Int, T: Int, C: Int, NH: Int) {
        var rng = RNG(seed: 13)
        let qkv = randomBuffer(B * T * 3 * C, &rng), upstream = randomBuffer(B * T * C, &rng)
        let out = FloatBuffer(count: B * T * C), att = FloatBuffer(count: B * NH * T * T)
        attentionForward(out: out.ptr, att: att.ptr, qkv: qkv.ptr, B: B, T: T, C: C, NH: NH)
        let dqkv = FloatBuffer(count: B * T * 3 * C)
        attentionBackward(dqkv: dqkv.ptr, dout: upstream.ptr, qkv: qkv.ptr, att: att.ptr, B: B, T: T, C: C, NH: NH)
        var x = qkv.array.map(Double.init)
        let up = upstream.array.map(Double.init)
        let ref = attentionReference(x, B: B, T: T, C: C, NH: NH)
        let fwdErr = (0..<ref.count).map { abs(Double(out[$0]) - ref[$0]) }.max()!
        func loss() -> Double { zip(attentionReference(x, B: B, T: T, C: C, NH: NH), up).reduce(0) { $0 + $1.0 * $1.1 } }
        var gradErr = 0.0
        for i in sampleIndices(x.count, 600, &rng) {
            let orig = x[i], eps = 1e-5
            x[i] = orig + eps; let lp = loss()
            x[i] = orig - eps; let lm = loss()
            x[i] = orig
            let fd = (lp - lm) / (2 * eps), a = Double(dqkv[i])
            gradErr = max(gradErr, abs(a - fd) / max(1e-3, abs(a) + abs(fd)))
        }
        print("attention vs Double reference (B \(B) T \(T) C \(C) NH \(NH)): forward \(fwdErr), gradient rel \(gradErr)")
        #expect(fwdErr < 1e-5)
        #expect(gradErr < 1e-3)
        // accumulate: false overwrites whatever was there; accumulate: true adds to it.
        let overwritten = randomBuffer(B * T * 3 * C, &rng), base = randomBuffer(B * T * 3 * C, &rng)
        let added = base.copy()
        attentionBackward(dqkv: overwritten.ptr, dout: upstream.ptr, qkv: qkv.ptr, att: att.ptr, B: B, T: T, C: C, NH: NH,
                          accumulate: false)
        attentionBackward(dqkv: added.ptr, dout: upstream.ptr, qkv: qkv.ptr, att: att.ptr, B: B, T: T, C: C, NH: NH)
        #expect(overwritten.array == dqkv.array)
        // OpenBLAS adds alpha·op(A)·op(B) to C with one rounding (a fused multiply-add on
        // AVX2 and wider cores), so the sum may differ from base + dqkv in the last bit.
        let addErr = (0..<added.count).map { abs(added[$0] - (base[$0] + dqkv[$0])) / max(1, abs(base[$0]) + abs(dqkv[$0])) }.max()!
        #expect(addErr <= 2 * Float.ulpOfOne, "accumulate: relative error \(addErr)")
    }

    @Test func attentionIsCausal() {
        // Changing a later token's q, k or v must not change earlier outputs.
        var rng = RNG(seed: 4)
        let B = 1, T = 6, C = 4, NH = 2
        let qkv = randomBuffer(T * 3 * C, &rng)
        let out1 = FloatBuffer(count: T * C), out2 = FloatBuffer(count: T * C), att = FloatBuffer(count: NH * T * T)
        attentionForward(out: out1.ptr, att: att.ptr, qkv: qkv.ptr, B: B, T: T, C: C, NH: NH)
        for j in 0..<(3 * C) { qkv[5 * 3 * C + j] += 1 }
        attentionForward(out: out2.ptr, att: att.ptr, qkv: qkv.ptr, B: B, T: T, C: C, NH: NH)
        for i in 0..<(5 * C) { #expect(out1[i] == out2[i]) }
        #expect(out1[5 * C] != out2[5 * C])
    }

    @Test func geluAndReluGradientsMatchFiniteDifferences() {
        var rng = RNG(seed: 5)
        let n = 40
        let inp = randomBuffer(n, &rng, scale: 2)
        for i in 0..<n where abs(inp[i]) < 0.05 { inp[i] += 0.2 }   // keep ReLU away from its kink
        let out = FloatBuffer(count: n), upstream = randomBuffer(n, &rng)
        func geluLoss() -> Double { geluForward(out: out.ptr, inp: inp.ptr, n: n); return weightedSum(out.ptr, upstream) }
        func reluLoss() -> Double { reluForward(out: out.ptr, inp: inp.ptr, n: n); return weightedSum(out.ptr, upstream) }
        let dg = FloatBuffer(count: n), dr = FloatBuffer(count: n)
        geluBackward(dinp: dg.ptr, inp: inp.ptr, dout: upstream.ptr, n: n)
        reluBackward(dinp: dr.ptr, inp: inp.ptr, dout: upstream.ptr, n: n)
        let eg = gradientError(x: inp.ptr, n: n, analytic: dg.array, eps: 1e-3, loss: geluLoss)
        let er = gradientError(x: inp.ptr, n: n, analytic: dr.array, eps: 1e-3, loss: reluLoss)
        print("gelu \(eg) relu \(er)")
        #expect(eg < 1e-2 && er < 1e-2)
        // GELU(tanh) reference values.
        let x: [Float] = [-2, -0.5, 0, 0.5, 2]
        let ref: [Float] = [-0.04540231, -0.15428599, 0, 0.34571401, 1.95459769]
        let xb = FloatBuffer(x), ob = FloatBuffer(count: 5)
        geluForward(out: ob.ptr, inp: xb.ptr, n: 5)
        for i in 0..<5 { #expect(abs(ob[i] - ref[i]) < 1e-6) }
    }

    @Test func trainingGeluPairEqualsTheReferencePairExactly() {
        // The forward that saves gelu'(x) over x, and the backward from it, give bitwise the
        // same output and input gradient (plain and accumulating) as the reference pair.
        var rng = RNG(seed: 15)
        let n = 37
        let x = randomBuffer(n, &rng, scale: 3), upstream = randomBuffer(n, &rng)
        let outRef = FloatBuffer(count: n), gradRef = randomBuffer(n, &rng)
        let out = FloatBuffer(count: n), grad = gradRef.copy(), saved = x.copy()
        geluForward(out: outRef.ptr, inp: x.ptr, n: n)
        geluBackward(dinp: gradRef.ptr, inp: x.ptr, dout: upstream.ptr, n: n)
        geluForwardSavingDerivative(out: out.ptr, inp: saved.ptr, n: n)
        geluBackward(dinp: grad.ptr, derivative: saved.ptr, dout: upstream.ptr, n: n)
        #expect(out.array == outRef.array)
        #expect(grad.array == gradRef.array)
        let plainRef = FloatBuffer(count: n), plain = FloatBuffer(count: n)
        geluBackward(dinp: plainRef.ptr, inp: x.ptr, dout: upstream.ptr, n: n, accumulate: false)
        geluBackward(dinp: plain.ptr, derivative: saved.ptr, dout: upstream.ptr, n: n, accumulate: false)
        #expect(plain.array == plainRef.array)
    }

    @Test func embeddingAndDropoutGradientsMatchFiniteDifferences() {
        var rng = RNG(seed: 6)
        let B = 2, T = 3, C = 4, V = 5
        let tokens: [Int32] = [1, 4, 1, 0, 2, 4]
        let wte = randomBuffer(V * C, &rng), wpe = randomBuffer(T * C, &rng)
        let out = FloatBuffer(count: B * T * C), upstream = randomBuffer(B * T * C, &rng)
        func loss() -> Double {
            tokens.withUnsafeBufferPointer { embeddingForward(out: out.ptr, tokens: $0.baseAddress!, wte: wte.ptr, wpe: wpe.ptr, B: B, T: T, C: C) }
            return weightedSum(out.ptr, upstream)
        }
        let dwte = FloatBuffer(count: V * C), dwpe = FloatBuffer(count: T * C)
        tokens.withUnsafeBufferPointer { embeddingBackward(dwte: dwte.ptr, dwpe: dwpe.ptr, dout: upstream.ptr, tokens: $0.baseAddress!, B: B, T: T, C: C) }
        let e1 = gradientError(x: wte.ptr, n: V * C, analytic: dwte.array, loss: loss)
        let e2 = gradientError(x: wpe.ptr, n: T * C, analytic: dwpe.array, loss: loss)
        #expect(e1 < 1e-3 && e2 < 1e-3)

        // Dropout with a fixed mask is linear; its backward applies the same mask.
        let n = 200, p: Float = 0.25
        let x = randomBuffer(n, &rng), mask = FloatBuffer(count: n), y = FloatBuffer(count: n)
        var drng = RNG(seed: 9)
        dropoutForward(out: y.ptr, mask: mask.ptr, inp: x.ptr, n: n, p: p, rng: &drng)
        let dropped = (0..<n).filter { mask[$0] == 0 }.count
        #expect(dropped > 25 && dropped < 75)                 // ≈ 50 expected
        for i in 0..<n { #expect(mask[i] == 0 || abs(mask[i] - 1 / (1 - p)) < 1e-6) }
        let dx = FloatBuffer(count: n), up = randomBuffer(n, &rng)
        dropoutBackward(dinp: dx.ptr, mask: mask.ptr, dout: up.ptr, n: n)
        for i in 0..<n { #expect(dx[i] == mask[i] * up[i]) }
    }

    @Test func tokenLogProbsAndEntropyGradientsMatchFiniteDifferences() {
        var rng = RNG(seed: 7)
        let N = 4, V = 7
        let logits = randomBuffer(N * V, &rng, scale: 2)
        let targets: [Int32] = [3, 0, 6, 2]
        let rowMask = FloatBuffer([1, 1, 0, 1])
        let a = randomBuffer(N, &rng), bw = randomBuffer(N, &rng)
        let logp = FloatBuffer(count: N), ent = FloatBuffer(count: N), lse = FloatBuffer(count: N)
        func loss() -> Double {
            targets.withUnsafeBufferPointer {
                tokenLogProbsForward(logp: logp.ptr, entropy: ent.ptr, lse: lse.ptr, logits: logits.ptr, targets: $0.baseAddress!,
                                     rowMask: rowMask.ptr, N: N, V: V)
            }
            return weightedSum(logp.ptr, a) + weightedSum(ent.ptr, bw)
        }
        _ = loss()
        // Brute-force log-softmax check.
        for n in 0..<N where rowMask[n] != 0 {
            let z = (0..<V).map { Double(logits[n * V + $0]) }
            let l = log(z.map { exp($0) }.reduce(0, +))
            #expect(abs(Double(logp[n]) - (z[Int(targets[n])] - l)) < 1e-5)
            let h = -z.map { exp($0 - l) * ($0 - l) }.reduce(0, +)
            #expect(abs(Double(ent[n]) - h) < 1e-5)
        }
        let da = FloatBuffer(count: N), db = FloatBuffer(count: N)
        for n in 0..<N { da[n] = a[n] * rowMask[n]; db[n] = bw[n] * rowMask[n] }
        let dlogits = FloatBuffer(count: N * V)
        targets.withUnsafeBufferPointer {
            tokenLogProbsBackward(dlogits: dlogits.ptr, dlogp: da.ptr, dentropy: db.ptr, entropy: ent.ptr, logits: logits.ptr,
                                  lse: lse.ptr, targets: $0.baseAddress!, N: N, V: V)
        }
        let e = gradientError(x: logits.ptr, n: N * V, analytic: dlogits.array, eps: 1e-3, loss: loss)
        print("token logp/entropy max rel err: \(e)")
        #expect(e < 1e-2)
    }

    @Test func logSigmoidIsStable() {
        #expect(abs(logSigmoid(0) - log(0.5)) < 1e-12)
        #expect(abs(logSigmoid(-800) - (-800)) < 1e-9)
        #expect(logSigmoid(800) == 0)
        #expect(abs(sigmoid(2) - 1 / (1 + exp(-2.0))) < 1e-15)
    }
}

#if canImport(Glibc)
import Glibc
#endif
