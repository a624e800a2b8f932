// Paired statistics against SciPy 1.x values (computed once, written here) and hand
// computations; `compareRuns` on runs whose differences are known.
import Foundation
import Testing
@testable import OverOpt

struct PairedStatisticsTests {
    @Test func studentTMatchesSciPy() {
        // scipy.stats.t.ppf(0.975, df)
        for (df, q) in [(1.0, 12.706204736174694), (2, 4.302652729749462), (4, 2.7764451051977934),
                        (9, 2.262157162798205), (29, 2.045229642132703)] {
            #expect(abs(studentTQuantile(0.975, degreesOfFreedom: df) - q) < 1e-9 * q, "df \(df)")
        }
        // scipy.stats.t.cdf(t, df)
        for (t, df, p) in [(0.5, 3.0, 0.6742760175759245), (-1.7, 5, 0.074938393424162), (2.2, 9, 0.9723297136006942),
                           (10, 2, 0.9950737714883372)] {
            #expect(abs(studentTCDF(t, degreesOfFreedom: df) - p) < 1e-12, "t \(t) df \(df)")
        }
        // scipy.special.betainc(a, b, x)
        for (x, a, b, v) in [(0.3, 2.5, 0.5, 0.018927124071945658), (0.9, 1.5, 0.5, 0.6041813035905921),
                             (0.05, 10, 0.5, 1.761178743259099e-14)] {
            #expect(abs(regularizedIncompleteBeta(x, a: a, b: b) - v) <= 1e-10 * v, "x \(x) a \(a) b \(b)")
        }
    }

    @Test func pairedDifferenceMatchesSciPy() {
        let d = [0.12, -0.03, 0.25, 0.08, 0.19]
        let r = pairedDifference(d)
        #expect(abs(r.mean - 0.122) < 1e-12)
        #expect(abs(r.standardDeviation - 0.10709808588392232) < 1e-12)
        // scipy.stats.t.interval(0.95, 4, loc=mean, scale=sem)
        #expect(abs(r.tLow - -0.010979837518601099) < 1e-9 && abs(r.tHigh - 0.2549798375186011) < 1e-9)
        // scipy.stats.permutation_test(…, permutation_type='samples', n_resamples=inf): 4 of 32 sign assignments
        #expect(r.pValue == 0.125)
        #expect(r.wins == 4 && r.losses == 1 && r.ties == 0 && r.seeds == 5)
        #expect(!r.decided)
        // The bootstrap interval lies inside the values' range and around the mean; a fixed seed repeats it.
        #expect(r.bootstrapLow > -0.03 && r.bootstrapLow < r.mean && r.bootstrapHigh > r.mean && r.bootstrapHigh < 0.25)
        #expect(pairedDifference(d) == r)
    }

    @Test func signFlipTestIsExactAndBounded() {
        // Three positive differences: only the all-plus and all-minus assignments are as extreme.
        #expect(signFlipPValue([1, 2, 3]) == 0.25)
        #expect(signFlipPValue([0, 0, 0]) == 1)
        // Ten positive differences: 2 of 1024.
        #expect(signFlipPValue((1...10).map(Double.init)) == 2.0 / 1024)
        // Brute force over the assignments for an uneven sample.
        let d = [0.3, -0.1, 0.45, 0.2, -0.05, 0.15]
        var extreme = 0
        for mask in 0..<64 {
            let s = d.indices.reduce(0.0) { $0 + (mask >> $1 & 1 == 1 ? -d[$1] : d[$1]) }
            if abs(s) >= abs(d.reduce(0, +)) - 1e-12 { extreme += 1 }
        }
        #expect(signFlipPValue(d) == Double(extreme) / 64)
        // Past 20 seeds, sampled assignments with a fixed seed: close to the normal approximation's order.
        let many = (0..<24).map { Double($0 % 5) - 1.2 }
        let p = signFlipPValue(many)
        #expect(p > 0 && p <= 1 && signFlipPValue(many) == p)
    }

    @Test func holmMatchesHandComputation() {
        // Sorted 0.01, 0.03, 0.04, 0.2 with m = 4: 0.04, max(0.09), max(0.09, 0.08), 0.2.
        let adjusted = holmAdjusted([0.01, 0.04, 0.03, 0.2])
        let expected = [0.04, 0.09, 0.09, 0.2]
        #expect(zip(adjusted, expected).allSatisfy { abs($0 - $1) < 1e-15 })
        #expect(holmAdjusted([0.5, 0.6]) == [1, 1])
        #expect(holmAdjusted([Double.nan, 0.02]).last == 0.02)
    }

    @Test func oneSeedHasNoInterval() {
        let r = pairedDifference([0.4])
        #expect(r.mean == 0.4 && r.tLow.isNaN && r.bootstrapLow.isNaN && r.pValue == 1)
    }
}

struct CompareRunsTests {
    /// A run of seed `seed` with variants bt and grm: accuracies, a best-of-n curve and a PPO curve.
    func run(seed: Int64, grmShift: Double, ppoMaxKL: Double = 12) -> CollectedRun {
        var r = CollectedRun(path: "run\(seed).h5", seed: seed, name: "exp", groupConfig: "{\"name\":\"exp\"}")
        for (v, shift) in [("bt", 0.0), ("grm", grmShift)] {
            r.rm[v] = ["id_accuracy": 0.6 + 0.01 * Double(seed) + shift, "ood_accuracy/hot": 0.55 + shift, "base_lm_accuracy": 0.5, "loss": 0.3]
            let bonKL = [0, 0.19, 0.88, 2.07]
            r.bon[v] = RunCurves(x: [1, 2, 4, 8], kl: bonKL, curves: ["gold_shifted": bonKL.map { $0 * (0.5 + shift) }])
            let kl = [0, 3, 6, ppoMaxKL]
            r.ppo[v] = RunCurves(x: [0, 10, 20, 30], kl: kl, curves: ["gold_shifted": [0, 1 + shift, 2 + shift, 1.5 + shift]])
        }
        return r
    }

    @Test func pairsBySeedAndReportsKnownDifferences() throws {
        let runs = [run(seed: 0, grmShift: 0.25), run(seed: 1, grmShift: 0.5), run(seed: 2, grmShift: 0.75)]
        let groups = try compareRuns(runs, options: CompareOptions(baseline: "bt", klPoints: [2, 12, 20]))
        #expect(groups.count == 1 && groups[0].seeds == [0, 1, 2] && groups[0].variants == ["grm"])
        let rows = Dictionary(uniqueKeysWithValues: groups[0].rows.map { ($0.metric, $0) })
        // Accuracies differ by the shift; the base model's accuracy and non-accuracies are not compared.
        #expect(abs(rows["rm/id_accuracy"]!.difference!.mean - 0.5) < 1e-12)
        #expect(rows["rm/base_lm_accuracy"] == nil && rows["rm/loss"] == nil)
        #expect(rows["rm/id_accuracy"]!.difference!.wins == 3 && rows["rm/id_accuracy"]!.difference!.pValue == 0.25)
        // Best-of-n gold at n = 8 differs by KL_8 · shift; n = 1 is not a row.
        #expect(abs(rows["bon/gold@n=8"]!.difference!.mean - 2.07 * 0.5) < 1e-12)
        #expect(rows["bon/gold@n=1"] == nil)
        // PPO gold at KL 2 interpolates (2/3 of the way to the step-10 point): 2/3 · shift.
        #expect(abs(rows["ppo/gold@kl=2"]!.difference!.mean - 2.0 / 3 * 0.5) < 1e-12)
        // KL 20 was reached by no run: a row that says so, without statistics.
        #expect(rows["ppo/gold@kl=20"]!.difference == nil && rows["ppo/gold@kl=20"]!.note == "KL 20 reached by 0 of 3 seeds")
        // Peak at KL 6, drop of 0.5 for both: differences shift and 0.
        #expect(abs(rows["ppo/gold_peak"]!.difference!.mean - 0.5) < 1e-12)
        #expect(rows["ppo/drop_from_peak"]!.difference!.mean == 0 && rows["ppo/drop_from_peak"]!.difference!.ties == 3)
        // Area up to the common KL 12: the shift is added over KL 3…12 and ramps in over 0…3: 0.5·(1.5 + 9).
        #expect(abs(rows["ppo/gold_area@kl<=12"]!.difference!.mean - 0.5 * 10.5) < 1e-9)
    }

    @Test func aKLPointSomeSeedsMissIsReportedNotCompared() throws {
        let runs = [run(seed: 0, grmShift: 0.1), run(seed: 1, grmShift: 0.2, ppoMaxKL: 8), run(seed: 2, grmShift: 0.3)]
        let groups = try compareRuns(runs, options: CompareOptions(baseline: "bt", klPoints: [10]))
        let row = groups[0].rows.first { $0.metric == "ppo/gold@kl=10" }!
        #expect(row.difference == nil && row.note == "KL 10 reached by 2 of 3 seeds")
        // The area is taken up to the smallest final KL of the group.
        #expect(groups[0].rows.contains { $0.metric == "ppo/gold_area@kl<=8" })
    }

    @Test func holmRunsOverTheVariantsOfAMetric() throws {
        var runs = [run(seed: 0, grmShift: 0.1), run(seed: 1, grmShift: 0.2), run(seed: 2, grmShift: 0.3)]
        for i in runs.indices { runs[i].rm["other"] = runs[i].rm["bt"]!.mapValues { $0 - 0.05 } }
        let groups = try compareRuns(runs, options: CompareOptions(baseline: "bt", metrics: ["rm/id_accuracy"]))
        let rows = groups[0].rows
        #expect(rows.map(\.variant) == ["grm", "other"])
        #expect(rows.allSatisfy { $0.difference!.pValue == 0.25 && $0.difference!.pHolm == 0.5 })
    }

    @Test func groupsNameTheSettingsThatSetThemApart() throws {
        var runs: [CollectedRun] = []
        for (noise, shift) in [(0.0, 0.1), (0.25, 0.3)] {
            for seed in Int64(0)...1 {
                var r = run(seed: seed, grmShift: shift)
                r.groupConfig = "{\"name\":\"exp\",\"data\":{\"label_noise\":\(noise),\"train_pairs\":6000},\"proxies\":[\"bt\",\"grm\"]}"
                runs.append(r)
            }
        }
        let groups = try compareRuns(runs, options: CompareOptions(baseline: "bt", metrics: ["rm/id_accuracy"]))
        #expect(groups.count == 2)
        #expect(Set(groups.map(\.settings)) == [["data.label_noise": "0"], ["data.label_noise": "0.25"]])
        let noisy = groups.first { $0.settings["data.label_noise"] == "0.25" }!
        #expect(abs(noisy.rows[0].difference!.mean - 0.3) < 1e-12)
        #expect(comparisonTable(groups).contains("(data.label_noise=0.25)"))
        // One group: nothing sets it apart.
        #expect(try compareRuns(Array(runs.prefix(2)), options: CompareOptions(baseline: "bt"))[0].settings.isEmpty)
    }

    @Test func unknownVariantsAreClearErrors() {
        let runs = [run(seed: 0, grmShift: 0.1)]
        #expect(throws: CollectError.self) { try compareRuns(runs, options: CompareOptions(baseline: "margin")) }
        #expect(throws: CollectError.self) { try compareRuns(runs, options: CompareOptions(baseline: "bt", variants: ["nope"])) }
    }
}
