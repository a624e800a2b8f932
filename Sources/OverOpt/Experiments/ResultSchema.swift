// ResultSchema.swift — what makes result files self-describing (schema version 2): the
// `units` and `long_name` attributes of every dataset, and the HDF5 dimension scales that
// netCDF-4 readers (xarray) turn into named dimensions and coordinates.
//
// Run files (annotateRunFile), per section:
//   /base          curve_loss on dimension `curve_step`
//   /rm/<v>        loss, accuracy, learning_rate on `step`; member_loss, member_accuracy on
//                  (`member`, `step`), `member` = 0…k−1 written here for ensembles
//   /bon/<v>       every curve on `n`, with `kl` as its coordinate (attribute
//                  coordinates = "kl"); sample_proxy, sample_gold on (`prompt`, `sample`),
//                  both index datasets written here; picks/* on picks/n; select/<rule>/*
//                  (selection rules) as the plain curves, `kl` described by @kl_method
//   /ppo/<v>, /grpo/<v>, /rloo/<v>, /dpo/<loss>
//                  evaluation curves on `step` with coordinate `kl`; training curves
//                  (PolicyCurves.trainingCurveNames) on `train_step`; sample_* on `sample_step`;
//                  detectors/<name>/statistic and alarm on the group's `step`
// Summary files (annotateSummaryGroup): best-of-n on `n` (coordinate `kl`), PPO on `kl`
// (its common grid), per-seed curves on (`seed`, …) with `seed` written per variant.
import OverOptHDF5

/// The layout version of the run and summary files this build writes (root `@schema_version`).
/// Version 1 files (no such attribute) are still read by `collect`, `plot` and `inspect`.
public let resultSchemaVersion: Int64 = 2

/// Units and a readable name of a run-file dataset, from its section ("base", "data", "rm",
/// "bon", "ppo", "picks") and name. Scores are in the gold reward's units ("reward").
public func datasetDescription(section: String, name: String) -> (units: String, longName: String) {
    // GRPO and RLOO write PPO's datasets; their descriptions name the optimizer.
    if section != "ppo", policyOptimizerStages.contains(section) {
        let title = section.uppercased()
        switch name {
        case "policy_loss" where section == "dpo": return ("nats", "direct-alignment loss (DPO or IPO, the group's @loss), mean over the batch's pairs")
        case "train_reward" where section == "dpo": return ("1", "share of the batch's pairs whose chosen response the policy prefers more than the reference does")
        case "step" where section == "dpo": return ("1", "DPO step of the evaluation")
        case "proxy" where section == "dpo": return ("proxy reward", "the run's first proxy's score on held-out prompts (not used in training)")
        case "policy_loss": return ("1", section == "grpo" ? "GRPO loss (clipped ratio with group-relative advantages, plus β·KL estimator)"
                                                             : "RLOO loss (REINFORCE with the leave-one-out baseline)")
        case "kl_coef": return ("1", section == "grpo" ? "coefficient β of the KL term in the loss" : "coefficient β of the KL penalty in the reward")
        default:
            let d = datasetDescription(section: "ppo", name: name)
            return (d.units, d.longName.replacingOccurrences(of: "PPO", with: title))
        }
    }
    let component = GoldScore.componentNames.first { name == "gold_\($0)" }
    switch (section, name) {
    case ("base", "curve_step"): return ("1", "pretraining step")
    case ("base", "curve_loss"): return ("nats per token", "pretraining loss, mean since the previous point")
    case ("data", "train_gold_margin"): return ("reward", "gold(chosen) − gold(rejected) of each training pair (negative when flipped)")
    case ("rm", "step"): return ("1", "reward-model training step")
    case ("rm", "loss"): return ("nats", "training loss (mean over members)")
    case ("rm", "accuracy"): return ("1", "training batch accuracy (mean over members)")
    case ("rm", "learning_rate"): return ("1", "learning rate")
    case ("rm", "member"): return ("1", "ensemble member")
    case ("rm", "member_loss"): return ("nats", "training loss of each member")
    case ("rm", "member_accuracy"): return ("1", "training batch accuracy of each member")
    case ("rm", "id_accuracy"): return ("1", "accuracy against gold labels, in-distribution pairs")
    case ("rm", "ood_accuracy_mean"): return ("1", "accuracy against gold labels, mean over the OOD sets")
    case ("rm", let n) where n.hasPrefix("ood_accuracy/"): return ("1", "accuracy against gold labels, OOD set \(n.dropFirst(13))")
    case ("rm", "lm_preference_accuracy"): return ("1", "share of pairs whose chosen response the kept LM head prefers")
    case ("rm", "lm_nll"): return ("nats per token", "NLL of the kept LM head on chosen responses")
    case ("rm", "base_lm_preference_accuracy"): return ("1", "lm_preference_accuracy of the base policy")
    case ("rm", "base_lm_nll"): return ("nats per token", "lm_nll of the base policy")
    case ("rm", "reward_mean"): return ("proxy reward", "mean proxy score on base-policy samples")
    case ("rm", "reward_std"): return ("proxy reward", "standard deviation of the proxy score on base-policy samples")
    case ("rm", "train_seconds"): return ("s", "training wall-clock time")
    case ("rm", "pairs_per_second"): return ("1/s", "training pairs per second")
    case ("bon", "n"), ("picks", "n"): return ("1", "n of best-of-n")
    case ("bon", "kl"): return ("nats", "KL(best-of-n || base policy) = log n − (n − 1)/n")
    case ("bon", "prompt"): return ("1", "evaluation prompt index")
    case ("bon", "sample"): return ("1", "sample index within a prompt")
    case ("bon", "sample_proxy"): return ("proxy reward", "proxy score of each sample")
    case ("bon", "sample_gold"): return ("reward", "gold score of each sample")
    case ("ppo", "step"): return ("1", "PPO iteration of the evaluation")
    case ("ppo", "kl"): return ("nats", "KL(policy || initial policy), mean of Σ_t log π/π_ref (k1) on held-out prompts")
    case ("ppo", "kl_k2"): return ("nats", "KL estimate k2 = mean Σ_t ½ (log π/π_ref)²")
    case ("ppo", "kl_k3"): return ("nats", "KL estimate k3 = mean Σ_t (r − 1 − log r), r = π_ref/π")
    case ("ppo", "length"): return ("tokens", "mean response length on held-out prompts")
    case ("ppo", "entropy"): return ("nats per token", "mean per-token entropy of the policy on held-out prompts")
    case ("ppo", "train_step"): return ("1", "PPO iteration")
    case ("ppo", "policy_loss"): return ("1", "clipped PPO policy loss")
    case ("ppo", "value_loss"): return ("1", "value-head loss")
    case ("ppo", "train_reward"): return ("proxy reward", "mean raw proxy score of the rollouts")
    case ("ppo", "train_kl"): return ("nats", "KL(policy || initial policy) (k1) on the rollouts")
    case ("ppo", "clip_fraction"): return ("1", "share of tokens whose ratio was clipped")
    case ("ppo", "approx_kl"): return ("nats", "approximate KL(old policy || new policy) of the update")
    case ("ppo", "kl_coef"): return ("1", "per-token KL penalty coefficient")
    case ("ppo", "sample_step"): return ("1", "PPO iteration of the sample")
    case ("ppo", "sample_text"): return ("", "prompt → response [gold, proxy]")
    case ("ppo", "sample_prompt_id"), ("picks", "prompt_id"): return ("1", "prompt id (index into the world's prompts)")
    case ("ppo", "sample_proxy"): return ("proxy reward", "proxy score of the sample")
    case ("ppo", "sample_gold"): return ("reward", "gold score of the sample")
    case ("picks", "prompt"): return ("", "prompt text")
    case ("picks", "response"): return ("", "the response the proxy picks among the first n samples")
    case ("picks", "proxy"): return ("proxy reward", "proxy score of the pick")
    case ("picks", "gold"): return ("reward", "gold score of the pick")
    case ("picks", _) where component != nil: return ("reward", "gold \(component!) component of the pick")
    default: break
    }
    let stageName = section == "bon" ? "best-of-n" : "PPO (held-out prompts)"
    let what: String
    var base = name
    var suffix = ""
    if base.hasSuffix("_sem") { base.removeLast(4); suffix = ", standard error over prompts" }
    if base.hasSuffix("_shifted") { base.removeLast(8); suffix = " minus its value at the initial policy" + suffix }
    let units = base.hasPrefix("proxy") ? "proxy reward" : "reward"
    switch base {
    case "proxy": what = "proxy score"
    case "gold": what = "gold score"
    case "gold_oracle": what = "oracle gold score (the sample gold itself picks)"
    default:
        if let c = GoldScore.componentNames.first(where: { base == "gold_\($0)" }) { what = "gold \(c) component" } else {
            return ("1", name.replacingOccurrences(of: "_", with: " "))
        }
    }
    return (units, "\(stageName) \(what)\(suffix)")
}

/// Writes `units` and `long_name` on every dataset of `group` (and, one level down, of its
/// subgroups other than checkpoints), described as datasets of `section`.
func describeDatasets(in group: H5Group, section: String, prefix: String = "") throws {
    for name in try group.children() {
        if group.isGroup(name) {
            if prefix.isEmpty && name != "checkpoint" {
                let sub = try group.group(name)
                try describeDatasets(in: sub, section: name == "picks" ? "picks" : section, prefix: "\(name)/")
            }
            continue
        }
        // Picks are described by their own names; other subgroups' datasets by their path
        // ("ood_accuracy/hot_samples").
        let d = datasetDescription(section: section, name: section == "picks" ? name : prefix + name)
        try group.setAttribute("units", d.units, on: name)
        try group.setAttribute("long_name", d.longName, on: name)
    }
}

/// The datasets of `group` of exactly `shape`, other than `except`, sorted.
func datasets(in group: H5Group, ofShape shape: [Int], except: Set<String> = []) throws -> [String] {
    try group.children().filter { name in
        !except.contains(name) && !group.isGroup(name) && (try? group.datasetInfo(name).shape) == shape
    }.sorted()
}

/// Makes `scale` a dimension scale and attaches it to axis 0 of the 1-D datasets `names`
/// (other than itself); sets coordinates = `coordinate` on them (other than it) if given.
func attachScale(_ scale: String, in group: H5Group, to names: [String], coordinate: String? = nil) throws {
    try group.makeDimensionScale(scale)
    let targets = names.filter { $0 != scale }
    try group.attachDimensionScale(scale, to: targets)
    if let coordinate {
        for name in targets where name != coordinate { try group.setAttribute("coordinates", coordinate, on: name) }
    }
}

/// Adds an index dataset `name` = 0…count−1 (a dimension with no values of its own).
func writeIndex(_ name: String, count: Int, in group: H5Group) throws {
    try group.write(name, (0..<Int64(count)).map { $0 })
    try group.makeDimensionScale(name)
}

/// Units, long names and dimension scales of a run file (layout in the file header).
public func annotateRunFile(_ root: H5Group) throws {
    if root.contains("base") {
        let g = try root.group("base")
        if g.contains("curve_step") {
            let count = try g.datasetInfo("curve_step").shape
            try attachScale("curve_step", in: g, to: try datasets(in: g, ofShape: count))
        }
        try describeDatasets(in: g, section: "base")
    }
    if root.contains("data") { try describeDatasets(in: try root.group("data"), section: "data") }
    for section in ["rm", "bon"] + policyOptimizerStages where root.contains(section) {
        let s = try root.group(section)
        for v in try s.children() where s.isGroup(v) {
            let g = try s.group(v)
            switch section {
            case "rm": try annotateRewardModel(g)
            case "bon": try annotateBestOfN(g)
            default: try annotatePPO(g)
            }
            try describeDatasets(in: g, section: section)
            if section == "bon" { try annotateSelectionRules(g) }
        }
    }
}

/// The curves of each selection rule, /bon/<v>/select/<rule>: laid out and described as the
/// plain curves, with the KL the rule's own (`kl_method` attribute).
func annotateSelectionRules(_ g: H5Group) throws {
    guard g.contains("select") else { return }
    let select = try g.group("select")
    for rule in try select.children() where select.isGroup(rule) {
        let r = try select.group(rule)
        try annotateBestOfN(r)
        try describeDatasets(in: r, section: "bon")
        if r.contains("kl"), r.hasAttribute("kl_method") {
            try r.setAttribute("long_name", "KL(\(rule) selection || base policy): " + (try r.stringAttribute("kl_method")), on: "kl")
        }
    }
}

func annotateRewardModel(_ g: H5Group) throws {
    guard g.contains("step") else { return }
    let shape = try g.datasetInfo("step").shape
    try attachScale("step", in: g, to: try datasets(in: g, ofShape: shape))
    let members = ["member_loss", "member_accuracy"].filter { g.contains($0) }
    if let first = members.first {
        try writeIndex("member", count: try g.datasetInfo(first).shape[0], in: g)
        try g.attachDimensionScale("member", to: members, axis: 0)
        try g.attachDimensionScale("step", to: members, axis: 1)
    }
}

func annotateBestOfN(_ g: H5Group) throws {
    guard g.contains("n") else { return }
    let shape = try g.datasetInfo("n").shape
    try attachScale("n", in: g, to: try datasets(in: g, ofShape: shape), coordinate: "kl")
    let perSample = ["sample_proxy", "sample_gold"].filter { g.contains($0) }
    if let first = perSample.first {
        let s = try g.datasetInfo(first).shape
        try writeIndex("prompt", count: s[0], in: g)
        try writeIndex("sample", count: s[1], in: g)
        try g.attachDimensionScale("prompt", to: perSample, axis: 0)
        try g.attachDimensionScale("sample", to: perSample, axis: 1)
    }
    if g.contains("picks") {
        let p = try g.group("picks")
        if p.contains("n") { try attachScale("n", in: p, to: try datasets(in: p, ofShape: try p.datasetInfo("n").shape)) }
    }
}

func annotatePPO(_ g: H5Group) throws {
    guard g.contains("step"), g.contains("train_step") else { return }
    let all = try g.children().filter { !g.isGroup($0) }
    let samples = all.filter { $0.hasPrefix("sample_") }
    let training = all.filter { PolicyCurves.trainingCurveNames.contains($0) || $0 == "train_step" }
    let evaluation = try datasets(in: g, ofShape: try g.datasetInfo("step").shape, except: Set(samples + training))
    try attachScale("step", in: g, to: evaluation, coordinate: "kl")
    try attachScale("train_step", in: g, to: training)
    if g.contains("sample_step") { try attachScale("sample_step", in: g, to: samples) }
    if g.contains("detectors") { try annotateDetectors(try g.group("detectors"), step: g.path + "/step") }
}

/// Units, long names and the evaluation `step` scale of `detectors/<name>/{statistic, alarm}`.
func annotateDetectors(_ g: H5Group, step: String) throws {
    for name in try g.children() where g.isGroup(name) {
        let d = try g.group(name)
        let present = ["statistic", "alarm"].filter { d.contains($0) }
        try d.attachDimensionScale(step, to: present)
        let statistic = detectorStatisticDescription(name)
        if d.contains("statistic") {
            try d.setAttribute("units", statistic.units, on: "statistic")
            try d.setAttribute("long_name", statistic.longName, on: "statistic")
        }
        if d.contains("alarm") {
            try d.setAttribute("units", "1", on: "alarm")
            try d.setAttribute("long_name", "1 where the statistic is above the detector's threshold (@threshold), else 0", on: "alarm")
        }
    }
}

/// Units and a readable name of a detector's statistic.
func detectorStatisticDescription(_ name: String) -> (units: String, longName: String) {
    switch name {
    case "ensemble_disagreement": return ("proxy reward", "mean over held-out responses of the standard deviation of the ensemble members' rewards")
    case "latent_outlier_rate": return ("1", "share of held-out responses whose InfoRM latent lies beyond the base samples' Mahalanobis distance threshold")
    case "proxy_slope": return ("proxy reward per nat", "minus the least-squares slope of the proxy against KL over the last evaluations")
    default: return ("1", name.replacingOccurrences(of: "_", with: " "))
    }
}

// MARK: - Summaries

/// Statistic suffixes of summary datasets and how their long names say it.
let summaryStatistics: [(suffix: String, words: String)] = [
    ("_std_over_seeds", "standard deviation over seeds of"), ("_sem_over_seeds", "standard error over seeds of"),
    ("_per_seed", "each seed's"),
]

/// Units and long name of a summary dataset of `section` ("bon", "ppo", "rm").
public func summaryDatasetDescription(section: String, name: String) -> (units: String, longName: String) {
    switch name {
    case "seed": return ("1", "seed of the run")
    case "kl" where policyOptimizerStages.contains(section): return ("nats", "common KL grid, KL(policy || initial policy) (k1)")
    case "n", "kl": return datasetDescription(section: section, name: name)
    default: break
    }
    var base = name
    var words = "mean over seeds of"
    if let s = summaryStatistics.first(where: { name.hasSuffix($0.suffix) }) {
        base.removeLast(s.suffix.count)
        words = s.words
    }
    if base.hasSuffix("_over_prompts") { base.removeLast("_over_prompts".count) }
    let d = datasetDescription(section: section, name: base)
    return (d.units, "\(words) \(d.longName)")
}

/// Dimension scales (`grid`, and `seed` for the per-seed rows), coordinates and
/// descriptions of a summary's bon/<v> or ppo/<v> group.
func annotateSummaryCurves(_ g: H5Group, grid: String, coordinate: String?, stage: String) throws {
    let points = try g.datasetInfo(grid).shape
    try attachScale(grid, in: g, to: try datasets(in: g, ofShape: points, except: ["seed"]), coordinate: coordinate)
    try g.makeDimensionScale("seed")
    let perSeed = try g.children().filter { $0.hasSuffix("_per_seed") }.sorted()
    try g.attachDimensionScale("seed", to: perSeed, axis: 0)
    try g.attachDimensionScale(grid, to: perSeed, axis: 1)
    for name in perSeed { if let coordinate { try g.setAttribute("coordinates", coordinate, on: name) } }
    for name in try g.children() where !g.isGroup(name) {
        let d = summaryDatasetDescription(section: stage, name: name)
        try g.setAttribute("units", d.units, on: name)
        try g.setAttribute("long_name", d.longName, on: name)
    }
}

/// The `seed` scale of a summary's rm/<v> group on its per-seed values (also those of its
/// ood_accuracy subgroup), and descriptions.
func annotateSummaryScalars(_ g: H5Group) throws {
    try g.makeDimensionScale("seed")
    try g.attachDimensionScale("seed", to: try g.children().filter { !g.isGroup($0) && $0.hasSuffix("_per_seed") })
    for name in try g.children() {
        if g.isGroup(name) {
            let sub = try g.group(name)
            // The subgroup's per-seed values use the variant's `seed` dimension (netCDF groups
            // see their parents' dimensions).
            try sub.attachDimensionScale((g.path == "/" ? "" : g.path) + "/seed", to: try sub.children().filter { !sub.isGroup($0) && $0.hasSuffix("_per_seed") })
            for leaf in try sub.children() where !sub.isGroup(leaf) {
                let d = summaryDatasetDescription(section: "rm", name: "\(name)/\(leaf)")
                try sub.setAttribute("units", d.units, on: leaf)
                try sub.setAttribute("long_name", d.longName, on: leaf)
            }
            continue
        }
        let d = summaryDatasetDescription(section: "rm", name: name)
        try g.setAttribute("units", d.units, on: name)
        try g.setAttribute("long_name", d.longName, on: name)
    }
}
