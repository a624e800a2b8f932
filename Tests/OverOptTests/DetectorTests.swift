// Over-optimization detectors: AUROC against brute-force pair counting (with ties), the
// Mahalanobis distance against a direct computation with an explicitly inverted
// covariance, quantiles, slopes, the alarm rule and the gold lost on hand-made curves,
// the calibration's fit/threshold split, scoring, and the written layout read back.
import Foundation
import Testing
import OverOpt
import OverOptEngine
import OverOptHDF5

/// P(score₊ > score₋) + ½ P(score₊ = score₋) over every (positive, negative) pair.
func bruteForceAUROC(_ scores: [Double], _ labels: [Bool]) -> Double {
    var wins = 0.0, pairs = 0.0
    for i in scores.indices where labels[i] && !scores[i].isNaN {
        for j in scores.indices where !labels[j] && !scores[j].isNaN {
            pairs += 1
            wins += scores[i] > scores[j] ? 1 : scores[i] == scores[j] ? 0.5 : 0
        }
    }
    return pairs == 0 ? .nan : wins / pairs
}

/// The inverse of a symmetric positive-definite matrix by Gauss–Jordan elimination.
func invert(_ a: [[Double]]) -> [[Double]] {
    let n = a.count
    var m = a.enumerated().map { i, row in row + (0..<n).map { $0 == i ? 1.0 : 0.0 } }
    for c in 0..<n {
        let p = (c..<n).max { abs(m[$0][c]) < abs(m[$1][c]) }!
        m.swapAt(c, p)
        let d = m[c][c]
        m[c] = m[c].map { $0 / d }
        for r in 0..<n where r != c {
            let f = m[r][c]
            m[r] = zip(m[r], m[c]).map { $0 - f * $1 }
        }
    }
    return m.map { Array($0[n...]) }
}

@Suite struct DetectorMathTests {
    @Test func aurocMatchesBruteForcePairCountingWithTies() {
        var rng = RNG(seed: 4)
        for trial in 0..<200 {
            let n = 2 + rng.int(below: 30)
            // Few distinct values, so that ties are common; a few NaNs.
            let scores = (0..<n).map { _ in rng.int(below: 10) == 0 ? Double.nan : Double(rng.int(below: 1 + trial % 6)) }
            let labels = (0..<n).map { _ in rng.int(below: 3) == 0 }
            let a = auroc(scores: scores, labels: labels), b = bruteForceAUROC(scores, labels)
            #expect(a.isNaN == b.isNaN && (a.isNaN || abs(a - b) < 1e-12), "trial \(trial): \(a) vs \(b)")
        }
        #expect(auroc(scores: [1, 2, 3, 4], labels: [false, false, true, true]) == 1)
        #expect(auroc(scores: [1, 2, 3, 4], labels: [true, true, false, false]) == 0)
        #expect(auroc(scores: [5, 5, 5], labels: [true, false, false]) == 0.5)
        #expect(auroc(scores: [1, 2], labels: [true, true]).isNaN)
    }

    @Test func mahalanobisMatchesADirectComputation() throws {
        var rng = RNG(seed: 9)
        let D = 4
        // Correlated samples: z = A·u.
        let A = (0..<D).map { _ in (0..<D).map { _ in Double(rng.normal()) } }
        let samples = (0..<200).map { _ -> [Double] in
            let u = (0..<D).map { _ in Double(rng.normal()) }
            return (0..<D).map { i in (0..<D).reduce(0) { $0 + A[i][$1] * u[$1] } }
        }
        let ridge = 1e-3
        let fit = try #require(fitGaussian(samples, ridge: ridge))
        let n = Double(samples.count)
        let mean = (0..<D).map { d in samples.reduce(0) { $0 + $1[d] } / n }
        var cov = (0..<D).map { a in (0..<D).map { b in samples.reduce(0) { $0 + ($1[a] - mean[a]) * ($1[b] - mean[b]) } / (n - 1) } }
        let meanVariance = (0..<D).reduce(0) { $0 + cov[$1][$1] } / Double(D)
        for d in 0..<D { cov[d][d] += ridge * meanVariance }
        let inverse = invert(cov)
        for d in 0..<D { #expect(abs(fit.mean[d] - mean[d]) < 1e-12) }
        for _ in 0..<20 {
            let x = (0..<D).map { _ in 3 * Double(rng.normal()) }
            let diff = zip(x, mean).map { $0 - $1 }
            let direct = (0..<D).reduce(0.0) { s, a in s + (0..<D).reduce(0.0) { $0 + diff[a] * inverse[a][$1] * diff[$1] } }.squareRoot()
            #expect(abs(mahalanobisDistance(x, fit) - direct) < 1e-9 * (1 + direct))
        }
        // An identity covariance gives the Euclidean distance.
        let unit = GaussianFit(mean: [1, 2], cholesky: [1, 0, 0, 1])
        #expect(abs(mahalanobisDistance([4, 6], unit) - 5) < 1e-12)
        #expect(fitGaussian([[1, 2]]) == nil)
    }

    @Test func quantileInterpolatesBetweenOrderStatistics() {
        // numpy.quantile([1, 2, 3, 4, 10], q): 0.5 → 3, 0.95 → 8.8, 0 → 1, 1 → 10, 0.3 → 2.2.
        let v: [Double] = [10, 3, 1, 4, 2]
        #expect(quantile(v, 0.5) == 3)
        #expect(abs(quantile(v, 0.95) - 8.8) < 1e-12)
        #expect(quantile(v, 0) == 1 && quantile(v, 1) == 10)
        #expect(abs(quantile(v, 0.3) - 2.2) < 1e-12)
        #expect(outlierRate([1, 2, 3, 4], threshold: 2) == 0.5)
    }

    @Test func disagreementIsTheMeanMemberStd() {
        // Response 0: members 1, 2, 3 (population std √(2/3)); response 1: 5, 5, 5 (0).
        let d = ensembleDisagreement(memberScores: [[1, 5], [2, 5], [3, 5]])
        #expect(abs(d - (2.0 / 3).squareRoot() / 2) < 1e-12)
        #expect(ensembleDisagreement(memberScores: [[1, 2]]).isNaN)
    }

    @Test func slopesUseOnlyTheTrailingWindow() {
        // proxy = 2·KL for the first four points, then flat.
        let kl: [Double] = [0, 1, 2, 3, 4, 5, 6]
        let proxy: [Double] = [0, 2, 4, 6, 6, 6, 6]
        let s = trailingSlopes(kl: kl, proxy: proxy, window: 3)
        #expect(s[0].isNaN && s[1].isNaN)
        #expect(abs(s[2] - 2) < 1e-12 && abs(s[3] - 2) < 1e-12)
        #expect(abs(s[4] - 1) < 1e-12)          // points (2,4), (3,6), (4,6): slope 1
        #expect(abs(s[6]) < 1e-12)
        #expect(leastSquaresSlope(x: [1, 1], y: [0, 3]).isNaN)
    }

    @Test func goldDropLabelsFollowTheRunningPeak() {
        let gold: [Double] = [0, 1, 0.95, 0.8, 2, 1.7, 1.85]
        #expect(goldDropLabels(gold: gold, drop: 0.1) == [false, false, false, true, false, true, true])
        #expect(goldDropLabels(gold: gold, drop: 0.2) == [false, false, false, false, false, true, false])
    }

    @Test func goldLostOnHandMadeCurves() {
        let gold: [Double] = [0, 1, 3, 2, 1]
        // An alarm after the peak: 3 − 2.
        var o = earlyStopOutcome(gold: gold, alarms: [false, false, false, true, true])
        #expect(o == EarlyStopOutcome(peakIndex: 2, stopIndex: 3, alarmed: true, goldLost: 1))
        // Too early: stopping at gold 1 loses 2.
        o = earlyStopOutcome(gold: gold, alarms: [false, true, false, false, false])
        #expect(o.goldLost == 2 && o.stopIndex == 1)
        // At the peak: nothing lost.
        #expect(earlyStopOutcome(gold: gold, alarms: [false, false, true, true, false]).goldLost == 0)
        // Never: stop at the end.
        o = earlyStopOutcome(gold: gold, alarms: [false, false, false, false, false])
        #expect(o == EarlyStopOutcome(peakIndex: 2, stopIndex: 4, alarmed: false, goldLost: 2))
        // Ties at the peak: the first one is the peak.
        #expect(earlyStopOutcome(gold: [1, 3, 3], alarms: [false, false, false]).peakIndex == 1)
        // The alarm rule: strictly above, NaN never.
        #expect(alarms(statistic: [0.1, .nan, 0.2, 0.3], threshold: 0.2) == [false, false, false, true])
    }

    @Test func scoresOfAHandMadeRun() {
        // Gold peaks at evaluation 2 and falls; disagreement rises; the proxy flattens.
        let gold: [Double] = [0, 0.5, 1, 0.6, 0.2]
        let proxy: [Double] = [0, 1, 2, 2.2, 2.3]
        let kl: [Double] = [0, 1, 2, 3, 4]
        var config = DetectorConfig()
        config.goldDrop = 0.3; config.slopeWindow = 2; config.slopeFraction = 0.25; config.disagreementFactor = 2
        var record = DetectorRecord(config: config, calibration: DetectorCalibration(baseDisagreement: 0.1, distanceThreshold: 3))
        record.measured["ensemble_disagreement"] = [0.1, 0.12, 0.15, 0.25, 0.4]
        record.measured["latent_outlier_rate"] = [0.05, 0.05, 0.1, 0.3, 0.1]
        let scores = Dictionary(uniqueKeysWithValues: scoreDetectors(record, gold: gold, proxy: proxy, kl: kl).map { ($0.name, $0) })
        #expect(Set(scores.keys) == Set(detectorNames))
        // Labels: gold < running peak − 0.3 at evaluations 3 and 4.
        let d = scores["ensemble_disagreement"]!
        #expect(d.threshold == 0.2 && d.alarm == [false, false, false, true, true] && d.auroc == 1)
        #expect(abs(d.outcome.goldLost - 0.4) < 1e-12)
        let o = scores["latent_outlier_rate"]!
        #expect(o.threshold == config.outlierAlarmRate && o.alarm == [false, false, false, true, false])
        #expect(abs(o.auroc - bruteForceAUROC(record.measured["latent_outlier_rate"]!, [false, false, false, true, true])) < 1e-12)
        // Slopes over pairs: 1, 1, 0.2, 0.1; threshold −0.25 × 1; alarm at 0.2 (evaluation 3).
        let s = scores["proxy_slope"]!
        #expect(s.statistic[0].isNaN && abs(s.statistic[3] + 0.2) < 1e-12 && s.threshold == -0.25)
        #expect(s.alarm == [false, false, false, true, true] && s.outcome.stopIndex == 3)
        // A proxy without members or latents has only the slope.
        let plain = scoreDetectors(DetectorRecord(config: config, calibration: DetectorCalibration()), gold: gold, proxy: proxy, kl: kl)
        #expect(plain.map(\.name) == ["proxy_slope"])
    }

    /// The calibration fits the Gaussian on even samples and the threshold on odd ones: with
    /// latents that are the sample index, the fit's mean is the even samples' and the
    /// threshold the odd samples' distance quantile.
    @Test func calibrationSplitsFitAndThresholdSamples() throws {
        let world = try World()
        let prompts = Array(world.heldOutPrompts.prefix(3))
        let k = 4
        let responses: [[Int32]] = (0..<(3 * k)).map { [Int32($0 + 1)] }
        let probe = DetectorProbe(memberScores: { _, r in [r.map { Double($0[0]) }, r.map { Double($0[0]) * 2 }] },
                                  latents: { _, r in r.map { [Double($0[0]), Double($0[0] % 3)] } })
        let c = DetectorCalibration(probe: probe, prompts: prompts, responses: responses, quantile: 0.5)
        let z = responses.map { [Double($0[0]), Double($0[0] % 3)] }
        let even = z.indices.filter { ($0 % k) % 2 == 0 }.map { z[$0] }, odd = z.indices.filter { ($0 % k) % 2 == 1 }.map { z[$0] }
        let fit = try #require(fitGaussian(even))
        #expect(c.latentFit == fit)
        #expect(c.distanceThreshold == quantile(odd.map { mahalanobisDistance($0, fit) }, 0.5))
        // Members x and 2x: population std x/2, mean over responses 1…12 = 6.5/2.
        #expect(abs(c.baseDisagreement! - 3.25) < 1e-12)
    }

    @Test func configValidationNamesTheKey() {
        func message(_ edit: (inout DetectorConfig) -> Void) -> String {
            var c = DetectorConfig()
            edit(&c)
            do { try c.validate(); return "" } catch { return "\(error)" }
        }
        #expect(message { _ in } == "")
        #expect(message { $0.goldDrop = -1 }.contains("detectors.gold_drop"))
        #expect(message { $0.baseSamples = 1 }.contains("detectors.base_samples"))
        #expect(message { $0.outlierQuantile = 1 }.contains("detectors.outlier_quantile"))
        #expect(message { $0.outlierAlarmRate = 1 }.contains("detectors.outlier_alarm_rate"))
        #expect(message { $0.disagreementFactor = 0 }.contains("detectors.disagreement_factor"))
        #expect(message { $0.slopeWindow = 1 }.contains("detectors.slope_window"))
        #expect(message { $0.slopeFraction = .nan }.contains("detectors.slope_fraction"))
        #expect(configError { _ = try ExperimentConfig.load(path: nil, overrides: ["detectors.gold_drop=-0.5"]) }?
            .contains("detectors.gold_drop") == true)
    }
}

@Suite(.serialized) struct DetectorRunTests {
    /// A toy probe: two "members" (the token-count reward and a shifted copy) and a
    /// two-dimensional "latent" (response length and the count of token 5).
    func toyProbe() -> DetectorProbe {
        DetectorProbe(memberScores: { _, r in [r.map { Double($0.filter { $0 == 5 }.count) }, r.map { Double($0.filter { $0 == 5 }.count + $0.count % 3) }] },
                      latents: { _, r in r.map { [Double($0.count), Double($0.filter { $0 == 5 }.count)] } })
    }

    func ppoConfig() -> PPOConfig {
        var c = PPOConfig()
        c.steps = 4; c.evalEvery = 1; c.evalPrompts = 12; c.promptsPerStep = 8; c.minibatchSize = 4; c.maxNewTokens = 10
        c.learningRate = 1e-3
        return c
    }

    /// Detectors are measured at every evaluation, change nothing else of the run (the same
    /// curves as without them), are deterministic, and read back to the same written scores.
    @Test func ppoWithDetectorsKeepsTheRunAndRoundTrips() throws {
        var dc = DetectorConfig()
        dc.baseSamples = 4; dc.slopeWindow = 2
        let run = { (detectors: Bool) throws -> PolicyCurves in
            try PPOTrainer(config: self.ppoConfig(), world: testWorld, basePolicy: tinyPolicy(), scorer: tokenCountScorer(5), seed: 3,
                           detectors: detectors ? (self.toyProbe(), dc) : nil).run()
        }
        let with = try run(true), again = try run(true), without = try run(false)
        #expect(without.detectors == nil)
        var stripped = with
        stripped.detectors = nil
        stripped.seconds = without.seconds
        #expect(stripped == without, "detectors changed the run")
        #expect(with.detectors == again.detectors)
        let record = try #require(with.detectors)
        #expect(record.measured["ensemble_disagreement"]?.count == with.step.count)
        #expect(record.measured["latent_outlier_rate"]?.count == with.step.count)
        #expect(record.calibration.baseDisagreement != nil && record.calibration.distanceThreshold != nil)

        let path = NSTemporaryDirectory() + "overopt-detectors-\(UUID().uuidString).h5"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let f = try H5File.create(path)
        try with.write(to: f.root.createGroup("ppo/toy"))
        try annotateRunFile(f.root)
        let back = try PolicyCurves.read(from: f.root.group("ppo/toy"), config: ppoConfig(), detectors: dc)
        #expect(back.detectors == record)
        let d = try f.root.group("ppo/toy/detectors")
        #expect(try d.children().sorted() == detectorNames.sorted())
        #expect(try d.doubleAttribute("gold_drop") == dc.goldDrop)
        let expected = scoreDetectors(record, gold: with.gold, proxy: with.proxy, kl: with.kl)
        for s in expected {
            let g = try d.group(s.name)
            #expect(try g.readDoubles("statistic").values.elementsEqual(s.statistic) { $0 == $1 || ($0.isNaN && $1.isNaN) })
            #expect(try g.readInt64s("alarm").values == s.alarm.map { $0 ? 1 : 0 })
            #expect(try g.doubleAttribute("gold_lost") == s.outcome.goldLost)
            let a = try g.doubleAttribute("auroc")
            #expect(a == s.auroc || (a.isNaN && s.auroc.isNaN))
            #expect(try g.stringAttribute("units", on: "statistic") != "")
            #expect(try g.dimensionNames(of: "statistic").count == 1)
        }
        f.close()
    }
}

@Test func collectSummarizesDetectorScores() throws {
    let dir = try temporaryFolder("collect-detectors")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let scores: [(auroc: Double, goldLost: Double)] = [(0.8, 0.5), (0.6, 0.1), (.nan, 0.3)]
    for (seed, s) in scores.enumerated() {
        let path = (dir as NSString).appendingPathComponent("run-\(seed).h5")
        try writeToyRun(path, seed: seed, goldAtN: [0, 1, 2])
        let f = try H5File.open(path, writable: true)
        let g = try f.root.createGroup("ppo/bt/detectors/proxy_slope")
        try g.setAttribute("auroc", s.auroc)
        try g.setAttribute("gold_lost", s.goldLost)
        f.close()
    }
    let out = (dir as NSString).appendingPathComponent("summary.h5")
    let report = try collectResults(directory: dir, outputPath: out)
    #expect(report.detectorLines.count == 1 && report.detectorLines[0].contains("ppo/bt proxy_slope: AUROC 0.700"))
    let f = try H5File.open(out)
    defer { f.close() }
    let group = try f.root.group("groups").children()[0]
    let g = try f.root.group("groups/\(group)/ppo/bt/detectors/proxy_slope")
    // AUROC over the two seeds where it is defined: mean 0.7, sem 0.1; gold lost over three: mean 0.3, sem 0.2/√3.
    #expect(abs(try g.readDoubles("auroc").values[0] - 0.7) < 1e-12)
    #expect(abs(try g.readDoubles("auroc_sem_over_seeds").values[0] - 0.1) < 1e-12)
    #expect(try g.intAttribute("auroc_count") == 2)
    #expect(abs(try g.readDoubles("gold_lost").values[0] - 0.3) < 1e-12)
    #expect(abs(try g.readDoubles("gold_lost_sem_over_seeds").values[0] - 0.2 / 3.0.squareRoot()) < 1e-12)
    #expect(try g.readInt64s("seed").values == [0, 1, 2])
    #expect(try g.readDoubles("auroc_per_seed").values[2].isNaN)
}

@Test func summaryLinesSayWhatIsUndefinedInsteadOfPrintingNaN() throws {
    #expect(meanAndSem(0.25, 0.0125) == "0.250 ± 0.013")
    #expect(meanAndSem(0.25, .nan) == "0.250")
    #expect(intervalText(0.1, 0.2) == "[0.100, 0.200]")
    #expect(intervalText(.nan, .nan) == "[no interval]")
    // One seed whose AUROC is undefined: no mean, no sem.
    let dir = try temporaryFolder("collect-one-seed")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = (dir as NSString).appendingPathComponent("run-0.h5")
    try writeToyRun(path, seed: 0, goldAtN: [0, 1, 2])
    let f = try H5File.open(path, writable: true)
    let g = try f.root.createGroup("ppo/bt/detectors/proxy_slope")
    try g.setAttribute("auroc", Double.nan)
    try g.setAttribute("gold_lost", 0.062)
    f.close()
    let report = try collectResults(directory: dir, outputPath: (dir as NSString).appendingPathComponent("summary.h5"))
    let line = try #require(report.detectorLines.first)
    #expect(line.hasSuffix("ppo/bt proxy_slope: AUROC undefined (0 of 1 seeds defined), gold lost 0.062"), "\(line)")
    #expect(!line.lowercased().contains("nan"))
}
