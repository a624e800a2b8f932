// BestOfNStage.swift — the best-of-n stage: sample N responses per evaluation prompt from
// the base policy once, score them with gold (all components) and with each proxy, and turn
// the scores into over-optimization curves with the unbiased estimator (BestOfNEstimator.swift).
//
// Orchestration only: the math is in BestOfNEstimator.swift. Two steps, so that the samples
// (the expensive part) are shared by every proxy of a run and can be cached:
//
//     let samples = try sampleBestOfN(world:policy:config:rng:log:)      // BestOfNSamples
//     let curves  = try evaluateBestOfN(proxy:samples:world:config:log:) // BestOfNCurves, per proxy
//
// Results go to `/bon/<variant>/` (written by the caller through `BestOfNCurves.write(to:)`).

import Foundation
import OverOptEngine
import OverOptHDF5

// MARK: - Config

/// Settings of the best-of-n stage. Every key is optional in TOML; defaults below.
public struct BestOfNConfig: ConfigSection, Equatable {
    /// `prompts`: how many evaluation prompts (drawn without replacement from `prompt_split`;
    /// all of the split if it has fewer). Default 64: the sem over prompts is then an eighth
    /// of the per-prompt spread.
    public var prompts = 64
    /// `prompt_split`: where the evaluation prompts come from. Default `heldOut` (the paper
    /// evaluates best-of-n on held-out prompts).
    public var promptSplit = PromptSplit.heldOut
    /// `samples_per_prompt`: N. The paper uses 405 (KL up to 5.0 nats). Default 256: KL_256 =
    /// 4.55 nats covers 90% of the paper's KL range for 63% of the samples; 128 × 256 =
    /// 32 768 samples take about 25 s to sample and 11 s to score per proxy with the small
    /// base model (90 s and 75 s with the large one) on two busy cores.
    public var samplesPerPrompt = 256
    /// `temperature` of the base policy's samples. Default 1.0: the samples then come from the
    /// base policy itself, so KL_n is measured against the same π_ref as PPO's KL and the two
    /// are comparable. The paper uses 0.7; best-of-n over-optimization needs diverse samples (a
    /// clear turn-over only at 1.5 in a prototype world; docs/world.md, "Design lessons") — set 1.5 to study that,
    /// knowing that KL_n is then relative to the tempered policy.
    public var temperature = 1.0
    /// `top_p` (nucleus) of the samples; 1 = off (default, so samples are the policy's own).
    public var topP = 1.0
    /// `max_n`: largest n on the curve grid; absent = N (default).
    public var maxN: Int? = nil
    /// `grid_dense_up_to`: every n up to this is on the grid (default 16).
    public var gridDenseUpTo = 16
    /// `grid_per_doubling`: grid points per doubling of n above that (default 4).
    public var gridPerDoubling = 4
    /// `save_samples`: also store every sample's proxy and gold score (prompts × N) so users
    /// can recompute anything. Default false.
    public var saveSamples = false
    /// `batch_size`: rows decoded together by the sampler (default 256; the KV cache is small).
    /// Part of the samples' identity: a row's random stream depends on its place in its batch.
    public var batchSize = 256
    /// `score_batch_size`: sequences per proxy forward pass (default 32: the fastest of 16–128
    /// measured for the large model on two cores, and its activations stay ~80 MB).
    public var scoreBatchSize = 32
    /// `select`: selection rules besides the plain argmax, each with its own curves under
    /// `/bon/<variant>/select/<rule>/` (SelectionRules.swift): `soft`, `caution`, `lcb`.
    /// Absent = none (default). `lcb` is skipped, with a log line, for single-model proxies.
    public var select: [SelectionRule]? = nil
    /// `soft_temperature`: λ of soft best-of-n, in units of the proxy's standard deviation σ
    /// over the samples: keep ∝ exp(r/(λσ)) (absent = 1).
    public var softTemperature: Double? = nil
    /// `caution_coef`: c of caution, the argmax of r − cσ·e with e the prediction error
    /// relative to its mean on base samples (absent = 1).
    public var cautionCoef: Double? = nil
    /// `lcb_k`: k of the ensemble lower confidence bound mean − k·std (absent = 1).
    public var lcbK: Double? = nil

    /// The strengths used when their keys are absent.
    public static let defaultSoftTemperature = 1.0, defaultCautionCoef = 1.0, defaultLCBK = 1.0

    /// The strength of `rule` (its key's value, or the default).
    public func strength(of rule: SelectionRule) -> Double {
        switch rule {
        case .soft: softTemperature ?? Self.defaultSoftTemperature
        case .caution: cautionCoef ?? Self.defaultCautionCoef
        case .lcb: lcbK ?? Self.defaultLCBK
        }
    }

    public init() {}

    public static let section = "bon"

    public static var schema: [ConfigKey<BestOfNConfig>] { [
        .key("prompts", \.prompts, "evaluation prompts", .atLeast(1)),
        .key("prompt_split", \.promptSplit, "where the evaluation prompts come from"),
        .key("samples_per_prompt", \.samplesPerPrompt, "N (the paper: 405); KL reaches log N − (N−1)/N = 4.55 nats", .atLeast(1)),
        .key("temperature", \.temperature, "sampling temperature of the base policy (best-of-n needs diverse samples)", .above(0)),
        .key("top_p", \.topP, "nucleus sampling", .openClosed(0, 1)),
        .key("max_n", \.maxN, "largest n on the curve", .atLeast(1),
             .check("≤ samples_per_prompt", detail: { "\($0.samplesPerPrompt)" }) { $1 <= $0.samplesPerPrompt }, unset: "N"),
        .key("grid_dense_up_to", \.gridDenseUpTo, "every n up to this is on the curve's grid", .atLeast(1)),
        .key("grid_per_doubling", \.gridPerDoubling, "grid points per doubling of n above that", .atLeast(1)),
        .key("save_samples", \.saveSamples, "store per-sample proxy and gold scores"),
        .key("batch_size", \.batchSize, "rows decoded together by the sampler (part of the samples' identity)", .atLeast(1)),
        .key("score_batch_size", \.scoreBatchSize, "sequences per proxy forward pass", .atLeast(1)),
        .key("select", \.select, "selection rules besides the argmax, each with curves under `select/<rule>/` (\"Mitigations\")",
             .distinct, unset: "unset (none)"),
        .key("soft_temperature", \.softTemperature, "λ of soft best-of-n, keep ∝ exp(r/(λσ)), σ the proxy's std over the samples",
             .above(0), .check("set only with \"soft\" in select") { r, _ in r.select?.contains(.soft) == true }, unset: "`1`"),
        .key("caution_coef", \.cautionCoef, "c of caution, argmax of r − cσ·(relative prediction error)",
             .atLeast(0), .check("set only with \"caution\" in select") { r, _ in r.select?.contains(.caution) == true }, unset: "`1`"),
        .key("lcb_k", \.lcbK, "k of the ensemble lower confidence bound mean − k·std",
             .atLeast(0), .check("set only with \"lcb\" in select") { r, _ in r.select?.contains(.lcb) == true }, unset: "`1`"),
    ] }

    /// The n at which curves are evaluated (see `bestOfNGrid`), up to `max_n` (default N).
    public var grid: [Int] {
        bestOfNGrid(N: maxN ?? samplesPerPrompt, denseUpTo: gridDenseUpTo, perDoubling: gridPerDoubling)
    }

    /// The settings the samples depend on (with the policy, the world and the RNG), for a
    /// cache key: `max_n`, the grid, `save_samples` and `score_batch_size` only affect curves.
    public var samplesKey: String {
        "prompts=\(prompts) prompt_split=\(promptSplit.rawValue) samples_per_prompt=\(samplesPerPrompt) "
            + "temperature=\(temperature) top_p=\(topP) batch_size=\(batchSize)"
    }

    /// The sampler settings for the base policy in `world`.
    public func sampling(world: World) -> SamplingConfig {
        SamplingConfig(temperature: Float(temperature), topP: Float(topP),
                       maxNewTokens: world.config.maxResponseTokens, eosToken: Tokenizer.eos)
    }
}

/// Errors of the best-of-n stage.
public enum BestOfNError: Error, CustomStringConvertible, Equatable {
    case nonFiniteScores(proxy: String, count: Int)
    case badSamples(String)

    public var description: String {
        switch self {
        case .nonFiniteScores(let p, let k): "proxy '\(p)' gave \(k) non-finite scores on the best-of-n samples"
        case .badSamples(let m): "best-of-n samples: \(m)"
        }
    }
}

// MARK: - Samples

/// N responses per evaluation prompt from the base policy with their gold scores: shared by
/// every proxy of a run. Arrays over samples are prompt-major: sample j of prompt p is at
/// p · N + j.
public struct BestOfNSamples: Sendable, Equatable {
    /// `Prompt.id` of each evaluation prompt (index into `World.allPrompts`).
    public var promptIDs: [Int]
    /// N.
    public var samplesPerPrompt: Int
    /// Generated tokens (EOS included when emitted), prompts × N.
    public var responses: [[Int32]]
    /// Gold total of each sample.
    public var gold: [Double]
    /// Gold components, [component][sample], in `GoldScore.componentNames` order.
    public var goldComponents: [[Double]]
    /// Sampling settings, for the record.
    public var temperature: Double
    public var topP: Double

    public init(promptIDs: [Int], samplesPerPrompt: Int, responses: [[Int32]], gold: [Double],
                goldComponents: [[Double]], temperature: Double, topP: Double) {
        self.promptIDs = promptIDs; self.samplesPerPrompt = samplesPerPrompt; self.responses = responses
        self.gold = gold; self.goldComponents = goldComponents; self.temperature = temperature; self.topP = topP
    }

    /// Number of evaluation prompts.
    public var promptCount: Int { promptIDs.count }

    /// The prompt of every sample (prompts × N), for scoring.
    public func samplePrompts(in world: World) -> [Prompt] {
        promptIDs.flatMap { id in repeatElement(world.allPrompts[id], count: samplesPerPrompt) }
    }

    /// Indices of prompt p's samples.
    public func range(ofPrompt p: Int) -> Range<Int> { (p * samplesPerPrompt)..<((p + 1) * samplesPerPrompt) }

    /// Writes `prompt_ids`, `responses` (padded with 0, samples × longest), `response_lengths`,
    /// `gold`, `gold_<component>` (all prompts × N) and attributes.
    public func write(to group: H5Group) throws {
        let P = promptCount, N = samplesPerPrompt
        let width = max(1, responses.map(\.count).max() ?? 1)
        var tokens = [Int64](repeating: 0, count: responses.count * width)
        for (i, r) in responses.enumerated() { for (t, x) in r.enumerated() { tokens[i * width + t] = Int64(x) } }
        try group.write("prompt_ids", promptIDs.map(Int64.init))
        try group.write("responses", tokens, shape: [responses.count, width], compress: true)
        try group.write("response_lengths", responses.map { Int64($0.count) }, shape: [P, N])
        try group.write("gold", gold, shape: [P, N])
        for (name, values) in zip(GoldScore.componentNames, goldComponents) {
            try group.write("gold_\(name)", values, shape: [P, N])
        }
        try group.setAttribute("samples_per_prompt", Int64(N))
        try group.setAttribute("prompts", Int64(P))
        try group.setAttribute("temperature", temperature)
        try group.setAttribute("top_p", topP)
    }

    /// Reads what `write(to:)` wrote, checking every shape and length, and the prompt ids and
    /// tokens against `world` (when given).
    public static func read(from group: H5Group, world: World? = nil) throws -> BestOfNSamples {
        let ids = try group.integers("prompt_ids", in: 0...Int64((world?.allPrompts.count ?? Int(Int32.max)) - 1)).map(Int.init)
        let N = Int(clamping: try group.intAttribute("samples_per_prompt"))
        let (product, overflow) = ids.count.multipliedReportingOverflow(by: N)
        guard N >= 1, !overflow else { throw BestOfNError.badSamples("samples_per_prompt = \(N) for \(ids.count) prompts") }
        let (tokens, width) = try group.integerMatrix("responses", rows: product, in: 0...Int64((world?.vocabSize ?? Int(Int32.max)) - 1))
        let lengths = try group.integers("response_lengths", count: product, in: 0...Int64(width)).map(Int.init)
        let responses = lengths.enumerated().map { i, len in tokens[(i * width)..<(i * width + len)].map { Int32($0) } }
        let gold = try group.doubles("gold", count: product)
        let components = try GoldScore.componentNames.map { try group.doubles("gold_\($0)", count: product) }
        return BestOfNSamples(promptIDs: ids, samplesPerPrompt: N, responses: responses, gold: gold,
                              goldComponents: components,
                              temperature: try group.doubleAttribute("temperature"),
                              topP: try group.doubleAttribute("top_p"))
    }
}

/// Draws the evaluation prompts and N samples per prompt from `policy` (a language model),
/// in batches of `batch_size` rows, and scores them with gold. Reproducible for a given RNG
/// and config. Logs sampling throughput.
public func sampleBestOfN(world: World, policy: Transformer, config: BestOfNConfig, rng: inout RNG,
                          log: (String) -> Void = { _ in }) throws -> BestOfNSamples {
    try config.validate()
    var promptRNG = rng.split("bon-prompts"), sampleRNG = rng.split("bon-samples")
    _ = rng.next()
    var pool = world.prompts(config.promptSplit)
    promptRNG.shuffle(&pool)
    let prompts = pool.prefix(config.prompts).sorted { $0.id < $1.id }
    if prompts.count < config.prompts {
        log("best-of-n: split \(config.promptSplit.rawValue) has only \(prompts.count) prompts (asked \(config.prompts)); using all")
    }
    let N = config.samplesPerPrompt, total = prompts.count * N
    let contexts = prompts.map { world.context(for: $0) }
    let sampling = config.sampling(world: world)
    let sampler = Sampler(model: policy)

    var responses: [[Int32]] = []
    responses.reserveCapacity(total)
    let t0 = monotonicSeconds()
    var nextReport = 0.1
    var start = 0
    while start < total {
        let rows = start..<min(total, start + config.batchSize)
        let batch = rows.map { contexts[$0 / N] }
        responses += sampler.generate(prompts: batch, config: sampling, rng: &sampleRNG)
        start = rows.upperBound
        if Double(start) / Double(total) >= nextReport || start == total {
            let dt = monotonicSeconds() - t0
            log(String(format: "best-of-n sampling: %d/%d samples (%.0f samples/s)", start, total, Double(start) / max(dt, 1e-9))
                + etaSuffix(elapsed: dt, done: Double(start), total: Double(total)))
            nextReport += 0.1
        }
    }
    let dt = monotonicSeconds() - t0
    let tokens = responses.reduce(0) { $0 + $1.count }

    var gold = [Double](repeating: 0, count: total)
    var components = [[Double]](repeating: [Double](repeating: 0, count: total), count: GoldScore.componentNames.count)
    for i in 0..<total {
        let g = world.gold(prompt: prompts[i / N], response: responses[i])
        gold[i] = g.total
        for (k, c) in g.components.enumerated() { components[k][i] = c }
    }
    log(String(format: "best-of-n sampling: %d prompts × %d = %d samples in %.1f s (%.0f samples/s, %.0f tokens/s, mean length %.1f), T = %.2f, top_p = %.2f",
               prompts.count, N, total, dt, Double(total) / max(dt, 1e-9), Double(tokens) / max(dt, 1e-9),
               Double(tokens) / Double(max(total, 1)), config.temperature, config.topP))
    return BestOfNSamples(promptIDs: prompts.map(\.id), samplesPerPrompt: N, responses: responses, gold: gold,
                          goldComponents: components, temperature: config.temperature, topP: config.topP)
}

// MARK: - Curves

/// Best-of-n curves of one proxy: expected proxy and gold score of the best-of-n sample
/// selected by the proxy, on a grid of n, averaged over prompts, with the oracle (selected by
/// gold) and the gold components. Raw values; `*Shifted` subtract the n = 1 value as in the
/// paper's figures.
public struct BestOfNCurves: Sendable, Equatable {
    /// The proxy's variant name.
    public var name: String
    public var n: [Int]
    /// KL_n = log n − (n−1)/n, nats.
    public var kl: [Double]
    public var proxy: [Double]
    public var gold: [Double]
    public var proxySEM: [Double]
    public var goldSEM: [Double]
    /// Gold of best-of-n selected by gold itself (upper bound of `gold`).
    public var goldOracle: [Double]
    public var goldOracleSEM: [Double]
    /// Gold components of the proxy-selected sample, [component][n index], `GoldScore.componentNames` order.
    public var goldComponents: [[Double]]
    public var samplesPerPrompt: Int
    public var prompts: Int
    public var temperature: Double
    public var topP: Double
    /// Every sample's proxy and gold score (prompts × N), when `save_samples`.
    public var sampleProxy: [Double]?
    public var sampleGold: [Double]?
    /// Example responses selected by the proxy at a few n (written to `picks/`; Samples.swift).
    public var picks: BestOfNPicks? = nil
    /// Curves of the other selection rules of `bon.select` (written to `select/<rule>/`).
    public var selections: [BestOfNSelection] = []

    /// `proxy` minus its n = 1 value.
    public var proxyShifted: [Double] { proxy.map { $0 - proxy[0] } }
    /// `gold` minus its n = 1 value.
    public var goldShifted: [Double] { gold.map { $0 - gold[0] } }
    /// `goldOracle` minus the n = 1 gold value (the same start as `gold`).
    public var goldOracleShifted: [Double] { goldOracle.map { $0 - goldOracle[0] } }

    /// Computes the curves from every sample's proxy score (prompts × N, prompt-major) with
    /// the unbiased estimator, per prompt, then mean and sem over prompts.
    public init(name: String, proxyScores: [Double], samples: BestOfNSamples, grid: [Int], keepSamples: Bool = false) {
        let weights = Self.rankWeights(proxyScores: proxyScores, samples: samples, grid: grid)
        let C = samples.goldComponents.count
        var perPrompt = [[[Double]]](repeating: [], count: 3 + C)
        for p in 0..<samples.promptCount {
            let r = samples.range(ofPrompt: p)
            let s = Array(proxyScores[r]), g = Array(samples.gold[r])
            let byProxy = BestOfNRanking(selectBy: s).expected(
                values: [s, g] + samples.goldComponents.map { Array($0[r]) }, rankWeights: weights)
            let oracle = BestOfNRanking(selectBy: g).expected(values: [g], rankWeights: weights)[0]
            perPrompt[0].append(byProxy[0]); perPrompt[1].append(byProxy[1]); perPrompt[2].append(oracle)
            for k in 0..<C { perPrompt[3 + k].append(byProxy[2 + k]) }
        }
        self.init(name: name, grid: grid, kl: grid.map(klBestOfN(n:)), perPrompt: perPrompt, samples: samples,
                  keptProxyScores: keepSamples ? proxyScores : nil)
    }

    /// Curves of a selection rule given, for each prompt p, the probability that each of its
    /// samples is selected at each n of `grid` (`selection(p).probabilities[n index][sample]`)
    /// and, for rules whose KL is not the analytic log n − (n−1)/n, its KL at each n
    /// (`selection(p).kl`; the curve's `kl` is then the mean over prompts). `proxy` and the
    /// gold series are Σ_i p_i v_i; the oracle is the plain one (selection by gold).
    public init(name: String, proxyScores: [Double], samples: BestOfNSamples, grid: [Int],
                selection: (Int) -> (probabilities: [[Double]], kl: [Double]?)) {
        let weights = Self.rankWeights(proxyScores: proxyScores, samples: samples, grid: grid)
        let P = samples.promptCount, N = samples.samplesPerPrompt, C = samples.goldComponents.count
        var perPrompt = [[[Double]]](repeating: [], count: 3 + C)
        var klPerPrompt: [[Double]] = []
        for p in 0..<P {
            let r = samples.range(ofPrompt: p)
            let values = [Array(proxyScores[r]), Array(samples.gold[r])] + samples.goldComponents.map { Array($0[r]) }
            let sel = selection(p)
            precondition(sel.probabilities.count == grid.count, "one selection distribution per n")
            var series = [[Double]](repeating: [Double](repeating: 0, count: grid.count), count: values.count)
            for (j, prob) in sel.probabilities.enumerated() {
                for (k, v) in values.enumerated() {
                    var e = 0.0
                    for i in 0..<N where prob[i] != 0 { e += prob[i] * v[i] }
                    series[k][j] = e
                }
            }
            let oracle = BestOfNRanking(selectBy: values[1]).expected(values: [values[1]], rankWeights: weights)[0]
            perPrompt[0].append(series[0]); perPrompt[1].append(series[1]); perPrompt[2].append(oracle)
            for k in 0..<C { perPrompt[3 + k].append(series[2 + k]) }
            if let kl = sel.kl { klPerPrompt.append(kl) }
        }
        let kl = klPerPrompt.count == P ? grid.indices.map { j in klPerPrompt.reduce(0) { $0 + $1[j] } / Double(P) } : grid.map(klBestOfN(n:))
        self.init(name: name, grid: grid, kl: kl, perPrompt: perPrompt, samples: samples, keptProxyScores: nil)
    }

    /// The unbiased estimator's rank weights at each n of `grid`, after checking the shapes.
    private static func rankWeights(proxyScores: [Double], samples: BestOfNSamples, grid: [Int]) -> [[Double]] {
        let P = samples.promptCount, N = samples.samplesPerPrompt
        precondition(proxyScores.count == P * N, "one proxy score per sample (\(P * N)), got \(proxyScores.count)")
        precondition(grid.first == 1 && grid.allSatisfy { $0 <= N }, "the grid must start at n = 1 and stay ≤ N = \(N)")
        return grid.map { bestOfNWeights(N: N, n: $0) }
    }

    /// The curves from per-prompt expectations `perPrompt[series][prompt][n index]` (series 0
    /// proxy, 1 gold, 2 the gold oracle, 3… gold components): mean and sem over prompts.
    private init(name: String, grid: [Int], kl: [Double], perPrompt: [[[Double]]], samples: BestOfNSamples,
                 keptProxyScores: [Double]?) {
        let stats = perPrompt.map { series in grid.indices.map { j in meanAndStandardError(series.map { $0[j] }) } }
        self.name = name
        n = grid
        self.kl = kl
        proxy = stats[0].map(\.mean); proxySEM = stats[0].map(\.sem)
        gold = stats[1].map(\.mean); goldSEM = stats[1].map(\.sem)
        goldOracle = stats[2].map(\.mean); goldOracleSEM = stats[2].map(\.sem)
        goldComponents = stats.dropFirst(3).map { $0.map(\.mean) }
        samplesPerPrompt = samples.samplesPerPrompt; prompts = samples.promptCount
        temperature = samples.temperature; topP = samples.topP
        sampleProxy = keptProxyScores
        sampleGold = keptProxyScores == nil ? nil : samples.gold
    }

    /// Writes `n` (int64), `kl`, `proxy`, `gold`, `proxy_sem`, `gold_sem`, `gold_oracle`,
    /// `gold_oracle_sem`, `gold_<component>`, `proxy_shifted`, `gold_shifted`,
    /// `gold_oracle_shifted`, optionally `sample_proxy` and `sample_gold` (prompts × N), the
    /// group `picks/` (when `picks` is set; layout in Samples.swift), and the attributes `samples_per_prompt`, `prompts`, `temperature`, `top_p`, `proxy`.
    public func write(to group: H5Group) throws {
        try group.write("n", n.map(Int64.init))
        try group.write("kl", kl)
        try group.write("proxy", proxy)
        try group.write("gold", gold)
        try group.write("proxy_sem", proxySEM)
        try group.write("gold_sem", goldSEM)
        try group.write("gold_oracle", goldOracle)
        try group.write("gold_oracle_sem", goldOracleSEM)
        for (name, curve) in zip(GoldScore.componentNames, goldComponents) { try group.write("gold_\(name)", curve) }
        try group.write("proxy_shifted", proxyShifted)
        try group.write("gold_shifted", goldShifted)
        try group.write("gold_oracle_shifted", goldOracleShifted)
        if let sp = sampleProxy { try group.write("sample_proxy", sp, shape: [prompts, samplesPerPrompt], compress: true) }
        if let sg = sampleGold { try group.write("sample_gold", sg, shape: [prompts, samplesPerPrompt], compress: true) }
        if let p = picks { try p.write(to: group.createGroup("picks")) }
        for sel in selections { try sel.write(to: group.createGroup("select/\(sel.rule.rawValue)")) }
        try group.setAttribute("samples_per_prompt", Int64(samplesPerPrompt))
        try group.setAttribute("prompts", Int64(prompts))
        try group.setAttribute("temperature", temperature)
        try group.setAttribute("top_p", topP)
        try group.setAttribute("proxy", name)
    }

    /// Reads what `write(to:)` wrote: every curve on the `n` grid (n ≥ 1), the per-sample
    /// scores prompts × N.
    public static func read(from group: H5Group) throws -> BestOfNCurves {
        var c = BestOfNCurves(empty: try group.stringAttribute("proxy"))
        c.n = try group.integers("n", in: 1...Int64(Int32.max)).map(Int.init)
        guard !c.n.isEmpty else { throw BestOfNError.badSamples("\(group.path)/n is empty") }
        let K = c.n.count
        c.kl = try group.doubles("kl", count: K)
        c.proxy = try group.doubles("proxy", count: K)
        c.gold = try group.doubles("gold", count: K)
        c.proxySEM = try group.doubles("proxy_sem", count: K)
        c.goldSEM = try group.doubles("gold_sem", count: K)
        c.goldOracle = try group.doubles("gold_oracle", count: K)
        c.goldOracleSEM = try group.doubles("gold_oracle_sem", count: K)
        c.goldComponents = try GoldScore.componentNames.map { try group.doubles("gold_\($0)", count: K) }
        c.samplesPerPrompt = Int(try group.intAttribute("samples_per_prompt"))
        c.prompts = Int(try group.intAttribute("prompts"))
        let (samples, overflow) = c.prompts.multipliedReportingOverflow(by: c.samplesPerPrompt)
        guard c.prompts >= 0, c.samplesPerPrompt >= 1, !overflow else {
            throw BestOfNError.badSamples("\(group.path): \(c.prompts) prompts × \(c.samplesPerPrompt) samples")
        }
        c.temperature = try group.doubleAttribute("temperature")
        c.topP = try group.doubleAttribute("top_p")
        if group.contains("sample_proxy") { c.sampleProxy = try group.readDoubles("sample_proxy").values }
        if group.contains("sample_gold") { c.sampleGold = try group.readDoubles("sample_gold").values }
        for (name, values) in [("sample_proxy", c.sampleProxy), ("sample_gold", c.sampleGold)] {
            if let values, values.count != samples {
                throw BestOfNError.badSamples("\(group.path)/\(name) holds \(values.count) values, expected \(c.prompts) × \(c.samplesPerPrompt)")
            }
        }
        if group.contains("picks") { c.picks = try BestOfNPicks.read(from: group.group("picks")) }
        if group.contains("select") {
            let g = try group.group("select")
            c.selections = try SelectionRule.allCases.filter { g.contains($0.rawValue) }.map { try BestOfNSelection.read(from: g.group($0.rawValue)) }
        }
        return c
    }

    private init(empty name: String) {
        self.name = name
        n = []; kl = []; proxy = []; gold = []; proxySEM = []; goldSEM = []; goldOracle = []; goldOracleSEM = []
        goldComponents = []; samplesPerPrompt = 0; prompts = 0; temperature = 0; topP = 0
    }

    /// One line per chosen n: "n=… KL=… proxy=… gold=…±… oracle=…" (shifted values).
    public func summary(at ns: [Int]? = nil) -> String {
        let want = ns ?? [1, 4, 16, 64, n.last!]
        return n.indices.filter { want.contains(n[$0]) }.map { j in
            name + String(format: " n=%d KL=%.2f proxy%+.3f gold%+.3f±%.3f oracle%+.3f", n[j], kl[j],
                   proxyShifted[j], goldShifted[j], goldSEM[j], goldOracleShifted[j])
        }.joined(separator: "\n")
    }
}

/// The curves of one selection rule of `bon.select` at its strength (SelectionRules.swift).
public struct BestOfNSelection: Sendable, Equatable {
    public var rule: SelectionRule
    /// λ (soft), c (caution) or k (lcb).
    public var strength: Double
    /// σ: the standard deviation of the proxy's scores over all best-of-n samples, the unit
    /// of λ and c (soft keeps ∝ exp(r/(λσ)), caution takes the argmax of r − cσ·e), so that
    /// one strength means the same for proxies of different scales. 1 for lcb (k is in units
    /// of the members' own spread).
    public var scoreScale = 1.0
    public var curves: BestOfNCurves
    /// Caution only: the prediction-error model's training loss at its start and end, mean
    /// over the two folds (nil otherwise).
    public var rndInitialLoss: Double? = nil, rndFinalLoss: Double? = nil

    public init(rule: SelectionRule, strength: Double, curves: BestOfNCurves) {
        self.rule = rule; self.strength = strength; self.curves = curves
    }

    /// The config key of the rule's strength.
    public var strengthKey: String {
        switch rule {
        case .soft: "soft_temperature"
        case .caution: "caution_coef"
        case .lcb: "lcb_k"
        }
    }

    /// How `kl` is computed.
    public var klMethod: String {
        rule == .soft ? "exact KL(selection || empirical base of the N samples), n drawn with replacement"
                      : "log n - (n - 1)/n (argmax of a fixed score of n i.i.d. samples)"
    }

    /// The plain curves' datasets (`BestOfNCurves.write`) and the attributes `rule`,
    /// `strength`, `strength_key`, `score_scale`, `kl_method` (and `rnd_initial_loss`,
    /// `rnd_final_loss`).
    public func write(to group: H5Group) throws {
        try curves.write(to: group)
        try group.setAttribute("rule", rule.rawValue)
        try group.setAttribute("strength", strength)
        try group.setAttribute("score_scale", scoreScale)
        try group.setAttribute("strength_key", strengthKey)
        try group.setAttribute("kl_method", klMethod)
        if let a = rndInitialLoss, let b = rndFinalLoss {
            try group.setAttribute("rnd_initial_loss", a)
            try group.setAttribute("rnd_final_loss", b)
        }
    }

    public static func read(from group: H5Group) throws -> BestOfNSelection {
        guard let rule = SelectionRule(rawValue: try group.stringAttribute("rule")) else {
            throw BestOfNError.badSamples("unknown selection rule in a result file")
        }
        var s = BestOfNSelection(rule: rule, strength: try group.doubleAttribute("strength"), curves: try BestOfNCurves.read(from: group))
        s.scoreScale = try group.doubleAttribute("score_scale")
        if group.hasAttribute("rnd_initial_loss") {
            s.rndInitialLoss = try group.doubleAttribute("rnd_initial_loss")
            s.rndFinalLoss = try group.doubleAttribute("rnd_final_loss")
        }
        return s
    }
}

/// Prediction errors of every sample for the caution rule, by cross-fitting: the samples are
/// split in two folds (by prompt parity; by sample parity with a single prompt), a predictor
/// is trained on the hidden states of one fold's samples and scores the other's, so that no
/// sample's error comes from a predictor that saw it (or, with several prompts, its prompt).
/// `states` are the proxy's last hidden states (samples × width). Deterministic for `rng`.
public func crossFittedPredictionErrors(states: [Float], width C: Int, samples: BestOfNSamples, settings: RNDSettings = RNDSettings(),
                                        rng: RNG) -> (errors: [Double], initialLoss: Double, finalLoss: Double) {
    let total = samples.promptCount * samples.samplesPerPrompt
    precondition(states.count == total * C, "one hidden state per sample")
    let fold: (Int) -> Int = samples.promptCount >= 2 ? { ($0 / samples.samplesPerPrompt) % 2 } : { $0 % 2 }
    var errors = [Double](repeating: 0, count: total)
    var initial = 0.0, final = 0.0
    for f in 0..<2 {
        let train = (0..<total).filter { fold($0) != f }, scored = (0..<total).filter { fold($0) == f }
        var trainStates = [Double](); trainStates.reserveCapacity(train.count * C)
        for i in train { for j in 0..<C { trainStates.append(Double(states[i * C + j])) } }
        var foldRNG = rng.split("fold-\(f)")
        let model = trainRND(states: trainStates, inputs: C, settings: settings, rng: &foldRNG)
        var x = [Double](); x.reserveCapacity(scored.count * C)
        for i in scored { for j in 0..<C { x.append(Double(states[i * C + j])) } }
        for (i, e) in zip(scored, model.relativeErrors(x)) { errors[i] = e }
        initial += model.initialLoss / 2; final += model.finalLoss / 2
    }
    return (errors, initial, final)
}

/// The curves of each rule of `config.select` from the samples' member scores ([member][sample])
/// and combined proxy scores; `hiddenStates` (the first member's last hidden states, samples ×
/// width) are needed for `caution`. `lcb` is skipped, with a log line, for a single model.
public func selectionCurves(proxyName: String, memberScores: [[Double]], proxyScores: [Double], hiddenStates: (() -> (states: [Float], width: Int))?,
                            samples: BestOfNSamples, config: BestOfNConfig, seed: UInt64,
                            log: (String) -> Void = { _ in }) -> [BestOfNSelection] {
    let grid = config.grid, N = samples.samplesPerPrompt
    let weights = grid.map { bestOfNWeights(N: N, n: $0) }
    /// Curves of the argmax of a fixed score per sample (analytic KL).
    func byScore(_ score: [Double]) -> BestOfNCurves {
        BestOfNCurves(name: proxyName, proxyScores: proxyScores, samples: samples, grid: grid) { p in
            let ranking = BestOfNRanking(selectBy: Array(score[samples.range(ofPrompt: p)]))
            return (weights.map { ranking.selectionProbabilities(rankWeights: $0) }, nil)
        }
    }
    // σ, the unit of λ and c: the population std of the proxy's scores over every sample.
    let variance = Statistics.variance(proxyScores, mean: Statistics.mean(proxyScores))
    let sigma = variance > 0 ? variance.squareRoot() : 1
    var out: [BestOfNSelection] = []
    for rule in config.select ?? [] {
        let strength = config.strength(of: rule)
        let t0 = monotonicSeconds()
        var sel: BestOfNSelection
        switch rule {
        case .soft:
            let curves = BestOfNCurves(name: proxyName, proxyScores: proxyScores, samples: samples, grid: grid) { p in
                let probs = softBestOfNProbabilities(scores: Array(proxyScores[samples.range(ofPrompt: p)]), ns: grid,
                                                     temperature: strength * sigma)
                return (probs, probs.map(klToEmpiricalBase))
            }
            sel = BestOfNSelection(rule: rule, strength: strength, curves: curves)
            sel.scoreScale = sigma
        case .lcb:
            guard memberScores.count >= 2 else {
                log("best-of-n '\(proxyName)': select \"lcb\" skipped (one model; the lower confidence bound needs an ensemble)")
                continue
            }
            sel = BestOfNSelection(rule: rule, strength: strength, curves: byScore(lowerConfidenceBound(memberScores: memberScores, k: strength)))
        case .caution:
            guard let (states, width) = hiddenStates?() else { continue }
            let rng = RNG(seed: RNG.stableHash("bon-caution|\(seed)|\(proxyName)"))
            let fit = crossFittedPredictionErrors(states: states, width: width, samples: samples, rng: rng)
            sel = BestOfNSelection(rule: rule, strength: strength,
                                   curves: byScore(cautiousScores(proxy: proxyScores, error: fit.errors, coef: strength * sigma)))
            sel.scoreScale = sigma
            sel.rndInitialLoss = fit.initialLoss; sel.rndFinalLoss = fit.finalLoss
            log(String(format: "best-of-n '%@' caution: prediction-error model loss %.4f → %.4f (mean of two folds)",
                       proxyName, fit.initialLoss, fit.finalLoss))
        }
        log(String(format: "best-of-n '%@' select %@ (%@ = %g, proxy std σ = %.3f) in %.1f s", proxyName, rule.rawValue, sel.strengthKey,
                   strength, sel.scoreScale, monotonicSeconds() - t0))
        log(sel.curves.summary().split(separator: "\n").map { "  \(rule.rawValue): " + $0 }.joined(separator: "\n"))
        out.append(sel)
    }
    return out
}

/// Scores every sample with `proxy` (batched forward passes, ensemble members combined by the
/// proxy's combiner) and computes its best-of-n curves on `config.grid`, and those of the
/// selection rules of `bon.select` (seeded by `seed`). Logs scoring throughput. Throws if the
/// proxy gives NaN or infinite scores.
public func evaluateBestOfN(proxy: ProxyRewardModel, samples: BestOfNSamples, world: World, config: BestOfNConfig, seed: UInt64 = 0,
                            log: (String) -> Void = { _ in }) throws -> BestOfNCurves {
    try config.validate()
    guard samples.samplesPerPrompt == config.samplesPerPrompt else {
        throw BestOfNError.badSamples("have N = \(samples.samplesPerPrompt), config asks samples_per_prompt = \(config.samplesPerPrompt)")
    }
    let t0 = monotonicSeconds()
    let samplePrompts = samples.samplePrompts(in: world)
    let memberScores = proxy.memberScores(world: world, prompts: samplePrompts, responses: samples.responses,
                                          batchSize: config.scoreBatchSize)
    let scores = proxy.combined(memberScores)
    let dt = monotonicSeconds() - t0
    let bad = scores.filter { !$0.isFinite }.count
    if bad > 0 { throw BestOfNError.nonFiniteScores(proxy: proxy.name, count: bad) }
    log("best-of-n scoring '\(proxy.name)': " + String(format: "%d samples × %d member(s) in %.1f s (%.0f samples/s)",
               scores.count, proxy.members.count, dt, Double(scores.count) / max(dt, 1e-9)))
    var curves = BestOfNCurves(name: proxy.name, proxyScores: scores, samples: samples, grid: config.grid,
                               keepSamples: config.saveSamples)
    curves.picks = BestOfNPicks(proxyScores: scores, samples: samples, world: world)
    log(curves.summary())
    if !(config.select ?? []).isEmpty {
        let states = {
            let sequences = zip(samplePrompts, samples.responses).map { world.trainingSequence(prompt: $0, response: $1) }
            return (proxy.members[0].lastTokenStates(sequences, chunkSize: config.scoreBatchSize), proxy.members[0].config.width)
        }
        curves.selections = selectionCurves(proxyName: proxy.name, memberScores: memberScores, proxyScores: scores, hiddenStates: states,
                                            samples: samples, config: config, seed: seed, log: log)
    }
    return curves
}
