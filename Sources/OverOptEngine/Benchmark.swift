// Benchmark.swift — the engine's speed measurements behind `overopt bench`.
//
// The workloads of bench/torch_reference.py, (a) and (b), on the `large` preset, and two
// measurements of this machine's matrix-product speed, (c) and (d):
//   (a) a training step: forward + LM loss + backward + AdamW, batch 64 × 64 tokens, run
//       as pretraining runs it: the batch's two halves at once on two replicas
//       (DataParallel.swift); also timed as one pass, each product split over the threads;
//   (b) batched KV-cache sampling: 256 sequences, 16-token prompt, 48 new tokens;
//   (c) OpenBLAS sgemm GFLOP/s at the model's matrix shapes (the machine's ceiling for
//       OpenBLAS);
//   (d) the decoder's matrix products at one decode group's 16 rows, on one thread: on
//       weights packed once (PackedLinear) against OpenBLAS, which packs on every call.
// FLOPs per trained token use the reference's formula: 6·N_matmul + 6·L·T·C, where
// N_matmul counts the weights of every matmul (QKV, attention projection, MLP, LM head).
import Foundation

/// Results of `runBenchmarks`, with the JSON keys of the PyTorch reference.
public struct BenchmarkResult: Codable, Sendable {
    public var impl = "overopt"
    /// The CPU, the OpenBLAS core and the engine's kernel variant (`ComputeEnvironment`).
    public var cpu = ComputeEnvironment.current.cpu
    public var blas_core = ComputeEnvironment.current.blasCore
    public var kernels = ComputeEnvironment.current.kernels
    public var threads: Int
    public var repeats: Int
    public var train_tokens_per_s: Double
    public var train_gflops: Double
    public var train_step_ms_median: Double
    /// The same step as one pass over the whole batch (each product split over the threads).
    public var train_one_pass_tokens_per_s: Double
    public var sample_tokens_per_s: Double
    public var sample_ms_median: Double
    public var sgemm_gflops: Double
    /// sgemm GFLOP/s per shape "MxNxK".
    public var sgemm_by_shape: [String: Double]
    /// (d) the decode step's products at 16 rows, one thread: packed weights, and OpenBLAS.
    public var decode_products_packed_gflops: Double
    public var decode_products_openblas_gflops: Double
}

/// FLOPs per trained token for a config at sequence length T (see the header).
public func trainingFlopsPerToken(_ c: TransformerConfig, T: Int) -> Double {
    let C = c.width, H = c.mlpRatio * C
    let nMatmul = c.layers * (3 * C * C + C * C + 2 * H * C) + c.vocabSize * C
    return Double(6 * nMatmul + 6 * c.layers * T * C)
}

/// Runs the three workloads `repeats` times after one warm-up and reports medians.
/// `progress` receives a line per finished measurement.
public func runBenchmarks(repeats: Int, threads: Int, progress: (String) -> Void = { _ in }) -> BenchmarkResult {
    setEngineThreads(threads)
    let cfg = TransformerConfig.large(vocabSize: 256)
    var rng = RNG(seed: 1234)

    // (a) training step
    let B = 64, T = 64
    let model = Transformer(config: cfg)
    model.initialize(rng: &rng)
    let opt = AdamW(model: model, config: AdamWConfig(learningRate: 1e-4))
    let tokens = (0..<(B * T)).map { _ in Int32(rng.int(below: cfg.vocabSize)) }
    let batch = TokenBatch(B: B, T: T, tokens: tokens, lengths: [Int](repeating: T, count: B))
    var mask = [Float](repeating: 1, count: B * T)
    for b in 0..<B { mask[b * T + T - 1] = 0 }
    let replicas = model.replicas
    let halves = [0, 1].map { h -> (batch: TokenBatch, mask: [Float]) in
        let rows = (h * B / 2)..<((h + 1) * B / 2), span = (rows.lowerBound * T)..<(rows.upperBound * T)
        return (TokenBatch(B: rows.count, T: T, tokens: Array(tokens[span]), lengths: [Int](repeating: T, count: rows.count)),
                Array(mask[span]))
    }
    func timeSteps(_ label: String, _ step: () -> Void) -> Double {
        var times: [Double] = []
        for r in 0...repeats {
            let t0 = monotonicSeconds()
            model.zeroGrad()
            step()
            opt.update(model)
            let dt = monotonicSeconds() - t0
            if r > 0 { times.append(dt); progress(String(format: "%@ %d/%d: %.1f ms", label, r, repeats, dt * 1000)) }
        }
        return Statistics.median(times)
    }
    let stepMed = timeSteps("train step") { model.languageModelLoss(parts: halves, replicas: replicas, rng: &rng) }
    let onePassMed = timeSteps("train step, one pass") { model.languageModelLoss(batch, mask: mask, backward: true, rng: &rng) }
    let trainTps = Double(B * T) / stepMed

    // (b) sampling
    let S = 256, P = 16, newTokens = 48
    let sampler = Sampler(model: model)
    let prompts = (0..<S).map { _ in (0..<P).map { _ in Int32(rng.int(below: cfg.vocabSize)) } }
    let scfg = SamplingConfig(temperature: 1, maxNewTokens: newTokens)
    var sampleTimes: [Double] = []
    for r in 0...repeats {
        let t0 = monotonicSeconds()
        _ = sampler.generate(prompts: prompts, config: scfg, rng: &rng)
        let dt = monotonicSeconds() - t0
        if r > 0 { sampleTimes.append(dt); progress(String(format: "sampling %d/%d: %.1f ms", r, repeats, dt * 1000)) }
    }
    let sampleMed = Statistics.median(sampleTimes)

    /// Median seconds per call of `body` over `repeats` timings of `reps` calls each, after one warm-up.
    func secondsPerCall(reps: Int, _ body: () -> Void) -> Double {
        var times: [Double] = []
        for r in 0...repeats {
            let t0 = monotonicSeconds()
            for _ in 0..<reps { body() }
            if r > 0 { times.append((monotonicSeconds() - t0) / Double(reps)) }
        }
        return Statistics.median(times)
    }

    // (c) sgemm at the model's shapes (forward matmuls of the training step).
    let C = cfg.width, H = cfg.mlpRatio * C, N = B * T
    let shapes = [(N, 3 * C, C), (N, C, C), (N, H, C), (N, C, H), (N, cfg.vocabSize, C)]
    var byShape: [String: Double] = [:]
    var totalFlops = 0.0, totalTime = 0.0
    for (M, Nn, K) in shapes {
        let a = FloatBuffer(count: M * K), w = FloatBuffer(count: Nn * K), c = FloatBuffer(count: M * Nn)
        for i in 0..<a.count { a[i] = rng.uniform() }
        for i in 0..<w.count { w[i] = rng.uniform() }
        let t = secondsPerCall(reps: 20) {
            gemm(transA: false, transB: true, M: M, N: Nn, K: K, alpha: 1, A: a.ptr, lda: K, B: w.ptr, ldb: K, beta: 0, C: c.ptr, ldc: Nn)
        }
        let flops = 2.0 * Double(M * Nn * K)
        byShape["\(M)x\(Nn)x\(K)"] = flops / t / 1e9
        totalFlops += flops; totalTime += t
    }
    progress("sgemm done")

    // (d) one decode group's step products (16 rows), one thread, every weight shape.
    let rows = 16
    var packedTime = 0.0, blasTime = 0.0, decodeFlops = 0.0
    setEngineThreads(1)   // (d) is measured on one thread
    for (Nn, K) in [(3 * C, C), (C, C), (H, C), (C, H), (cfg.vocabSize, C)] {
        let x = FloatBuffer(count: rows * K), w = FloatBuffer(count: Nn * K), b = FloatBuffer(count: Nn), y = FloatBuffer(count: rows * Nn)
        for i in 0..<x.count { x[i] = rng.uniform() }
        for i in 0..<w.count { w[i] = rng.uniform() }
        let packed = PackedLinear(weight: w.ptr, bias: b.ptr, C: K, OC: Nn)
        packedTime += secondsPerCall(reps: 400) { packed.forward(out: y.ptr, inp: x.ptr, N: rows) }
        blasTime += secondsPerCall(reps: 400) { linearForward(out: y.ptr, inp: x.ptr, weight: w.ptr, bias: b.ptr, N: rows, C: K, OC: Nn) }
        decodeFlops += 2.0 * Double(rows * Nn * K)
    }
    setEngineThreads(threads)
    progress("decode products done")
    return BenchmarkResult(threads: threads, repeats: repeats,
                           train_tokens_per_s: trainTps,
                           train_gflops: trainTps * trainingFlopsPerToken(cfg, T: T) / 1e9,
                           train_step_ms_median: stepMed * 1000,
                           train_one_pass_tokens_per_s: Double(B * T) / onePassMed,
                           sample_tokens_per_s: Double(S * newTokens) / sampleMed,
                           sample_ms_median: sampleMed * 1000,
                           sgemm_gflops: totalFlops / totalTime / 1e9,
                           sgemm_by_shape: byShape,
                           decode_products_packed_gflops: decodeFlops / packedTime / 1e9,
                           decode_products_openblas_gflops: decodeFlops / blasTime / 1e9)
}
