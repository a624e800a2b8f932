// Detectors.swift — over-optimization detectors at every evaluation of a policy optimizer
// (PPO, GRPO, RLOO), and their scores against the exact gold.
//
// What it is: the orchestration around DetectorMath.swift. Before the first evaluation,
// `DetectorCalibration` draws fresh base-policy samples on the evaluation prompts
// (`base_samples` per prompt, the evaluation's sampling settings, their own RNG stream)
// and fits what the detectors compare against: the ensemble's disagreement on them, and
// for an InfoRM proxy the Gaussian of its latents (samples with an even index) and the
// Mahalanobis distance threshold (the `outlier_quantile` of the distances of the samples
// with an odd index, so that the threshold is not fitted on the samples the Gaussian was).
// At each evaluation `DetectorProbe.measure` reads the statistics from the evaluation's
// responses; after the run `scoreDetectors` adds the proxy's slope against KL (from the
// curves), applies the alarm rule and scores every detector against gold.
//
// Detectors, the statistic at evaluation t and its threshold (alarm when statistic > threshold):
//   ensemble_disagreement   mean over responses of the std of the members' rewards;
//                           threshold disagreement_factor × its value on the base samples
//   latent_outlier_rate     share of responses whose InfoRM latent is farther (Mahalanobis)
//                           from the base latents' Gaussian than the base threshold;
//                           threshold outlier_alarm_rate
//   proxy_slope             −(least-squares slope of proxy vs KL over the last slope_window
//                           evaluations); threshold −slope_fraction × the first window's
//                           slope, i.e. alarm once the proxy gains less than slope_fraction
//                           of what it gained per nat at the start
// Scores: AUROC of the statistic for "gold < running peak − gold_drop" (NaN statistics left
// out), and gold_lost = gold at the peak − gold at the first alarm (at the end if none).
import OverOptEngine
import OverOptHDF5

/// The settings of the detectors (`[detectors]`).
public struct DetectorConfig: ConfigSection, Equatable {
    /// δ: a detector should alarm once gold has fallen more than this below its running peak
    /// (gold reward units).
    public var goldDrop = 0.25
    /// Fresh base-policy samples per evaluation prompt for the calibration (half fit the
    /// latent Gaussian, half set the distance threshold).
    public var baseSamples = 4
    /// The quantile of the base samples' Mahalanobis distances above which a latent is an outlier.
    public var outlierQuantile = 0.95
    /// The outlier rate above which latent_outlier_rate alarms.
    public var outlierAlarmRate = 0.2
    /// ensemble_disagreement alarms above this multiple of its value on base samples.
    public var disagreementFactor = 1.5
    /// Evaluations in the proxy-vs-KL slope.
    public var slopeWindow = 4
    /// proxy_slope alarms once the slope falls below this share of the first window's.
    public var slopeFraction = 0.25

    public init() {}

    public static let section = "detectors"

    public static var schema: [ConfigKey<DetectorConfig>] { [
        .key("gold_drop", \.goldDrop, "δ: the label a detector should predict is \"gold is more than δ below its running peak\" (gold reward units; about the noise of a 64-prompt evaluation's mean gold)", .atLeast(0)),
        .key("base_samples", \.baseSamples, "fresh base-policy samples per evaluation prompt for the calibration (even-indexed ones fit the InfoRM latent Gaussian, odd-indexed ones set its distance threshold); drawn only for ensembles and `inform` proxies", .within(2, 64)),
        .key("outlier_quantile", \.outlierQuantile, "a latent is an outlier beyond this quantile of the base samples' Mahalanobis distances", .open(0, 1)),
        .key("outlier_alarm_rate", \.outlierAlarmRate, "`latent_outlier_rate` alarms above this share of outliers (≈ 1 − `outlier_quantile` on base samples)", .halfOpen(0, 1)),
        .key("disagreement_factor", \.disagreementFactor, "`ensemble_disagreement` alarms above this multiple of its value on the base samples", .above(0)),
        .key("slope_window", \.slopeWindow, "evaluations in the trailing least-squares slope of proxy vs KL", .within(2, 1000)),
        .key("slope_fraction", \.slopeFraction, "`proxy_slope` alarms once the slope falls below this share of the first window's"),
    ] }
}

/// The detector names, in the order they are written.
public let detectorNames = ["ensemble_disagreement", "latent_outlier_rate", "proxy_slope"]

/// What the detectors read from a proxy on (prompt, response) pairs: its members' scores
/// (ensembles) and its latent means (InfoRM). Nil closures: the detector does not apply.
public struct DetectorProbe: @unchecked Sendable {
    public var memberScores: (([Prompt], [[Int32]]) -> [[Double]])?
    public var latents: (([Prompt], [[Int32]]) -> [[Double]])?

    public init(memberScores: (([Prompt], [[Int32]]) -> [[Double]])? = nil, latents: (([Prompt], [[Int32]]) -> [[Double]])? = nil) {
        self.memberScores = memberScores; self.latents = latents
    }

    /// The probe of a proxy: member scores for ensembles (more than one member), latents for
    /// InfoRM proxies.
    public init(proxy: ProxyRewardModel, world: World) {
        if proxy.members.count > 1 { memberScores = { proxy.memberScores(world: world, prompts: $0, responses: $1) } }
        if proxy.latentDimension != nil { latents = { proxy.latentMeans(world: world, prompts: $0, responses: $1) } }
    }

    /// Whether any detector needs base-policy samples.
    var needsBaseSamples: Bool { memberScores != nil || latents != nil }
}

/// What the base-policy samples set: the ensemble's disagreement on them, the latent
/// Gaussian and the Mahalanobis distance threshold.
public struct DetectorCalibration: Sendable, Equatable {
    public var baseDisagreement: Double?
    public var latentFit: GaussianFit?
    public var distanceThreshold: Double?

    public init(baseDisagreement: Double? = nil, latentFit: GaussianFit? = nil, distanceThreshold: Double? = nil) {
        self.baseDisagreement = baseDisagreement; self.latentFit = latentFit; self.distanceThreshold = distanceThreshold
    }

    /// Calibrates on base responses `responses[j·k + s]` = sample s of `prompts[j]`
    /// (k = responses.count / prompts.count): disagreement on all of them; the Gaussian on
    /// the samples with even s, the distance threshold on those with odd s.
    public init(probe: DetectorProbe, prompts: [Prompt], responses: [[Int32]], quantile q: Double) {
        precondition(!prompts.isEmpty && responses.count % prompts.count == 0, "calibration: the same samples per prompt")
        let k = responses.count / prompts.count
        let repeated = prompts.flatMap { Array(repeating: $0, count: k) }
        if let scores = probe.memberScores { baseDisagreement = ensembleDisagreement(memberScores: scores(repeated, responses)) }
        if let latents = probe.latents {
            let z = latents(repeated, responses)
            let fitRows = z.indices.filter { ($0 % k) % 2 == 0 }, calibrationRows = z.indices.filter { ($0 % k) % 2 == 1 }
            latentFit = fitGaussian(fitRows.map { z[$0] })
            if let fit = latentFit {
                distanceThreshold = quantile(calibrationRows.map { mahalanobisDistance(z[$0], fit) }, q)
            }
        }
    }

    /// The statistics measured on one evaluation's responses.
    func measure(probe: DetectorProbe, prompts: [Prompt], responses: [[Int32]]) -> [String: Double] {
        var out: [String: Double] = [:]
        if let scores = probe.memberScores { out["ensemble_disagreement"] = ensembleDisagreement(memberScores: scores(prompts, responses)) }
        if let latents = probe.latents {
            if let fit = latentFit, let threshold = distanceThreshold {
                out["latent_outlier_rate"] = outlierRate(latents(prompts, responses).map { mahalanobisDistance($0, fit) }, threshold: threshold)
            } else {
                out["latent_outlier_rate"] = .nan
            }
        }
        return out
    }
}

/// The detectors of one run: settings, calibration and the statistics measured at every
/// evaluation (the proxy's slope is computed from the curves when scoring).
public struct DetectorRecord: Sendable, Equatable {
    public var config: DetectorConfig
    public var calibration: DetectorCalibration
    /// Per detector measured from responses, one value per evaluation.
    public var measured: [String: [Double]] = [:]

    /// The record keeps the calibration's thresholds, not its latent Gaussian.
    public init(config: DetectorConfig, calibration: DetectorCalibration) {
        self.config = config; self.calibration = calibration
        self.calibration.latentFit = nil
    }
}

/// A detector's alarm series and its scores against gold.
public struct DetectorScore: Sendable, Equatable {
    public var name: String
    /// One value per evaluation (larger = more alarming), NaN where undefined.
    public var statistic: [Double]
    public var threshold: Double
    public var alarm: [Bool]
    public var auroc: Double
    public var outcome: EarlyStopOutcome
    /// The alarm rule in words (written as an attribute).
    public var rule: String
}

/// Scores every detector that applies on evaluation curves (gold, proxy, KL per evaluation).
public func scoreDetectors(_ record: DetectorRecord, gold: [Double], proxy: [Double], kl: [Double]) -> [DetectorScore] {
    guard !gold.isEmpty else { return [] }
    let c = record.config
    let labels = goldDropLabels(gold: gold, drop: c.goldDrop)
    var out: [DetectorScore] = []
    func add(_ name: String, _ statistic: [Double], _ threshold: Double, _ rule: String) {
        let a = alarms(statistic: statistic, threshold: threshold)
        out.append(DetectorScore(name: name, statistic: statistic, threshold: threshold, alarm: a,
                                 auroc: auroc(scores: statistic, labels: labels), outcome: earlyStopOutcome(gold: gold, alarms: a), rule: rule))
    }
    if let s = record.measured["ensemble_disagreement"], s.count == gold.count {
        add("ensemble_disagreement", s, c.disagreementFactor * (record.calibration.baseDisagreement ?? .nan),
            "alarm when the mean std of the members' rewards exceeds disagreement_factor (\(c.disagreementFactor)) × its value on base-policy samples")
    }
    if let s = record.measured["latent_outlier_rate"], s.count == gold.count {
        add("latent_outlier_rate", s, c.outlierAlarmRate,
            "alarm when more than outlier_alarm_rate (\(c.outlierAlarmRate)) of the responses' latents lie beyond the \(c.outlierQuantile) quantile of base-policy samples' Mahalanobis distances")
    }
    let slopes = trailingSlopes(kl: kl, proxy: proxy, window: c.slopeWindow)
    let first = slopes.first { !$0.isNaN } ?? .nan
    add("proxy_slope", slopes.map { -$0 }, -c.slopeFraction * first,
        "statistic −d proxy/d KL over the last slope_window (\(c.slopeWindow)) evaluations; alarm once the slope falls below slope_fraction (\(c.slopeFraction)) × the first window's")
    return out
}

extension DetectorScore {
    /// Writes `statistic`, `alarm` (0/1) and the scores under `group` (`detectors/<name>`).
    func write(to g: H5Group, steps: [Int64], record: DetectorRecord) throws {
        try g.write("statistic", statistic)
        try g.write("alarm", alarm.map { $0 ? Int64(1) : 0 })
        try g.setAttribute("threshold", threshold)
        try g.setAttribute("auroc", auroc)
        try g.setAttribute("gold_lost", outcome.goldLost)
        try g.setAttribute("alarm_step", outcome.alarmed ? steps[outcome.stopIndex] : -1)
        try g.setAttribute("stop_step", steps[outcome.stopIndex])
        try g.setAttribute("peak_step", steps[outcome.peakIndex])
        try g.setAttribute("rule", rule)
        switch name {
        case "ensemble_disagreement": try g.setAttribute("base_level", record.calibration.baseDisagreement ?? .nan)
        case "latent_outlier_rate": try g.setAttribute("distance_threshold", record.calibration.distanceThreshold ?? .nan)
        default: break
        }
    }
}

extension DetectorRecord {
    /// Writes `detectors/<name>` for every detector that applies (layout in Detectors.swift's
    /// header and README), with @gold_drop on `detectors`.
    func write(to parent: H5Group, steps: [Int64], gold: [Double], proxy: [Double], kl: [Double]) throws {
        let g = try parent.createGroup("detectors")
        try g.setAttribute("gold_drop", config.goldDrop)
        for s in scoreDetectors(self, gold: gold, proxy: proxy, kl: kl) {
            try s.write(to: g.createGroup(s.name), steps: steps, record: self)
        }
    }

    /// Reads what `write` wrote: the measured statistics and the calibration (the scores are
    /// recomputed from the curves).
    static func read(from parent: H5Group, config: DetectorConfig) throws -> DetectorRecord? {
        guard parent.contains("detectors") else { return nil }
        let g = try parent.group("detectors")
        var calibration = DetectorCalibration()
        var measured: [String: [Double]] = [:]
        if g.contains("ensemble_disagreement") {
            let d = try g.group("ensemble_disagreement")
            measured["ensemble_disagreement"] = try d.readDoubles("statistic").values
            calibration.baseDisagreement = try d.doubleAttribute("base_level")
        }
        if g.contains("latent_outlier_rate") {
            let d = try g.group("latent_outlier_rate")
            measured["latent_outlier_rate"] = try d.readDoubles("statistic").values
            calibration.distanceThreshold = try d.doubleAttribute("distance_threshold")
        }
        var r = DetectorRecord(config: config, calibration: calibration)
        r.measured = measured
        return r
    }
}
