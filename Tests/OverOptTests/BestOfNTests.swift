// BestOfNTests.swift — the best-of-n estimator against brute force and Monte Carlo, its
// edge cases, ties, the KL formula and the n grid; the config; and the stage end to end on a
// tiny random-weight policy and proxy, through an HDF5 file.

import Foundation
import Testing
import OverOptEngine
import OverOptHDF5
@testable import OverOpt

// MARK: - Reference implementations

/// E[v of best-of-n] by enumerating every n-subset of the N samples; among tied maxima of
/// `s` in a subset, v is averaged (uniform choice — the estimator's documented tie rule).
private func bruteForceBestOfN(s: [Double], v: [Double], n: Int) -> Double {
    let N = s.count
    var total = 0.0, subsets = 0
    for mask in 0..<(1 << N) where mask.nonzeroBitCount == n {
        let members = (0..<N).filter { mask & (1 << $0) != 0 }
        let top = members.map { s[$0] }.max()!
        let tied = members.filter { s[$0] == top }
        total += tied.map { v[$0] }.reduce(0, +) / Double(tied.count)
        subsets += 1
    }
    return total / Double(subsets)
}

/// A uniformly random n-subset of 0..<N (partial Fisher–Yates).
private func randomSubset(N: Int, n: Int, rng: inout RNG) -> ArraySlice<Int> {
    var idx = Array(0..<N)
    for i in 0..<n { idx.swapAt(i, i + rng.int(below: N - i)) }
    return idx[0..<n]
}

private func randomValues(_ count: Int, rng: inout RNG) -> [Double] { (0..<count).map { _ in Double(rng.normal()) } }

/// Run alone with `swift test --filter BestOfNTests`.
@Suite struct BestOfNTests {
    // MARK: - Estimator

    @Test func bestOfNEstimatorMatchesBruteForceWithoutTies() {
        var rng = RNG(seed: 11)
        for _ in 0..<5 {
            let s = randomValues(7, rng: &rng), v = randomValues(7, rng: &rng)
            for n in 1...7 {
                let e = expectedBestOfN(selectBy: s, value: v, n: n)
                #expect(abs(e - bruteForceBestOfN(s: s, v: v, n: n)) < 1e-12, "n = \(n)")
            }
        }
    }

    @Test func bestOfNEstimatorMatchesBruteForceWithTies() {
        var rng = RNG(seed: 12)
        for trial in 0..<8 {
            // Scores from {0, 1, 2} (many ties, including at the maximum), or all equal.
            let s = (0..<7).map { _ in trial == 0 ? 1.0 : Double(rng.int(below: 3)) }
            let v = randomValues(7, rng: &rng)
            #expect(BestOfNRanking(selectBy: s).hasTies)
            for n in 1...7 {
                let e = expectedBestOfN(selectBy: s, value: v, n: n)
                #expect(abs(e - bruteForceBestOfN(s: s, v: v, n: n)) < 1e-12, "trial \(trial), n = \(n)")
            }
        }
    }

    @Test func bestOfNEstimatorDoesNotDependOnSampleOrder() {
        var rng = RNG(seed: 13)
        let s = (0..<40).map { _ in Double(rng.int(below: 6)) }, v = randomValues(40, rng: &rng)
        var perm = Array(0..<40)
        rng.shuffle(&perm)
        for n in [1, 3, 17, 40] {
            let a = expectedBestOfN(selectBy: s, value: v, n: n)
            let b = expectedBestOfN(selectBy: perm.map { s[$0] }, value: perm.map { v[$0] }, n: n)
            #expect(abs(a - b) < 1e-12)
        }
    }

    @Test func bestOfNEstimatorAgreesWithMonteCarloSubsampling() {
        var rng = RNG(seed: 14)
        let N = 200, n = 10, draws = 20_000
        let s = randomValues(N, rng: &rng)
        let v = s.map { $0 + Double(rng.normal()) }            // correlated with the selection score
        var sum = 0.0, sumSq = 0.0
        for _ in 0..<draws {
            let best = randomSubset(N: N, n: n, rng: &rng).max { s[$0] < s[$1] }!
            sum += v[best]; sumSq += v[best] * v[best]
        }
        let mean = sum / Double(draws)
        let se = ((sumSq / Double(draws) - mean * mean) / Double(draws)).squareRoot()
        let e = expectedBestOfN(selectBy: s, value: v, n: n)
        #expect(abs(e - mean) < 4 * se, "estimator \(e), Monte Carlo \(mean) ± \(se)")
    }

    @Test func bestOfOneIsTheMeanAndBestOfAllIsTheValueAtTheMaximum() {
        var rng = RNG(seed: 15)
        let s = randomValues(50, rng: &rng), v = randomValues(50, rng: &rng)
        #expect(abs(expectedBestOfN(selectBy: s, value: v, n: 1) - v.reduce(0, +) / 50) < 1e-12)
        #expect(expectedBestOfN(selectBy: s, value: v, n: 50) == v[s.indices.max { s[$0] < s[$1] }!])
        // With tied maxima, best-of-N averages v over them.
        let tied = [0.0, 3, 1, 3, 2], w = [10.0, 20, 30, 40, 50]
        #expect(abs(expectedBestOfN(selectBy: tied, value: w, n: 5) - 30) < 1e-12)
        // Selected by the value itself, best-of-n is the oracle and rises with n.
        let oracle = (1...50).map { oracleBestOfN(gold: v, n: $0) }
        #expect(zip(oracle, oracle.dropFirst()).allSatisfy { $0 <= $1 + 1e-12 })
        #expect(oracle.last! == v.max()!)
    }

    @Test func bestOfNWeightsAreTheBinomialRatiosAndSumToOne() {
        // Exact ratios for a small N (integer binomials).
        func binom(_ a: Int, _ b: Int) -> Double {
            guard b >= 0, b <= a else { return 0 }
            var r = 1.0
            for k in 0..<b { r = r * Double(a - k) / Double(k + 1) }
            return r
        }
        let N = 20
        for n in 1...N {
            let w = bestOfNWeights(N: N, n: n)
            for i in 1...N { #expect(abs(w[i - 1] - binom(i - 1, n - 1) / binom(N, n)) < 1e-13) }
        }
        // Large N: finite, non-negative, zero below rank n, sum 1, increasing in rank.
        for (N, n) in [(5000, 1), (5000, 2), (5000, 2500), (5000, 4999), (5000, 5000), (4096, 64)] {
            let w = bestOfNWeights(N: N, n: n)
            #expect(w.allSatisfy { $0.isFinite && $0 >= 0 })
            #expect(abs(w.reduce(0, +) - 1) < 1e-12)
            #expect(w[..<(n - 1)].allSatisfy { $0 == 0 })
            #expect(zip(w, w.dropFirst()).allSatisfy { $0 <= $1 })
        }
        #expect(bestOfNWeights(N: 5000, n: 5000).last! == 1)
    }

    @Test func multiValueEstimatorMatchesSingleValueCalls() {
        var rng = RNG(seed: 16)
        let s = (0..<30).map { _ in Double(rng.int(below: 10)) }
        let values = (0..<3).map { _ in randomValues(30, rng: &rng) }
        let ns = [1, 2, 5, 30]
        let all = expectedBestOfN(selectBy: s, values: values, ns: ns)
        for (k, v) in values.enumerated() {
            for (j, n) in ns.enumerated() { #expect(abs(all[k][j] - expectedBestOfN(selectBy: s, value: v, n: n)) < 1e-14) }
        }
    }

    @Test func klOfBestOfNIsLogNMinusNMinusOneOverN() {
        #expect(klBestOfN(n: 1) == 0)
        #expect(abs(klBestOfN(n: 2) - (log(2) - 0.5)) < 1e-15)
        #expect(abs(klBestOfN(n: 405) - (log(405) - 404.0 / 405)) < 1e-15)
        #expect(abs(klBestOfN(n: 256) - 4.549) < 1e-3)
        #expect((1..<300).allSatisfy { klBestOfN(n: $0) < klBestOfN(n: $0 + 1) })
    }

    @Test func nGridIsDenseThenGeometricAndEndsAtN() {
        let g = bestOfNGrid(N: 256)
        #expect(g == Array(1...16) + [19, 23, 27, 32, 38, 45, 54, 64, 76, 91, 108, 128, 152, 181, 215, 256])
        #expect(bestOfNGrid(N: 5) == [1, 2, 3, 4, 5])
        #expect(bestOfNGrid(N: 1) == [1])
        for N in [17, 100, 405, 3000] {
            let h = bestOfNGrid(N: N, denseUpTo: 8, perDoubling: 3)
            #expect(h.first == 1 && h.last == N)
            #expect(zip(h, h.dropFirst()).allSatisfy { $0 < $1 })
        }
    }

    @Test func standardErrorIsStdOverRootPrompts() {
        let r = meanAndStandardError([1, 2, 3, 4])
        #expect(r.mean == 2.5)
        #expect(abs(r.sem - (5.0 / 3).squareRoot() / 2) < 1e-15)
        #expect(meanAndStandardError([7]).sem.isNaN)
    }

    // MARK: - Config

    @Test func bestOfNConfigDecodesSnakeCaseKeysWithDefaults() throws {
        let empty = try JSONDecoder().decode(BestOfNConfig.self, from: Data("{}".utf8))
        #expect(empty == BestOfNConfig())
        #expect(empty.samplesPerPrompt == 256 && empty.prompts == 64 && empty.promptSplit == .heldOut)
        #expect(empty.temperature == 1 && empty.topP == 1 && empty.maxN == nil && !empty.saveSamples)
        #expect(empty.grid.last == 256)
        let json = #"{"samples_per_prompt": 64, "max_n": 32, "top_p": 0.9, "prompt_split": "train", "save_samples": true, "temperature": 1.5}"#
        let c = try JSONDecoder().decode(BestOfNConfig.self, from: Data(json.utf8))
        #expect(c.samplesPerPrompt == 64 && c.maxN == 32 && c.topP == 0.9 && c.promptSplit == .train && c.saveSamples)
        #expect(c.grid.last == 32)
        var d = c
        d.maxN = 64; d.saveSamples = false; d.scoreBatchSize = 8
        #expect(d.samplesKey == c.samplesKey)
        d.temperature = 1.4
        #expect(d.samplesKey != c.samplesKey)
        let back = try JSONDecoder().decode(BestOfNConfig.self, from: JSONEncoder().encode(c))
        #expect(back == c)
    }

    @Test func bestOfNConfigValidationNamesTheKey() {
        func message(_ edit: (inout BestOfNConfig) -> Void) -> String {
            var c = BestOfNConfig()
            edit(&c)
            do { try c.validate(); return "" } catch { return "\(error)" }
        }
        #expect(message { _ in } == "")
        #expect(message { $0.maxN = 300 }.contains("max_n"))
        #expect(message { $0.samplesPerPrompt = 0 }.contains("samples_per_prompt"))
        #expect(message { $0.temperature = 0 }.contains("temperature"))
        #expect(message { $0.topP = 1.5 }.contains("top_p"))
        #expect(message { $0.prompts = 0 }.contains("prompts"))
        #expect(message { $0.batchSize = 0 }.contains("batch_size"))
    }

    // MARK: - Stage

    @Test func bestOfNStageOnATinyModelGivesConsistentCurvesAndRoundTripsThroughHDF5() throws {
        let world = testWorld
        let tc = TransformerConfig(vocabSize: world.vocabSize, contextLength: 64, width: 16, layers: 1, heads: 2)
        var rng = RNG(seed: 21)
        let policy = Transformer(config: tc)
        policy.initialize(rng: &rng)
        let member = Transformer(config: tc, heads: HeadConfig(reward: .linear))
        member.initialize(rng: &rng)
        let proxy = ProxyRewardModel(name: "random", members: [member])

        var config = BestOfNConfig()
        config.prompts = 4
        config.samplesPerPrompt = 12
        config.batchSize = 20               // batches straddle prompts
        config.scoreBatchSize = 16
        config.gridDenseUpTo = 4
        config.saveSamples = true
        var lines: [String] = []
        var sampleRNG = rng.split("bon")
        let samples = try sampleBestOfN(world: world, policy: policy, config: config, rng: &sampleRNG) { lines.append($0) }
        #expect(samples.promptCount == 4 && samples.responses.count == 48 && samples.gold.count == 48)
        #expect(samples.promptIDs.allSatisfy { world.allPrompts[$0].isHeldOut })
        #expect(samples.responses.allSatisfy { !$0.isEmpty && $0.count <= world.config.maxResponseTokens })
        #expect(lines.contains { $0.contains("samples/s") })
        // Same RNG, same samples.
        var again = rng.split("bon")
        #expect(try sampleBestOfN(world: world, policy: policy, config: config, rng: &again) == samples)

        let curves = try evaluateBestOfN(proxy: proxy, samples: samples, world: world, config: config) { lines.append($0) }
        let grid = config.grid
        #expect(grid == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12])
        for series in [curves.kl, curves.proxy, curves.gold, curves.proxySEM, curves.goldSEM, curves.goldOracle] {
            #expect(series.count == grid.count)
        }
        #expect(curves.n == grid && curves.goldComponents.count == GoldScore.componentNames.count)
        // Selection by the proxy makes the proxy curve non-decreasing; gold selection bounds gold.
        #expect(zip(curves.proxy, curves.proxy.dropFirst()).allSatisfy { $0 <= $1 + 1e-12 })
        #expect(zip(curves.goldOracle, curves.gold).allSatisfy { $0 >= $1 - 1e-12 })
        // n = 1 is the plain mean; the components add up to gold at every n.
        let scores = try #require(curves.sampleProxy)
        #expect(abs(curves.proxy[0] - scores.reduce(0, +) / 48) < 1e-12)
        #expect(abs(curves.gold[0] - samples.gold.reduce(0, +) / 48) < 1e-12)
        #expect(abs(curves.goldOracle[0] - curves.gold[0]) < 1e-12)
        for j in grid.indices {
            #expect(abs(curves.goldComponents.map { $0[j] }.reduce(0, +) - curves.gold[j]) < 1e-9)
        }
        #expect(curves.proxyShifted[0] == 0 && curves.goldShifted[0] == 0)
        #expect(curves.proxySEM.allSatisfy { $0.isFinite && $0 >= 0 })
        #expect(lines.contains { $0.contains("scoring 'random'") })

        // Write both to a temporary HDF5 file, read them back.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("overopt-bon-\(UUID().uuidString).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let file = try H5File.create(path)
            try samples.write(to: file.root.createGroup("bon_samples"))
            try curves.write(to: file.root.createGroup("bon/random"))
            file.close()
        }
        let file = try H5File.open(path)
        defer { file.close() }
        let bon = try file.root.group("bon/random")
        #expect(try BestOfNCurves.read(from: bon) == curves)
        #expect(try BestOfNSamples.read(from: file.root.group("bon_samples")) == samples)
        #expect(try bon.readInt64s("n").values == grid.map(Int64.init))
        #expect(try bon.readDoubles("sample_gold").shape == [4, 12])
        #expect(try bon.readDoubles("gold_shifted").values == curves.goldShifted)
        for name in ["kl", "proxy", "gold", "proxy_sem", "gold_sem", "gold_oracle", "proxy_shifted", "gold_tone"] {
            #expect(bon.contains(name), "missing \(name)")
        }
        #expect(try bon.intAttribute("samples_per_prompt") == 12)
        #expect(try bon.doubleAttribute("temperature") == 1)
    }
}
