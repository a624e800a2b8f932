// MitigationTests.swift — best-of-n selection rules (soft, caution, lcb) against enumeration,
// the prediction-error model's gradients against finite differences, the rules end to end on
// a tiny model through HDF5; PPO's mitigations: the KL penalty's estimators against exact
// expectations, PAR against hand-computed values, the adaptive controller's horizon, config
// checks and determinism.

import Foundation
import Testing
import OverOptEngine
import OverOptHDF5
@testable import OverOpt

// MARK: - Reference implementations

/// Soft best-of-n over the empirical base by enumerating all N^n ordered draws with
/// replacement: the probability that each sample is kept.
private func enumeratedSoftBestOfN(scores: [Double], n: Int, lambda: Double) -> [Double] {
    let N = scores.count
    let u = scores.map { $0 / lambda }
    var p = [Double](repeating: 0, count: N)
    var draw = [Int](repeating: 0, count: n)
    let total = Int(pow(Double(N), Double(n)))
    for code in 0..<total {
        var c = code
        for k in 0..<n { draw[k] = c % N; c /= N }
        // Weights relative to the draw's own maximum (no underflow to 0/0).
        let m = draw.map { u[$0] }.max()!
        let z = draw.reduce(0) { $0 + exp(u[$1] - m) }
        for k in 0..<n { p[draw[k]] += exp(u[draw[k]] - m) / z / Double(total) }
    }
    return p
}

/// E[v of the argmax of `score` over a uniformly random n-subset] by enumerating subsets
/// (scores without ties).
private func enumeratedArgmax(score: [Double], v: [Double], n: Int) -> Double {
    let N = score.count
    var total = 0.0, count = 0
    for mask in 0..<(1 << N) where mask.nonzeroBitCount == n {
        let members = (0..<N).filter { mask & (1 << $0) != 0 }
        total += v[members.max { score[$0] < score[$1] }!]
        count += 1
    }
    return total / Double(count)
}

/// Synthetic best-of-n samples (no model): P prompts × N, random gold and components.
private func syntheticSamples(P: Int, N: Int, seed: UInt64) -> BestOfNSamples {
    var rng = RNG(seed: seed)
    let components = GoldScore.componentNames.map { _ in (0..<(P * N)).map { _ in Double(rng.normal()) } }
    let gold = (0..<(P * N)).map { i in components.reduce(0) { $0 + $1[i] } }
    return BestOfNSamples(promptIDs: Array(0..<P), samplesPerPrompt: N, responses: [[Int32]](repeating: [1], count: P * N),
                          gold: gold, goldComponents: components, temperature: 1, topP: 1)
}

@Suite struct SelectionRuleTests {
    // MARK: Soft best-of-n

    @Test func softBestOfNMatchesEnumerationOfAllDraws() {
        var rng = RNG(seed: 5)
        for (N, ns) in [(5, [1, 2, 3, 4]), (4, [1, 2, 5]), (3, [6])] {
            let base = (0..<N).map { _ in Double(rng.normal()) }
            // Ordinary, sharp (λ small: log-weights down to ≈ −100) and flat temperatures, and a
            // spread so wide that most weights underflow in double precision.
            for (scores, lambda) in [(base, 0.5), (base, 0.02), (base, 20.0), (base.map { $0 * 300 }, 0.3)] {
                let got = softBestOfNProbabilities(scores: scores, ns: ns, temperature: lambda)
                for (j, n) in ns.enumerated() {
                    let want = enumeratedSoftBestOfN(scores: scores, n: n, lambda: lambda)
                    for i in 0..<N {
                        #expect(abs(got[j][i] - want[i]) < 1e-10, "N \(N) n \(n) λ \(lambda) sample \(i): \(got[j][i]) vs \(want[i])")
                    }
                    #expect(abs(got[j].reduce(0, +) - 1) < 1e-10)
                    // Its KL is that of the enumerated distribution, never above log N.
                    #expect(abs(klToEmpiricalBase(got[j]) - klToEmpiricalBase(want)) < 1e-8)
                    #expect(klToEmpiricalBase(got[j]) <= log(Double(N)) + 1e-12)
                }
            }
        }
    }

    @Test func softBestOfNLimitsAreHardBestOfNAndTheBase() {
        let scores = [0.3, -1.2, 2.5, 0.9, 1.7, -0.4]
        let N = Double(scores.count), n = 3
        // λ → 0: best-of-n with replacement, P(rank k) = (k/N)^n − ((k−1)/N)^n.
        let sharp = softBestOfNProbabilities(scores: scores, ns: [n], temperature: 1e-4)[0]
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        for (rank, i) in order.enumerated() {
            let k = Double(rank + 1)
            #expect(abs(sharp[i] - (pow(k / N, 3) - pow((k - 1) / N, 3))) < 1e-9)
        }
        // λ → ∞: the base (uniform), KL 0.
        let flat = softBestOfNProbabilities(scores: scores, ns: [n], temperature: 1e6)[0]
        #expect(flat.allSatisfy { abs($0 - 1 / N) < 1e-6 })
        #expect(klToEmpiricalBase(flat) < 1e-9)
        // KL grows with n and falls with λ.
        let kl = { (n: Int, l: Double) in klToEmpiricalBase(softBestOfNProbabilities(scores: scores, ns: [n], temperature: l)[0]) }
        #expect(kl(2, 0.5) < kl(4, 0.5) && kl(4, 2) < kl(4, 0.5))
        // Uniform weights (equal scores): the base at every n.
        #expect(softBestOfNProbabilities(scores: [1, 1, 1, 1], ns: [3], temperature: 0.1)[0].allSatisfy { abs($0 - 0.25) < 1e-10 })
    }

    @Test func klToEmpiricalBaseIsTheKLToUniform() {
        #expect(klToEmpiricalBase([0.25, 0.25, 0.25, 0.25]) == 0)
        #expect(abs(klToEmpiricalBase([1, 0, 0, 0]) - log(4)) < 1e-15)
        let p = [0.5, 0.3, 0.2]
        #expect(abs(klToEmpiricalBase(p) - p.reduce(0) { $0 + $1 * log($1 * 3) }) < 1e-15)
    }

    // MARK: Deterministic rules

    @Test func lowerConfidenceBoundIsMeanMinusKStd() {
        let members: [[Double]] = [[1, 0, 2], [3, 0, 2]]
        let lcb = lowerConfidenceBound(memberScores: members, k: 1.5)
        #expect(lcb == [2 - 1.5 * 1, 0, 2])
        // k = 0 is the mean combiner.
        #expect(lowerConfidenceBound(memberScores: members, k: 0) == (0..<3).map { i in combineEnsemble(members.map { $0[i] }, combiner: .mean, uwoLambda: 0) })
        #expect(cautiousScores(proxy: [1, 2], error: [0.5, 3], coef: 2) == [0, -4])
    }

    @Test func ruleCurvesMatchEnumerationOfSubsets() {
        let P = 3, N = 8
        let samples = syntheticSamples(P: P, N: N, seed: 9)
        var rng = RNG(seed: 10)
        let proxy = (0..<(P * N)).map { i in samples.gold[i] + Double(rng.normal()) }
        let error = (0..<(P * N)).map { _ in Double(rng.uniform()) * 3 }
        let rule = cautiousScores(proxy: proxy, error: error, coef: 0.7)
        let grid = [1, 2, 3, 5, 8]
        let weights = grid.map { bestOfNWeights(N: N, n: $0) }
        let curves = BestOfNCurves(name: "x", proxyScores: proxy, samples: samples, grid: grid) { p in
            let ranking = BestOfNRanking(selectBy: Array(rule[samples.range(ofPrompt: p)]))
            return (weights.map { ranking.selectionProbabilities(rankWeights: $0) }, nil)
        }
        for (j, n) in grid.enumerated() {
            var gold = 0.0, prox = 0.0
            for p in 0..<P {
                let r = samples.range(ofPrompt: p)
                gold += enumeratedArgmax(score: Array(rule[r]), v: Array(samples.gold[r]), n: n) / Double(P)
                prox += enumeratedArgmax(score: Array(rule[r]), v: Array(proxy[r]), n: n) / Double(P)
            }
            #expect(abs(curves.gold[j] - gold) < 1e-12 && abs(curves.proxy[j] - prox) < 1e-12)
            #expect(curves.kl[j] == klBestOfN(n: n))
        }
        // Selecting by the proxy itself reproduces the plain curves bit for bit.
        let plain = BestOfNCurves(name: "x", proxyScores: proxy, samples: samples, grid: grid)
        let same = BestOfNCurves(name: "x", proxyScores: proxy, samples: samples, grid: grid) { p in
            let ranking = BestOfNRanking(selectBy: Array(proxy[samples.range(ofPrompt: p)]))
            return (weights.map { ranking.selectionProbabilities(rankWeights: $0) }, nil)
        }
        #expect(same == plain)
    }

    @Test func softCurvesAverageThePerPromptKL() {
        let samples = syntheticSamples(P: 2, N: 5, seed: 3)
        let proxy = samples.gold.map { $0 * 0.5 }
        var config = BestOfNConfig()
        config.samplesPerPrompt = 5; config.gridDenseUpTo = 5
        config.select = [.soft]; config.softTemperature = 0.4
        let sel = selectionCurves(proxyName: "x", memberScores: [proxy], proxyScores: proxy, hiddenStates: nil, samples: samples, config: config, seed: 0)
        #expect(sel.count == 1 && sel[0].rule == .soft && sel[0].strength == 0.4)
        let c = sel[0].curves
        // λ is in units of the proxy's standard deviation over all samples.
        let mean = proxy.reduce(0, +) / 10
        let sigma = (proxy.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 10).squareRoot()
        #expect(abs(sel[0].scoreScale - sigma) < 1e-15)
        for (j, n) in c.n.enumerated() {
            var kl = 0.0, gold = 0.0
            for p in 0..<2 {
                let r = samples.range(ofPrompt: p)
                let q = enumeratedSoftBestOfN(scores: Array(proxy[r]), n: n, lambda: 0.4 * sigma)
                kl += klToEmpiricalBase(q) / 2
                gold += zip(q, samples.gold[r]).reduce(0) { $0 + $1.0 * $1.1 } / 2
            }
            #expect(abs(c.kl[j] - kl) < 1e-8 && abs(c.gold[j] - gold) < 1e-9)
        }
        #expect(c.kl[0] == 0)
    }

    // MARK: Prediction-error model

    @Test func rndGradientMatchesFiniteDifferences() {
        var rng = RNG(seed: 4)
        let C = 5, shapes = RNDShapes(inputs: C, hidden: 6, outputs: 3), rows = 7
        let states = (0..<(rows * C)).map { _ in Double(rng.normal()) }
        let a = (0..<(3 * C)).map { _ in Double(rng.normal()) }
        let targets = (0..<rows).map { rndTarget(states[($0 * C)..<(($0 + 1) * C)], weights: a, outputs: 3) }
        let p = (0..<shapes.count).map { _ in Double(rng.normal()) * 0.7 }
        let batch = [0, 2, 3, 6]
        let (loss, grad) = rndLossAndGradient(states: states, targets: targets, rows: batch, params: p, shapes: shapes)
        #expect(loss > 0)
        let h = 1e-6
        var worst = 0.0
        for j in p.indices {
            var up = p, down = p
            up[j] += h; down[j] -= h
            let fd = (rndLossAndGradient(states: states, targets: targets, rows: batch, params: up, shapes: shapes).loss
                - rndLossAndGradient(states: states, targets: targets, rows: batch, params: down, shapes: shapes).loss) / (2 * h)
            worst = max(worst, abs(fd - grad[j]) / max(1e-6, abs(fd) + abs(grad[j])))
        }
        #expect(worst < 1e-5, "largest relative gradient error \(worst)")
        // The loss is half the mean error over the batch.
        let e = rndErrors(states: states, targets: targets, params: p, shapes: shapes)
        #expect(abs(loss - batch.map { e[$0] }.reduce(0, +) / Double(batch.count) / 2) < 1e-12)
    }

    @Test func rndLearnsTypicalStatesAndFlagsAtypicalOnes() {
        var rng = RNG(seed: 8)
        let C = 6
        // Typical states: a low-dimensional cloud; atypical ones lie off it.
        func typical() -> [Double] { let u = Double(rng.normal()), v = Double(rng.normal()); return [u, v, u + v, u - v, 0.5 * u, -v] }
        let train = (0..<1500).flatMap { _ in typical() }
        var fitRNG = RNG(seed: 1)
        let model = trainRND(states: train, inputs: C, rng: &fitRNG)
        #expect(model.finalLoss < 0.5 * model.initialLoss, "loss \(model.initialLoss) → \(model.finalLoss)")
        let heldOut = model.relativeErrors((0..<200).flatMap { _ in typical() })
        let odd = model.relativeErrors((0..<200).flatMap { _ in (0..<C).map { _ in Double(rng.normal()) * 2 } })
        let mean = { (x: [Double]) in x.reduce(0, +) / Double(x.count) }
        #expect(mean(heldOut) < 2 && mean(odd) > 2 * mean(heldOut), "typical \(mean(heldOut)), atypical \(mean(odd))")
        // Deterministic for its RNG.
        var again = RNG(seed: 1)
        #expect(trainRND(states: train, inputs: C, rng: &again).params == model.params)
    }

    // MARK: Config

    @Test func selectionKeysAreCheckedAndNamed() throws {
        func message(_ change: (inout BestOfNConfig) -> Void) -> String {
            var c = BestOfNConfig()
            change(&c)
            do { try c.validate(); return "" } catch { return "\(error)" }
        }
        #expect(message { $0.softTemperature = 0.5 }.contains("'bon.soft_temperature': expected set only with \"soft\" in select (got 0.5)"))
        #expect(message { $0.select = [.soft]; $0.softTemperature = 0 }.contains("'bon.soft_temperature': expected > 0 (got 0)"))
        #expect(message { $0.select = [.caution]; $0.cautionCoef = -1 }.contains("'bon.caution_coef': expected ≥ 0 (got -1)"))
        #expect(message { $0.select = [.lcb]; $0.lcbK = .infinity }.contains("'bon.lcb_k': expected a finite number"))
        #expect(message { $0.select = [.lcb, .lcb] }.contains("'bon.select': expected without repeats"))
        #expect(message { $0.select = [.soft, .caution, .lcb]; $0.lcbK = 2 }.isEmpty)
        // From TOML, with --set overrides; unknown rules are named.
        let config = try ExperimentConfig.load(path: nil, overrides: ["bon.select=[\"soft\", \"lcb\"]", "bon.soft_temperature=0.25"])
        #expect(config.bon.select == [.soft, .lcb] && config.bon.strength(of: .soft) == 0.25 && config.bon.strength(of: .lcb) == 1)
        #expect(throws: ConfigError.self) { try ExperimentConfig.load(path: nil, overrides: ["bon.select=[\"argmin\"]"]) }
        do {
            _ = try ExperimentConfig.load(path: nil, overrides: ["bon.select=[\"argmin\"]"])
        } catch { #expect("\(error)".contains("soft, caution, lcb")) }
        // Absent keys leave the config (and so every cache key and hash) as before.
        #expect(StageCache.key(try ExperimentConfig.load(path: nil).bon) == StageCache.key(BestOfNConfig()))
        #expect(!String(decoding: try JSONEncoder().encode(BestOfNConfig()), as: UTF8.self).contains("select"))
    }

    // MARK: Stage

    @Test func selectionRulesRunEndToEndAndRoundTripThroughHDF5() throws {
        let world = testWorld
        let tc = TransformerConfig(vocabSize: world.vocabSize, contextLength: 64, width: 16, layers: 1, heads: 2)
        var rng = RNG(seed: 31)
        let policy = Transformer(config: tc)
        policy.initialize(rng: &rng)
        let members = (0..<2).map { _ -> Transformer in
            let m = Transformer(config: tc, heads: HeadConfig(reward: .linear))
            m.initialize(rng: &rng)
            return m
        }
        let ensemble = ProxyRewardModel(name: "pair", members: members)
        let single = ProxyRewardModel(name: "one", members: [members[0]])
        var config = BestOfNConfig()
        config.prompts = 4; config.samplesPerPrompt = 16; config.gridDenseUpTo = 4; config.scoreBatchSize = 8
        var sampleRNG = rng.split("bon")
        let samples = try sampleBestOfN(world: world, policy: policy, config: config, rng: &sampleRNG)
        let plain = try evaluateBestOfN(proxy: ensemble, samples: samples, world: world, config: config)
        config.select = [.soft, .caution, .lcb]
        config.softTemperature = 0.3; config.cautionCoef = 0.5; config.lcbK = 2
        var lines: [String] = []
        let curves = try evaluateBestOfN(proxy: ensemble, samples: samples, world: world, config: config, seed: 7) { lines.append($0) }
        // The plain curves do not change when rules are selected.
        var withoutRules = curves
        withoutRules.selections = []
        #expect(withoutRules == plain)
        #expect(curves.selections.map(\.rule) == [.soft, .caution, .lcb])
        #expect(curves.selections.map(\.strength) == [0.3, 0.5, 2])
        for s in curves.selections {
            #expect(s.curves.n == plain.n && s.curves.gold.count == plain.n.count)
            #expect(abs(s.curves.gold[0] - plain.gold[0]) < 1e-12 && abs(s.curves.proxy[0] - plain.proxy[0]) < 1e-12)
            #expect(s.curves.goldOracle == plain.goldOracle)
        }
        let caution = curves.selections[1]
        #expect(caution.rndFinalLoss! < caution.rndInitialLoss!)
        #expect(lines.contains { $0.contains("select caution (caution_coef = 0.5, proxy std σ = ") })
        // Caution is the argmax of r − cσ·e: rebuilt from its parts, the same curves.
        #expect(caution.scoreScale > 0 && curves.selections[2].scoreScale == 1)
        let sequences = zip(samples.samplePrompts(in: world), samples.responses).map { world.trainingSequence(prompt: $0, response: $1) }
        let states = members[0].lastTokenStates(sequences)
        let fit = crossFittedPredictionErrors(states: states, width: 16, samples: samples, rng: RNG(seed: RNG.stableHash("bon-caution|7|pair")))
        let scores = ensemble.score(world: world, prompts: samples.samplePrompts(in: world), responses: samples.responses)
        let rule = cautiousScores(proxy: scores, error: fit.errors, coef: 0.5 * caution.scoreScale)
        let weights = config.grid.map { bestOfNWeights(N: 16, n: $0) }
        let rebuilt = BestOfNCurves(name: "pair", proxyScores: scores, samples: samples, grid: config.grid) { p in
            let ranking = BestOfNRanking(selectBy: Array(rule[samples.range(ofPrompt: p)]))
            return (weights.map { ranking.selectionProbabilities(rankWeights: $0) }, nil)
        }
        #expect(rebuilt == caution.curves)
        // Cross-fitting: a sample's error comes from the predictor of the other fold, so
        // changing one sample's hidden state changes no other error of its own fold.
        var moved = states
        for j in 0..<16 { moved[3 * 16 + j] += 5 }                 // sample 3 of prompt 0 (fold 0)
        let refit = crossFittedPredictionErrors(states: moved, width: 16, samples: samples, rng: RNG(seed: RNG.stableHash("bon-caution|7|pair")))
        let fold0 = (0..<64).filter { ($0 / 16) % 2 == 0 && $0 != 3 }
        #expect(fold0.allSatisfy { refit.errors[$0] == fit.errors[$0] })
        #expect(refit.errors[3] != fit.errors[3])
        #expect((0..<64).filter { ($0 / 16) % 2 == 1 }.contains { refit.errors[$0] != fit.errors[$0] })
        // Deterministic for the seed.
        #expect(try evaluateBestOfN(proxy: ensemble, samples: samples, world: world, config: config, seed: 7) == curves)
        // A single model has no lower confidence bound: skipped with a log line.
        var skipped: [String] = []
        let one = try evaluateBestOfN(proxy: single, samples: samples, world: world, config: config, seed: 7) { skipped.append($0) }
        #expect(one.selections.map(\.rule) == [.soft, .caution])
        #expect(skipped.contains { $0.contains("\"lcb\" skipped") })

        // Written under /bon/<variant>/select/<rule>/ with the plain datasets, read back.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("overopt-select-\(UUID().uuidString).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let file = try H5File.create(path)
            try curves.write(to: file.root.createGroup("bon/pair"))
            try annotateRunFile(file.root)
            file.close()
        }
        let file = try H5File.open(path)
        defer { file.close() }
        let bon = try file.root.group("bon/pair")
        #expect(try BestOfNCurves.read(from: bon) == curves)
        let soft = try bon.group("select/soft")
        for name in ["n", "kl", "proxy", "gold", "proxy_sem", "gold_sem", "gold_oracle", "proxy_shifted", "gold_shifted", "gold_tone"] {
            #expect(soft.contains(name), "missing \(name)")
        }
        #expect(try soft.doubleAttribute("strength") == 0.3 && soft.stringAttribute("strength_key") == "soft_temperature")
        #expect(try soft.stringAttribute("units", on: "gold") == "reward")
        #expect(try soft.stringAttribute("long_name", on: "kl").contains("empirical base"))
        #expect(try bon.group("select/lcb").stringAttribute("long_name", on: "kl").contains("log n"))
        #expect(try bon.group("select/caution").doubleAttribute("rnd_final_loss") == caution.rndFinalLoss!)
    }
}

// MARK: - Collect and compare

@Test func collectSummarizesSelectionRulesAndComparePairsThemWithThePlainRule() throws {
    let dir = try temporaryFolder("select")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // Two seeds; soft best-of-n's KL differs between them, its gold is the plain gold + δ.
    let soft: [(kl: [Double], delta: Double)] = [([0, 0.2, 0.4], 0.5), ([0, 0.3, 0.6], 1.5)]
    for (seed, gold) in [[0.0, 1, 2], [0.0, 2, 1]].enumerated() {
        let path = "\(dir)/r\(seed).h5"
        try writeToyRun(path, seed: seed, goldAtN: gold)
        let f = try H5File.open(path, writable: true)
        let g = try f.root.createGroup("bon/bt/select/soft")
        try g.write("n", [1, 2, 4] as [Int64])
        try g.write("kl", soft[seed].kl)
        try g.write("gold", gold.map { $0 + soft[seed].delta * ($0 == 0 ? 0 : 1) })
        try g.write("proxy", gold)
        f.close()
    }
    let out = "\(dir)/summary.h5"
    _ = try collectResults(directory: dir, outputPath: out, klPoints: 3)
    do {
        let f = try H5File.open(out)
        defer { f.close() }
        let group = try f.root.group("groups")
        let g = try group.group(try group.children()[0])
        let s = try g.group("bon/bt/select/soft")
        #expect(try s.readDoubles("kl").values == [0, 0.25, 0.5])              // mean over seeds
        #expect(try g.group("bon/bt").readDoubles("kl").values == [0, log(2) - 0.5, log(4) - 0.75])
        #expect(try s.readDoubles("gold_shifted").values == [0, 2.5, 2.5])
    }
    // compare: the rule against the plain argmax, seed by seed.
    let runs = try readRunFolder(dir).runs
    let result = try compareRuns(runs, options: CompareOptions(baseline: "bt", variants: ["bt/select/soft"], metrics: ["bon/gold@"]))
    let row = try #require(result[0].rows.first { $0.metric == "bon/gold@n=4" })
    #expect(row.variantValues == [2.5, 2.5] && row.baselineValues == [2, 1])
    #expect(abs(row.difference!.mean - 1) < 1e-12)
}

// MARK: - PPO mitigations

@Suite struct PolicyMitigationTests {
    @Test func klPenaltyEstimatorsHaveTheirExactExpectations() {
        // One-token responses y ~ p with reference q: the penalty's expectation by enumeration.
        let p = [0.5, 0.2, 0.15, 0.1, 0.05], q = [0.1, 0.3, 0.2, 0.3, 0.1]
        let kl = zip(p, q).reduce(0) { $0 + $1.0 * log($1.0 / $1.1) }
        let beta = 0.3
        func expectedPenalty(_ e: KLPenaltyEstimator) -> Double {
            zip(p, q).reduce(0) { $0 - $1.0 * perTokenRewards(score: 0, logRatios: [log($1.0 / $1.1)], klCoef: beta, estimator: e)[0] } / beta
        }
        // k1 and k3 are unbiased: their expectation is the KL exactly.
        #expect(abs(expectedPenalty(.k1) - kl) < 1e-14)
        #expect(abs(expectedPenalty(.k3) - kl) < 1e-14)
        // k2's expectation is E[½ l²] (≥ 0, biased).
        let k2 = zip(p, q).reduce(0) { $0 + $1.0 * 0.5 * pow(log($1.0 / $1.1), 2) }
        #expect(abs(expectedPenalty(.k2) - k2) < 1e-14 && abs(k2 - kl) > 0.01)
        // Per token the three are the sums KLEstimates reports; k1 is the default reward.
        let ratios = [0.3, -0.2, 1.1]
        let k = klEstimates(logRatios: ratios)
        for (e, want) in [(KLPenaltyEstimator.k1, k.k1), (.k2, k.k2), (.k3, k.k3)] {
            let r = perTokenRewards(score: 2, logRatios: ratios, klCoef: beta, estimator: e)
            #expect(abs(r.reduce(0, +) - (2 - beta * want)) < 1e-14)
        }
        #expect(perTokenRewards(score: 2, logRatios: ratios, klCoef: beta, estimator: .k1) == perTokenRewards(score: 2, logRatios: ratios, klCoef: beta))
    }

    @Test func parMatchesHandComputedValues() {
        // σ(1) + σ(−1) = 1: a response between two references gets ½ − ½ = 0.
        #expect(abs(parReward(score: 1, referenceScores: [0, 2], scale: 1)) < 1e-15)
        // σ((2 − 0.5)/0.5) − ½ = σ(3) − ½ = 1/(1 + e^{−3}) − ½.
        #expect(abs(parReward(score: 2, referenceScores: [0.5], scale: 0.5) - 0.4525741268224334) < 1e-15)
        #expect(abs(parReward(score: 0, referenceScores: [0], scale: 3)) < 1e-15)
        // Bounded by ±½ and stable far from the reference; increasing in the score.
        #expect(parReward(score: 1e6, referenceScores: [0], scale: 1) == 0.5)
        #expect(parReward(score: -1e6, referenceScores: [0], scale: 1) == -0.5)
        // Centred: antisymmetric in the response and its reference, so over responses drawn
        // like the references the expected reward is 0.
        for (x, y) in [(1.3, -0.4), (0.0, 2.5), (-3.0, -2.9)] {
            #expect(abs(parReward(score: x, referenceScores: [y], scale: 0.7) + parReward(score: y, referenceScores: [x], scale: 0.7)) < 1e-15)
        }
        #expect(parReward(score: 0.1, referenceScores: [0, 1, -2], scale: 1) < parReward(score: 0.2, referenceScores: [0, 1, -2], scale: 1))
        #expect(abs(logisticSigmoid(-2) - 1 / (1 + exp(2))) < 1e-16)
    }

    @Test func adaptiveControllerUsesTheConfiguredHorizon() {
        var c = AdaptiveKLController(initial: 0.2, target: 4, horizon: 500)
        c.update(measuredKL: 4.4, samples: 64)   // e = 0.1
        #expect(abs(c.value - 0.2 * (1 + 0.1 * 0.1 * 64 / 500)) < 1e-15)
        c.update(measuredKL: 0, samples: 64)     // e = −1 clipped to −0.2
        #expect(abs(c.value - 0.2 * (1 + 0.1 * 0.1 * 64 / 500) * (1 - 0.1 * 0.2 * 64 / 500)) < 1e-15)
    }

    @Test func mitigationKeysAreCheckedAndOnlyWrittenWhenSet() throws {
        func message(_ change: (inout PPOConfig) -> Void) -> String {
            var c = PPOConfig()
            change(&c)
            do { try c.validate(); return "" } catch { return "\(error)" }
        }
        #expect(message { $0.klHorizon = 100 }.contains("ppo.kl_horizon"))
        #expect(message { $0.klCoef = 0.1; $0.targetKL = 3; $0.klHorizon = 0 }.contains("'ppo.kl_horizon': expected > 0 (got 0)"))
        #expect(message { $0.parReferenceSamples = 2 }.contains("ppo.par_reference_samples"))
        #expect(message { $0.rewardShaping = .par; $0.parReferenceSamples = 0 }.contains("ppo.par_reference_samples"))
        #expect(message { $0.rewardShaping = .par; $0.rewardClip = 3 }.contains("ppo.reward_clip"))
        #expect(message { $0.rewardShaping = .par; $0.parReferenceSamples = 2; $0.klEstimator = .k3 }.isEmpty)
        // Unset, nothing changes: no attributes, the same cache key as before.
        let keys = PPOConfig().attributes.map(\.key)
        #expect(!keys.contains("kl_estimator") && !keys.contains("reward_shaping") && !keys.contains("kl_horizon"))
        #expect(!String(decoding: try JSONEncoder().encode(PPOConfig()), as: UTF8.self).contains("shaping"))
        let config = try ExperimentConfig.load(path: nil, overrides: ["ppo.reward_shaping=\"par\"", "ppo.kl_estimator=\"k2\"", "ppo.kl_coef=0.05"])
        #expect(config.ppo.shaping == .par && config.ppo.penaltyEstimator == .k2)
        do {
            _ = try ExperimentConfig.load(path: nil, overrides: ["ppo.kl_estimator=\"k4\""])
            Issue.record("k4 accepted")
        } catch { #expect("\(error)".contains("k1, k2, k3")) }
    }

    private func shortConfig() -> PPOConfig {
        var config = PPOConfig()
        config.steps = 3; config.promptsPerStep = 16; config.minibatchSize = 8; config.ppoEpochs = 2
        config.maxNewTokens = 8; config.evalPrompts = 8; config.evalEvery = 3; config.sampleTexts = 0
        config.learningRate = 1e-2
        return config
    }

    @Test func explicitDefaultsReproduceTheUnmitigatedRunBitForBit() throws {
        var config = shortConfig()
        config.klCoef = 0.05
        let plain = try PPOTrainer(config: config, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(5), seed: 6).run()
        config.klEstimator = .k1; config.rewardShaping = RewardShaping.none
        let explicit = try PPOTrainer(config: config, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(5), seed: 6).run()
        #expect(plain.trainReward == explicit.trainReward && plain.policyLoss == explicit.policyLoss && plain.kl == explicit.kl)
        // k3 changes the penalty (so the update), not the first rollout batch.
        config.klEstimator = .k3
        let k3 = try PPOTrainer(config: config, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(5), seed: 6).run()
        #expect(plain.trainKL.last! != 0, "the toy run must move the policy for this test to mean anything")
        #expect(k3.trainReward[0] == plain.trainReward[0] && k3.policyLoss[0] == plain.policyLoss[0] && k3.policyLoss != plain.policyLoss)
    }

    @Test func parShapesGRPOAndRLOORewardsDeterministically() throws {
        for algorithm in ["grpo", "rloo"] {
            func run(_ shaping: RewardShaping?, _ scorer: @escaping PolicyScorer) throws -> PolicyCurves {
                if algorithm == "grpo" {
                    var c = toyGRPOConfig()
                    c.steps = 3; c.rewardShaping = shaping; c.parReferenceSamples = shaping == nil ? nil : 3
                    return try CriticFreeTrainer(config: c, world: testWorld, basePolicy: tinyPolicy(), scorer: scorer, seed: 4).run()
                }
                var c = toyRLOOConfig()
                c.steps = 3; c.rewardShaping = shaping; c.parReferenceSamples = shaping == nil ? nil : 3
                return try CriticFreeTrainer(config: c, world: testWorld, basePolicy: tinyPolicy(), scorer: scorer, seed: 4).run()
            }
            var calls: [Int] = []
            let counting: PolicyScorer = { _, responses in
                calls.append(responses.count)
                return responses.map { Double($0.filter { $0 == 5 }.count) }
            }
            let a = try run(.par, counting)
            // 8 prompts × 4 rollouts scored, then 8 prompts × 3 reference responses, each step.
            #expect(calls.filter { $0 == 24 }.count == 3, "\(algorithm): \(calls)")
            let b = try run(.par, tokenCountScorer(5))
            #expect(a.trainReward == b.trainReward && a.policyLoss == b.policyLoss && a.kl == b.kl)
            let plain = try run(nil, tokenCountScorer(5))
            #expect(a.trainReward[0] == plain.trainReward[0] && a.policyLoss != plain.policyLoss, "\(algorithm)")
            #expect(a.settings.contains { $0.key == "reward_shaping" } && !plain.settings.contains { $0.key == "reward_shaping" })
        }
        var c = toyRLOOConfig()
        c.parReferenceSamples = 2
        #expect(throws: ConfigError.self) { try c.validate() }
        let config = try ExperimentConfig.load(path: nil, overrides: ["grpo.reward_shaping=\"par\"", "rloo.reward_shaping=\"par\""])
        #expect(config.grpo.settings.shaping == .par && config.rloo.settings.shaping == .par)
    }

    @Test func parRunsDeterministicallyAndScoresTheReferenceResponses() throws {
        var config = shortConfig()
        config.rewardShaping = .par; config.parReferenceSamples = 2
        var calls: [Int] = []
        let counting: PPOScorer = { prompts, responses in
            calls.append(responses.count)
            return responses.map { Double($0.filter { $0 == 5 }.count) }
        }
        let a = try PPOTrainer(config: config, world: testWorld, basePolicy: tinyPolicy(), scorer: counting, seed: 6).run()
        // Each step scores 16 rollouts and 2 × 16 reference responses (besides evaluations of 8).
        #expect(calls.filter { $0 == 32 }.count == 3 && calls.filter { $0 == 16 }.count == 3)
        let b = try PPOTrainer(config: config, world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(5), seed: 6).run()
        #expect(a.trainReward == b.trainReward && a.policyLoss == b.policyLoss && a.kl == b.kl)
        // The rollouts of the first step are the unshaped run's; the update differs.
        let plain = try PPOTrainer(config: shortConfig(), world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(5), seed: 6).run()
        #expect(a.trainReward[0] == plain.trainReward[0] && a.policyLoss != plain.policyLoss)
    }
}
