// Collect.swift — `overopt collect`: many run files (seeds of the same configs) into one
// summary file with mean, std and sem across seeds and Gao et al.'s fits.
//
// Grouping: runs whose stored `config` (root attribute, JSON) is identical once the
// top-level `seed` is removed form a group (`base.seed` and every other key still count).
// Only complete files (root attribute `complete` = 1) are read.
//
// Summary schema, version 2 (version 1, written before @schema_version existed, named the
// mean `<c>_mean` and the spreads `<c>_std`, `<c>_sem`, per-seed scalars `<s>_values`):
//   /  @schema_version = 2, @kind = "summary", @overopt_version, @source (the folder's name,
//      never a full path), @created, @cpu, @blas_core, @kernels (the machine that
//      collected), @groups, @runs
//   /groups/<name>-<hash8>/           one per group; <hash8> = hash of the config minus seed
//     @config (JSON minus seed), @name, @seeds [int64], @count;  files (string, seed order)
//     bon/<variant>/                  best-of-n; every seed must have the same n grid
//       n (int64), kl                 the grid, KL_n = log n − (n−1)/n
//     bon/<variant>/select/<rule>/    a selection rule's curves (bon.select), the same
//                                     datasets; its kl the mean over seeds (soft's depends
//                                     on the samples)
//       seed (int64)                  the seeds, in the order of the per-seed rows
//       <curve>                       mean over seeds, for every curve of the run files'
//                                     /bon/<variant> (proxy, gold, gold_oracle, their
//                                     *_shifted, gold_<component>)
//       <curve>_std_over_seeds, <curve>_sem_over_seeds
//       <curve>_per_seed [seeds, n]   each seed's curve
//       @seeds, @count, @<c>_alpha, @<c>_beta, @<c>_r2   Gao fit d(α − βd) of the mean of
//                                     <c>_shifted for c in proxy, gold, gold_oracle
//     ppo/<variant>/                  PPO on a common KL grid (grpo/<variant>, rloo/<variant>
//                                     the same for GRPO and RLOO)
//       kl                            `kl_points` points from 0 to the smallest max KL over seeds
//       seed, <curve>, <curve>_std_over_seeds, _sem_over_seeds, _per_seed [seeds, kl]
//                                     each seed's curve vs its KL (k1), sorted by KL and
//                                     linearly interpolated onto the grid (constant beyond
//                                     its ends): proxy, gold, proxy_shifted, gold_shifted
//                                     (minus the step-0 value), gold_<component>, kl_k2,
//                                     kl_k3, length, entropy
//       @seeds, @count, @<c>_alpha, @<c>_beta, @<c>_r2   Gao fit d(α − β log d) of the mean
//                                     of <c>_shifted for c in proxy, gold
//       detectors/<name>/             the run files' detector scores (Detectors.swift):
//         seed, auroc, gold_lost      mean over seeds (auroc over the seeds where it is
//                                     defined, @auroc_count of them), <s>_std_over_seeds,
//                                     <s>_sem_over_seeds, <s>_per_seed [seeds] (NaN kept)
//     rm/<variant>/                   every scalar of the run files' /rm/<variant>
//       seed, <scalar>, <scalar>_std_over_seeds, _sem_over_seeds, _per_seed [seeds]
//                                     e.g. id_accuracy, ood_accuracy_mean,
//                                     ood_accuracy/hot_samples_sem_over_seeds
//       with @<c>_alpha_low, _alpha_high, _beta_low, _beta_high beside each fit: the 95%
//       percentile bootstrap interval over seeds (2000 resamples of the seeds, a fixed
//       resampling seed; NaN with one seed)
//   /scaling/                          only when the groups' configs differ in exactly one
//     @key, @x_name                    key outside `variants` (e.g. rm.base, data.train_pairs,
//                                      ppo.kl_coef): the fits against that key
//     <stage>/<variant>/  group, value (strings), x (the proxy's base parameters for rm.base,
//                         else the key's number), seeds; <c>_alpha, _alpha_low, _alpha_high,
//                         <c>_beta, _beta_low, _beta_high, <c>_r2 — one row per group, by x
// In run files `<curve>_sem` is the standard error over prompts; summaries keep the mean
// over seeds of those as `<curve>_sem_over_prompts`. Datasets carry `units` and
// `long_name`; `n`, `kl` (PPO) and `seed` are dimension scales (ResultSchema.swift).
// std uses n − 1; sem = std/√n; with one seed both are NaN.
import Foundation
import OverOptEngine
import OverOptHDF5

/// Curves of one variant in one run: x grid (n for best-of-n, step for PPO), KL and named curves.
public struct RunCurves: Sendable, Equatable {
    public var x: [Int64]
    public var kl: [Double]
    public var curves: [String: [Double]]
    public init(x: [Int64], kl: [Double], curves: [String: [Double]]) { self.x = x; self.kl = kl; self.curves = curves }
}

/// What `collect` reads from one complete run file.
public struct CollectedRun: Sendable {
    public var path: String
    public var seed: Int64
    public var name: String
    /// The config JSON without `seed`, canonical (sorted keys).
    public var groupConfig: String
    public var bon: [String: RunCurves] = [:]
    /// Per policy optimizer ("ppo", "grpo", "rloo"), its curves per variant.
    public var optimizers: [String: [String: RunCurves]] = [:]
    public var ppo: [String: RunCurves] {
        get { optimizers["ppo"] ?? [:] }
        set { optimizers["ppo"] = newValue }
    }
    /// Scalars per variant, e.g. "id_accuracy", "ood_accuracy/hot_samples".
    public var rm: [String: [String: Double]] = [:]
    /// Parameters of the language model each variant's proxy was fine-tuned from
    /// (`/rm/<variant>@base_parameters`; absent in older files).
    public var rmBaseParameters: [String: Int64] = [:]
    /// Detector scores per policy optimizer, variant and detector: (AUROC, gold lost).
    public var detectors: [String: [String: [String: (auroc: Double, goldLost: Double)]]] = [:]

    /// `<name>-<hash8>` of the config minus seed.
    public var groupName: String { "\(name)-\(String(format: "%016llx", RNG.stableHash(groupConfig)).prefix(8))" }
}

/// Errors of `collect`.
public struct CollectError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// PPO evaluation curves averaged by `collect` (besides `gold_<component>`).
let ppoEvalCurves = ["proxy", "gold", "kl_k2", "kl_k3", "length", "entropy"]

/// The config JSON `text` without its top-level `seed`, re-encoded with sorted keys.
public func configWithoutSeed(_ text: String) throws -> String {
    guard var tree = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw CollectError("the config attribute is not a JSON object")
    }
    tree["seed"] = nil
    let data = try JSONSerialization.data(withJSONObject: tree, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

/// Reads a complete run file; throws a reason when the file is not one.
public func readCollectedRun(path: String) throws -> CollectedRun {
    let f = try H5File.open(path)
    defer { f.close() }
    let root = f.root
    guard root.hasAttribute("complete"), (try? root.boolAttribute("complete")) == true else {
        throw CollectError("not complete (no root attribute complete = true)")
    }
    if root.hasAttribute("schema_version"), let v = try? root.intAttribute("schema_version"), v > resultSchemaVersion {
        throw CollectError("schema version \(v), newer than this build's \(resultSchemaVersion) (update overopt)")
    }
    guard root.hasAttribute("config") else { throw CollectError("no config attribute (not a run file)") }
    var run = CollectedRun(path: path, seed: try root.intAttribute("seed"),
                           name: (try? root.stringAttribute("name")) ?? "run",
                           groupConfig: try configWithoutSeed(try root.stringAttribute("config")))
    if root.contains("bon") {
        let bon = try root.group("bon")
        func curves(_ g: H5Group) throws -> RunCurves {
            var c = RunCurves(x: try g.readInt64s("n").values, kl: try g.readDoubles("kl").values, curves: [:])
            guard c.kl.count == c.x.count else {
                throw CollectError("\(g.path): kl has \(c.kl.count) values for \(c.x.count) values of n")
            }
            for name in try g.children() where !g.isGroup(name) && name != "n" && name != "kl" {
                let info = try g.datasetInfo(name)
                guard info.typeDescription.hasPrefix("float"), info.shape == [c.x.count] else { continue }
                c.curves[name.hasSuffix("_sem") ? "\(name)_over_prompts" : name] = try g.readDoubles(name).values
            }
            for base in ["proxy", "gold", "gold_oracle"] where c.curves["\(base)_shifted"] == nil {
                if let y = c.curves[base], let y0 = y.first { c.curves["\(base)_shifted"] = y.map { $0 - y0 } }
            }
            return c
        }
        for v in try bon.children() where bon.isGroup(v) {
            let g = try bon.group(v)
            run.bon[v] = try curves(g)
            // Selection rules (bon.select) as variants "<v>/select/<rule>": summarized under
            // /bon/<v>/select/<rule>, and compared with the plain curve by
            // `compare --baseline <v> --variants <v>/select/<rule>`.
            if g.contains("select") {
                let select = try g.group("select")
                for rule in try select.children() where select.isGroup(rule) {
                    run.bon["\(v)/select/\(rule)"] = try curves(try select.group(rule))
                }
            }
        }
    }
    for stage in policyOptimizerStages where root.contains(stage) {
        let section = try root.group(stage)
        for v in try section.children() where section.isGroup(v) {
            let g = try section.group(v)
            var c = RunCurves(x: try g.readInt64s("step").values, kl: try g.readDoubles("kl").values, curves: [:])
            guard !c.x.isEmpty, c.kl.count == c.x.count else { continue }
            for name in try g.children() where ppoEvalCurves.contains(name) || name.hasPrefix("gold_") {
                guard !g.isGroup(name), try g.datasetInfo(name).shape == [c.x.count] else { continue }
                c.curves[name] = try g.readDoubles(name).values
            }
            let start = c.x.firstIndex(of: 0) ?? 0
            for base in ["proxy", "gold"] {
                if let y = c.curves[base] { c.curves["\(base)_shifted"] = y.map { $0 - y[start] } }
            }
            run.optimizers[stage, default: [:]][v] = c
            if g.contains("detectors") {
                let d = try g.group("detectors")
                for name in try d.children() where d.isGroup(name) {
                    let dg = try d.group(name)
                    run.detectors[stage, default: [:]][v, default: [:]][name] = (try dg.doubleAttribute("auroc"), try dg.doubleAttribute("gold_lost"))
                }
            }
        }
    }
    if root.contains("rm") {
        let rm = try root.group("rm")
        for v in try rm.children() where rm.isGroup(v) {
            let g = try rm.group(v)
            run.rm[v] = try readScalars(g)
            if g.hasAttribute("base_parameters") { run.rmBaseParameters[v] = try g.intAttribute("base_parameters") }
        }
    }
    return run
}

/// Every scalar float dataset of `group` and, one level down, of its subgroups ("sub/name").
func readScalars(_ group: H5Group, prefix: String = "") throws -> [String: Double] {
    var out: [String: Double] = [:]
    for name in try group.children() {
        if group.isGroup(name) {
            if prefix.isEmpty { out.merge(try readScalars(try group.group(name), prefix: "\(name)/")) { a, _ in a } }
            continue
        }
        let info = try group.datasetInfo(name)
        guard info.typeDescription.hasPrefix("float"), info.shape.isEmpty || info.shape == [1] else { continue }
        out[prefix + name] = try group.readDoubles(name).values[0]
    }
    return out
}

// MARK: - Statistics of a group

/// Statistics of each named curve at each grid point.
public struct CurveStatistics: Sendable {
    /// n (best-of-n) or nothing (PPO).
    public var x: [Int64]
    public var kl: [Double]
    public var stats: [String: [SeedStatistics]]
    /// Each seed's curve on the grid, seed-major ([seed][point]), by curve name.
    public var perSeed: [String: [[Double]]] = [:]
}

/// Best-of-n curves across seeds: every run must have the same n grid. Curves missing in
/// some runs are left out.
public func summarizeBestOfN(_ runs: [RunCurves]) throws -> CurveStatistics {
    guard let first = runs.first else { throw CollectError("no runs") }
    for r in runs where r.x != first.x {
        throw CollectError("best-of-n n grids differ across seeds (\(first.x.count) vs \(r.x.count) points); use the same bon settings")
    }
    var stats: [String: [SeedStatistics]] = [:]
    var perSeed: [String: [[Double]]] = [:]
    for name in first.curves.keys where runs.allSatisfy({ $0.curves[name] != nil }) {
        stats[name] = first.x.indices.map { j in SeedStatistics(runs.map { $0.curves[name]![j] }) }
        perSeed[name] = runs.map { $0.curves[name]! }
    }
    // KL_n is the same for every seed (log n − (n−1)/n), except for soft best-of-n, whose KL
    // depends on the samples: then the mean over seeds.
    let kl = runs.allSatisfy({ $0.kl == first.kl }) ? first.kl
        : first.x.indices.map { j in runs.reduce(0) { $0 + $1.kl[j] } / Double(runs.count) }
    return CurveStatistics(x: first.x, kl: kl, stats: stats, perSeed: perSeed)
}

/// PPO curves across seeds on the common KL grid (`commonKLGrid`), each seed's curve
/// interpolated against its own KL (`interpolateLinear`).
public func summarizePPO(_ runs: [RunCurves], points: Int = 50) -> CurveStatistics {
    let grid = commonKLGrid(maxKLs: runs.map { $0.kl.max() ?? 0 }, points: points)
    var stats: [String: [SeedStatistics]] = [:]
    var perSeed: [String: [[Double]]] = [:]
    guard let first = runs.first else { return CurveStatistics(x: [], kl: grid, stats: [:]) }
    for name in first.curves.keys where runs.allSatisfy({ $0.curves[name] != nil }) {
        let onGrid = runs.map { interpolateLinear(x: $0.kl, y: $0.curves[name]!, at: grid) }
        stats[name] = grid.indices.map { j in SeedStatistics(onGrid.map { $0[j] }) }
        perSeed[name] = onGrid
    }
    return CurveStatistics(x: [], kl: grid, stats: stats, perSeed: perSeed)
}

// MARK: - Collect

/// What `collectResults` did.
public struct CollectReport: Sendable {
    public var runs = 0
    public var groups: [(name: String, seeds: [Int64])] = []
    /// Files not used, with the reason.
    public var skipped: [(path: String, reason: String)] = []
    /// The one config key the groups differ in, when there is one (`/scaling`).
    public var scalingKey: String?
    /// The scaling summary as printable lines.
    public var scalingLines: [String] = []
    /// The detectors' scores (mean ± sem over seeds) as printable lines.
    public var detectorLines: [String] = []
}

/// A detector's scores over the seeds of a group.
public struct DetectorSeedSummary: Sendable {
    public var name: String
    public var seeds: [Int64]
    /// Per seed, NaN where the AUROC is undefined (gold never fell, or always had).
    public var aurocPerSeed: [Double]
    public var goldLostPerSeed: [Double]
    /// Over the seeds where the AUROC is defined.
    public var auroc: SeedStatistics
    public var aurocCount: Int
    public var goldLost: SeedStatistics
}

/// The detectors of `stage`/`variant` across `runs` (seed order), by detector name.
public func summarizeDetectors(_ runs: [CollectedRun], stage: String, variant: String) -> [DetectorSeedSummary] {
    let names = Set(runs.flatMap { ($0.detectors[stage]?[variant] ?? [:]).keys }).sorted()
    return names.map { name in
        let members = runs.filter { $0.detectors[stage]?[variant]?[name] != nil }
        let scores = members.map { $0.detectors[stage]![variant]![name]! }
        let defined = scores.map(\.auroc).filter { !$0.isNaN }
        return DetectorSeedSummary(name: name, seeds: members.map(\.seed), aurocPerSeed: scores.map(\.auroc),
                                   goldLostPerSeed: scores.map(\.goldLost), auroc: SeedStatistics(defined), aurocCount: defined.count,
                                   goldLost: SeedStatistics(scores.map(\.goldLost)))
    }
}

/// Writes `detectors/<name>/` of a summary's optimizer group (layout in the file header).
func writeDetectorSummaries(_ summaries: [DetectorSeedSummary], to vg: H5Group) throws {
    guard !summaries.isEmpty else { return }
    let dg = try vg.createGroup("detectors")
    for d in summaries {
        let g = try dg.createGroup(d.name)
        try g.write("seed", d.seeds)
        try g.makeDimensionScale("seed")
        try g.setAttribute("units", "1", on: "seed")
        try g.setAttribute("long_name", "seed of the run", on: "seed")
        for (key, stats, perSeed, units, what) in [
            ("auroc", d.auroc, d.aurocPerSeed, "1", "AUROC of the detector's statistic for gold below its running peak − gold_drop"),
            ("gold_lost", d.goldLost, d.goldLostPerSeed, "reward", "gold at the peak − gold at the first alarm (at the end without one)"),
        ] {
            try g.write(key, [stats.mean], shape: [])
            try g.write("\(key)_std_over_seeds", [stats.std], shape: [])
            try g.write("\(key)_sem_over_seeds", [stats.sem], shape: [])
            try g.write("\(key)_per_seed", perSeed)
            try g.attachDimensionScale("seed", to: ["\(key)_per_seed"])
            for (suffix, words) in [("", "mean over seeds of"), ("_std_over_seeds", "standard deviation over seeds of"),
                                    ("_sem_over_seeds", "standard error over seeds of"), ("_per_seed", "each seed's")] {
                try g.setAttribute("units", units, on: key + suffix)
                try g.setAttribute("long_name", "\(words) \(what)", on: key + suffix)
            }
        }
        try g.setAttribute("auroc_count", Int64(d.aurocCount))
    }
}

/// One line per detector: AUROC and gold lost, mean ± sem over seeds.
public func detectorLines(_ summaries: [DetectorSeedSummary], label: String) -> [String] {
    summaries.map { d in
        let auroc = d.aurocCount == 0 ? "AUROC undefined" : "AUROC " + meanAndSem(d.auroc.mean, d.auroc.sem)
        return "\(label) \(d.name): \(auroc) (\(d.aurocCount) of \(d.seeds.count) seeds defined), gold lost "
            + meanAndSem(d.goldLost.mean, d.goldLost.sem)
    }
}

/// "m ± s" to three decimals, or only "m" where the sem is undefined (one seed).
public func meanAndSem(_ mean: Double, _ sem: Double) -> String {
    sem.isFinite ? String(format: "%.3f ± %.3f", mean, sem) : String(format: "%.3f", mean)
}

/// "[low, high]" to three decimals, or "[no interval]" where it is undefined (one seed).
public func intervalText(_ low: Double, _ high: Double) -> String {
    low.isFinite && high.isFinite ? String(format: "[%.3f, %.3f]", low, high) : "[no interval]"
}

/// Reads every complete `*.h5` run file directly in `directory`, groups them by config
/// minus seed and writes the summary (schema in the file header) atomically to `outputPath`.
public func collectResults(directory: String, outputPath: String, klPoints: Int = 50,
                           log: (String) -> Void = { _ in }) throws -> CollectReport {
    let (runs, skipped) = try readRunFolder(directory, excluding: outputPath, log: log)
    var report = try writeSummary(of: runs, source: directory, outputPath: outputPath, klPoints: klPoints, log: log)
    report.skipped = skipped
    return report
}

/// Every complete run file directly in `directory` (except `excluding`, the output being
/// written there), and the files skipped with their reason.
public func readRunFolder(_ directory: String, excluding: String? = nil,
                          log: (String) -> Void = { _ in }) throws -> (runs: [CollectedRun], skipped: [(path: String, reason: String)]) {
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isFolder) else {
        throw CollectError("\(directory): no such folder (expected a folder of run files)")
    }
    guard isFolder.boolValue else { throw CollectError("\(directory): is a file, expected a folder of run files") }
    let names: [String]
    do { names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted() } catch {
        throw CollectError("\(directory): cannot list the folder (is it readable?)")
    }
    let excluded = excluding.map(absolutePath)
    var runs: [CollectedRun] = [], skipped: [(path: String, reason: String)] = []
    for name in names where name.hasSuffix(".h5") && !name.hasPrefix(".") {
        let path = (directory as NSString).appendingPathComponent(name)
        if absolutePath(path) == excluded { continue }
        do { runs.append(try readCollectedRun(path: path)) } catch {
            skipped.append((path, "\(error)"))
            log("skipping \(path): \(error)")
        }
    }
    guard !runs.isEmpty else { throw CollectError("no complete run files in \(directory)") }
    return (runs, skipped)
}

/// Writes the summary of `runs` (read from the folder `source`) atomically to `outputPath`
/// (schema in the file header).
public func writeSummary(of runs: [CollectedRun], source directory: String, outputPath: String, klPoints: Int = 50,
                         log: (String) -> Void = { _ in }) throws -> CollectReport {
    var report = CollectReport()
    report.runs = runs.count
    let groups = Dictionary(grouping: runs, by: \.groupName).sorted { $0.key < $1.key }

    try writeAtomically(to: outputPath) { file in
        let root = file.root
        try root.setAttribute("schema_version", resultSchemaVersion)
        try root.setAttribute("kind", "summary")
        try root.setAttribute("overopt_version", overOptVersion)
        try root.setAttribute("source", (absolutePath(directory) as NSString).lastPathComponent)
        try root.setAttribute("created", ISO8601DateFormatter().string(from: Date()))
        let compute = ComputeEnvironment.current
        try root.setAttribute("cpu", compute.cpu)
        try root.setAttribute("blas_core", compute.blasCore)
        try root.setAttribute("kernels", compute.kernels)
        try root.setAttribute("groups", Int64(groups.count))
        try root.setAttribute("runs", Int64(runs.count))
        var fits: [String: [String: GaoFitInterval]] = [:]
        for (gname, members) in groups {
            let members = members.sorted { $0.seed < $1.seed }
            let g = try root.createGroup("groups/\(gname)")
            fits[gname] = try writeGroup(members, to: g, klPoints: klPoints, log: { log("\(gname): \($0)") })
            for stage in proxyOptimizerStages {
                for v in Set(members.flatMap { ($0.detectors[stage] ?? [:]).keys }).sorted() {
                    report.detectorLines += detectorLines(summarizeDetectors(members, stage: stage, variant: v), label: "\(gname) \(stage)/\(v)")
                }
            }
            report.groups.append((gname, members.map(\.seed)))
            log("\(gname): \(members.count) run(s), seeds \(members.map { String($0.seed) }.joined(separator: ","))")
        }
        if groups.count > 1, let key = singleDifferingKey(groups.map { $0.value[0].groupConfig }) {
            let rows = groups.map { ScalingRow(group: $0.key, config: $0.value[0].groupConfig, runs: $0.value, fits: fits[$0.key] ?? [:]) }
            report.scalingKey = key
            report.scalingLines = try writeScaling(key: key, rows: rows, to: root.createGroup("scaling"))
        }
    }
    return report
}

/// Writes one group's attributes, statistics and fits; returns the fits by
/// "<stage>/<variant>/<curve>".
@discardableResult
func writeGroup(_ runs: [CollectedRun], to g: H5Group, klPoints: Int, log: (String) -> Void) throws -> [String: GaoFitInterval] {
    var fits: [String: GaoFitInterval] = [:]
    let pretty = (try? JSONSerialization.jsonObject(with: Data(runs[0].groupConfig.utf8)))
        .flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .prettyPrinted]) }
        .map { String(decoding: $0, as: UTF8.self) } ?? runs[0].groupConfig
    try g.setAttribute("config", pretty)
    try g.setAttribute("name", runs[0].name)
    try g.setAttribute("seeds", runs.map(\.seed))
    try g.setAttribute("count", Int64(runs.count))
    try g.write("files", strings: runs.map { ($0.path as NSString).lastPathComponent })
    try g.setAttribute("units", "", on: "files")
    try g.setAttribute("long_name", "the group's run files, in seed order", on: "files")

    func variants<T>(_ kp: KeyPath<CollectedRun, [String: T]>) -> [String] {
        Array(Set(runs.flatMap { $0[keyPath: kp].keys })).sorted()
    }
    func writeStats(_ s: CurveStatistics, seeds: [Int64], to vg: H5Group) throws {
        try vg.write("seed", seeds)
        for (name, st) in s.stats.sorted(by: { $0.key < $1.key }) {
            try vg.write(name, st.map(\.mean))
            // A run's standard error over prompts: only its mean over seeds is kept.
            if name.hasSuffix("_sem_over_prompts") { continue }
            try vg.write("\(name)_std_over_seeds", st.map(\.std))
            try vg.write("\(name)_sem_over_seeds", st.map(\.sem))
            if let rows = s.perSeed[name] {
                try vg.write("\(name)_per_seed", rows.flatMap { $0 }, shape: [rows.count, st.count])
            }
        }
    }
    func writeFits(_ s: CurveStatistics, _ form: GaoForm, _ curves: [String], to vg: H5Group, label: String) throws {
        for c in curves {
            // Fitted to the mean over seeds, with bootstrap intervals over seeds.
            guard let rows = s.perSeed["\(c)_shifted"] else { continue }
            let f = bootstrapGaoFit(form, kl: s.kl, perSeed: rows)
            try vg.setAttribute("\(c)_alpha", f.fit.alpha)
            try vg.setAttribute("\(c)_beta", f.fit.beta)
            try vg.setAttribute("\(c)_r2", f.fit.r2)
            try vg.setAttribute("\(c)_alpha_low", f.alphaLow)
            try vg.setAttribute("\(c)_alpha_high", f.alphaHigh)
            try vg.setAttribute("\(c)_beta_low", f.betaLow)
            try vg.setAttribute("\(c)_beta_high", f.betaHigh)
            fits["\(label)/\(c)"] = f
        }
    }
    for v in variants(\.bon) {
        let members = runs.filter { $0.bon[v] != nil }
        let s: CurveStatistics
        do { s = try summarizeBestOfN(members.map { $0.bon[v]! }) } catch {
            log("best-of-n \(v) left out: \(error)")
            continue
        }
        let vg = try g.createGroup("bon/\(v)")
        try vg.write("n", s.x)
        try vg.write("kl", s.kl)
        try writeStats(s, seeds: members.map(\.seed), to: vg)
        try annotateSummaryCurves(vg, grid: "n", coordinate: "kl", stage: "bon")
        try vg.setAttribute("seeds", members.map(\.seed))
        try vg.setAttribute("count", Int64(members.count))
        try writeFits(s, .bestOfN, ["proxy", "gold", "gold_oracle"], to: vg, label: "bon/\(v)")
    }
    for stage in policyOptimizerStages {
        for v in Set(runs.flatMap { ($0.optimizers[stage] ?? [:]).keys }).sorted() {
            let members = runs.filter { $0.optimizers[stage]?[v] != nil }
            let s = summarizePPO(members.map { $0.optimizers[stage]![v]! }, points: klPoints)
            let vg = try g.createGroup("\(stage)/\(v)")
            try vg.write("kl", s.kl)
            try writeStats(s, seeds: members.map(\.seed), to: vg)
            try annotateSummaryCurves(vg, grid: "kl", coordinate: nil, stage: stage)
            try vg.setAttribute("seeds", members.map(\.seed))
            try vg.setAttribute("count", Int64(members.count))
            try writeFits(s, .rl, ["proxy", "gold"], to: vg, label: "\(stage)/\(v)")
            try writeDetectorSummaries(summarizeDetectors(members, stage: stage, variant: v), to: vg)
        }
    }
    for v in variants(\.rm) {
        let members = runs.filter { $0.rm[v] != nil }
        let vg = try g.createGroup("rm/\(v)")
        let keys = Set(members.flatMap { $0.rm[v]!.keys }).sorted()
        for k in keys where members.allSatisfy({ $0.rm[v]![k] != nil }) {
            let values = members.map { $0.rm[v]![k]! }
            let st = SeedStatistics(values)
            try vg.write(k, [st.mean], shape: [])
            try vg.write("\(k)_std_over_seeds", [st.std], shape: [])
            try vg.write("\(k)_sem_over_seeds", [st.sem], shape: [])
            try vg.write("\(k)_per_seed", values)
        }
        try vg.write("seed", members.map(\.seed))
        try annotateSummaryScalars(vg)
        try vg.setAttribute("seeds", members.map(\.seed))
        try vg.setAttribute("count", Int64(members.count))
    }
    return fits
}

// MARK: - Scaling summary

/// One group of a scaling summary: its name, config (minus seed), runs and fits.
struct ScalingRow {
    var group: String
    var config: String
    var runs: [CollectedRun]
    var fits: [String: GaoFitInterval]
}

/// Writes `/scaling` (layout in the file header): for every stage, variant and fitted curve
/// found in the groups, α, β (with their bootstrap intervals) and R² against the value of
/// `key`, rows sorted by x. x is the proxy's base parameters for `rm.base` (a default base
/// counts as the policy's), the key's number otherwise, else the group's position.
/// Returns printable lines.
func writeScaling(key: String, rows: [ScalingRow], to g: H5Group) throws -> [String] {
    try g.setAttribute("key", key)
    try g.setAttribute("x_name", key == "rm.base" ? "reward-model parameters" : key)
    var lines: [String] = []
    let labels = Set(rows.flatMap(\.fits.keys)).sorted()
    // "<stage>/<variant>/<curve>" → by stage and variant.
    let byVariant = Dictionary(grouping: labels) { String($0[..<$0.lastIndex(of: "/")!]) }
    for (sv, curves) in byVariant.sorted(by: { $0.key < $1.key }) {
        let variant = String(sv[sv.index(after: sv.firstIndex(of: "/")!)...])
        let present = rows.filter { r in curves.allSatisfy { r.fits[$0] != nil } }
        guard present.count > 1 else { continue }
        func x(_ r: ScalingRow, _ i: Int) -> Double {
            if key == "rm.base" { return r.runs.compactMap { $0.rmBaseParameters[variant] }.first.map(Double.init) ?? .nan }
            return configValue(r.config, key: key)?.number ?? Double(i)
        }
        let xs = present.enumerated().map { x($1, $0) }
        let order = present.indices.sorted { (xs[$0], present[$0].group) < (xs[$1], present[$1].group) }
        let sorted = order.map { present[$0] }
        let vg = try g.createGroup(sv)
        func write(_ name: String, _ values: [Double], _ units: String, _ longName: String) throws {
            try vg.write(name, values)
            try vg.setAttribute("units", units, on: name)
            try vg.setAttribute("long_name", longName, on: name)
        }
        try vg.write("group", strings: sorted.map(\.group))
        try vg.setAttribute("units", "", on: "group")
        try vg.setAttribute("long_name", "the summary group of each row", on: "group")
        try vg.write("value", strings: sorted.map { configValue($0.config, key: key)?.text ?? "default" })
        try vg.setAttribute("units", "", on: "value")
        try vg.setAttribute("long_name", "the value of \(key) in each group (default: unset)", on: "value")
        try write("x", order.map { xs[$0] }, key == "rm.base" ? "parameters" : "",
                  key == "rm.base" ? "parameters of the proxy's base language model" : key)
        try vg.write("seeds", sorted.map { Int64($0.fits[curves[0]]!.seeds) })
        try vg.setAttribute("units", "", on: "seeds")
        try vg.setAttribute("long_name", "seeds in each group", on: "seeds")
        for label in curves {
            let c = String(label[label.index(after: label.lastIndex(of: "/")!)...])
            let fs = sorted.map { $0.fits[label]! }
            let what = "Gao fit of the mean shifted \(c.replacingOccurrences(of: "_", with: " ")) score"
            try write("\(c)_alpha", fs.map(\.fit.alpha), "reward", "α of the \(what)")
            try write("\(c)_alpha_low", fs.map(\.alphaLow), "reward", "2.5% bootstrap quantile over seeds of α of the \(what)")
            try write("\(c)_alpha_high", fs.map(\.alphaHigh), "reward", "97.5% bootstrap quantile over seeds of α of the \(what)")
            try write("\(c)_beta", fs.map(\.fit.beta), "reward", "β of the \(what)")
            try write("\(c)_beta_low", fs.map(\.betaLow), "reward", "2.5% bootstrap quantile over seeds of β of the \(what)")
            try write("\(c)_beta_high", fs.map(\.betaHigh), "reward", "97.5% bootstrap quantile over seeds of β of the \(what)")
            try write("\(c)_r2", fs.map(\.fit.r2), "1", "R² of the \(what)")
            if c == "gold" {
                lines.append("\(sv) gold vs \(key):")
                for (i, (r, f)) in zip(sorted, fs).enumerated() {
                    var v = configValue(r.config, key: key)?.text ?? "default"
                    if key == "rm.base" { v += String(format: " (%.0f parameters)", xs[order[i]]) }
                    lines.append("  \(key) = \(v): α " + String(format: "%.3f ", f.fit.alpha) + intervalText(f.alphaLow, f.alphaHigh)
                                 + "  β " + String(format: "%.3f ", f.fit.beta) + intervalText(f.betaLow, f.betaHigh)
                                 + String(format: "  R² %.2f  (%d seed%@)", f.fit.r2, f.seeds, f.seeds == 1 ? "" : "s"))
                }
            }
        }
    }
    return lines
}
