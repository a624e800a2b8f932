// ExperimentConfig.swift — one run's complete configuration, and how it is resolved.
//
// A config file (TOML) lists only what it changes; everything else comes from the
// defaults below, which are the built-in quick-start experiment. Resolution order:
// defaults < file < `--set key=value` overrides < `--seed`. Every key is declared once in
// its section's schema (ConfigSchema.swift); every key, value type and range is checked
// before any work starts, and every problem found is reported at once.
//
// Proxy variants are named. Built-in names map to reward-model settings layered over the
// `[rm]` table (e.g. "grm-sft" = objective grm, regularizer sft); a `[variants.NAME]`
// table defines or refines a variant with any `[rm]` key.
import Foundation
import OverOptEngine

/// The configuration of one run (one seed).
public struct ExperimentConfig: ConfigSection, Equatable {
    /// A label for the experiment (stored in the result file).
    public var name = "quickstart"
    /// Seed of the preference data, proxies, best-of-n samples and PPO. The base policy has
    /// its own seed (`base.seed`) so runs of a sweep share one.
    public var seed: UInt64 = 0
    /// Proxy variants to train, by name (built-in or defined in `[variants.NAME]`).
    public var proxies = ["bt", "ensemble", "grm-sft"]
    /// Optimization stages: "bon", "ppo", "grpo", "rloo" (each against every proxy) and "dpo"
    /// (once, on the preference data).
    public var stages = ["bon", "ppo"]
    /// Store each trained proxy's weights under `/rm/<variant>/checkpoint`.
    public var saveCheckpoints = false
    public var world = WorldConfig()
    public var base = BasePolicyConfig()
    public var data = PreferenceDataConfig()
    /// Reward-model settings shared by every variant.
    public var rm = RewardModelConfig()
    /// The resolved reward-model settings of each proxy in `proxies`.
    public var variants: [String: RewardModelConfig] = [:]
    public var bon = BestOfNConfig()
    public var ppo = PPOConfig()
    public var grpo = GRPOConfig()
    public var rloo = RLOOConfig()
    public var dpo = DPOConfig()
    /// Over-optimization detectors at every evaluation of PPO, GRPO and RLOO.
    public var detectors = DetectorConfig()

    public init() {}

    public static let section = ""

    public static var schema: [ConfigKey<ExperimentConfig>] { [
        .key("name", \.name, "label; part of the result file name", .check(
            "1–100 letters, digits, '.', '_' or '-', not starting with '.' (it starts the result file's name)") { _, name in
                !name.isEmpty && name.count <= 100 && !name.hasPrefix(".") && name.allSatisfy(safeNameCharacters.contains) }),
        .key("seed", \.seed, "seed of preference data, proxies, best-of-n samples and PPO"),
        .key("proxies", \.proxies, "proxy variants to train (built-in names below, or `[variants.NAME]`)", .nonEmpty, .distinct),
        .key("stages", \.stages, "optimization stages: `bon`, `ppo`, `grpo`, `rloo` (each against every proxy) and `dpo` (once, on the preference data)",
             .check("each one of " + validStages.joined(separator: ", ")) { $1.allSatisfy(validStages.contains) }, .distinct),
        .key("save_checkpoints", \.saveCheckpoints, "store each trained proxy's weights under `/rm/<variant>/checkpoint`"),
        .section("world", \.world, "the world itself (see docs/world.md)"),
        .section("base", \.base, "base policy pretraining (cached; shared by every seed)"),
        .section("data", \.data, "preference data"),
        .section("rm", \.rm, "every proxy"),
        .hidden("variants", \.variants),
        .section("bon", \.bon, "best-of-n"),
        .section("ppo", \.ppo, "PPO against each proxy"),
        .section("grpo", \.grpo, "GRPO against each proxy"),
        .section("rloo", \.rloo, "RLOO against each proxy"),
        .section("dpo", \.dpo, "direct alignment"),
        .section("detectors", \.detectors, "over-optimization detectors"),
    ] }

    /// The stages a config may list.
    static let validStages = ["bon"] + policyOptimizerStages
    /// The characters of a `name` (it starts every result file's name, so that it can neither
    /// leave the output folder nor, without a leading '.', hide the file).
    static let safeNameCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

    /// Reward-model settings of the built-in variant names, layered over `[rm]`.
    public static let builtinVariants: [String: [String: String]] = [
        "bt": ["objective": "bt"],
        "margin": ["objective": "margin"],
        "label-smoothing": ["objective": "label-smoothing"],
        "frozen": ["objective": "frozen", "head": "mlp"],
        "ensemble": ["objective": "ensemble", "combiner": "mean"],
        "ensemble-min": ["objective": "ensemble", "combiner": "min"],
        "ensemble-uwo": ["objective": "ensemble", "combiner": "uwo"],
        "warm": ["objective": "warm"],
        "grm-sft": ["objective": "grm", "regularizer": "sft"],
        "grm-sft-nll": ["objective": "grm", "regularizer": "sft-nll"],
        "grm-dpo": ["objective": "grm", "regularizer": "dpo"],
        "grm-dpo-noref": ["objective": "grm", "regularizer": "dpo-noref"],
        "inform": ["objective": "inform"],
    ]

    /// Resolves each proxy name to its reward-model settings: `[rm]`, then the built-in
    /// variant's settings, then the user's `[variants.NAME]` table (`user`, already read once
    /// for its own problems). A variant's problems are reported as `variants.NAME.<key>`,
    /// except those `[rm]` has too (reported once, as `rm.<key>`).
    static func resolveVariants(_ names: [String], rm: RewardModelConfig, user: [String: ConfigTree], report: inout ConfigReport) -> [String: RewardModelConfig] {
        var out: [String: RewardModelConfig] = [:]
        let rmProblems = Set(RewardModelConfig.problems(rm).map { $0.key.dropFirst("rm.".count) })
        for name in names {
            guard builtinVariants[name] != nil || user[name] != nil else {
                let known = Set(builtinVariants.keys).union(user.keys).sorted()
                report.problems.append(ConfigProblem(key: "proxies", value: jsonString(name),
                                                     expected: "a variant: one of \(known.joined(separator: ", ")) (or define [variants.\(name)])"))
                continue
            }
            var cfg = rm, ignored = ConfigReport()
            RewardModelConfig.read((builtinVariants[name] ?? [:]) as ConfigTree, prefix: "variants.\(name)", into: &cfg, report: &ignored)
            RewardModelConfig.read(user[name] ?? [:], prefix: "variants.\(name)", into: &cfg, report: &ignored)
            cfg = cfg.resolvingInformKeys
            let prefix = "variants.\(name)"
            report.problems += RewardModelConfig.problems(cfg, prefix: prefix).filter { !rmProblems.contains($0.key.dropFirst(prefix.count + 1)) }
            out[name] = cfg
        }
        return out
    }

    /// Loads a config: the defaults, then `path` (if any), then `overrides` ("a.b=value"),
    /// then `seed` (if any). Throws a `ConfigError` listing every problem found. Deprecated
    /// key spellings go to `deprecation` (by default printed once per process to stderr).
    public static func load(path: String?, overrides: [String] = [], seed: UInt64? = nil,
                            deprecation: (String) -> Void = printDeprecationOnce) throws -> ExperimentConfig {
        var user: ConfigTree = [:]
        var report = ConfigReport()
        let source = (path ?? "the built-in quick-start config") + (overrides.isEmpty ? "" : " (with --set overrides)")
        if let path {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigError.file(path: path, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
            }
            user = try parseTOML(String(decoding: data, as: UTF8.self), source: path, report: &report)
        }
        try applyOverrides(overrides, to: &user)
        if let seed { user["seed"] = seed }

        // `[variants.NAME]` tables: each read once for its own problems (unknown keys, types).
        var variantTables: [String: ConfigTree] = [:]
        if let v = user.removeValue(forKey: "variants") {
            if let tables = v as? ConfigTree {
                for (name, entry) in tables.sorted(by: { $0.key < $1.key }) {
                    guard let t = entry as? ConfigTree else {
                        report.problems.append(ConfigProblem(key: "variants.\(name)", value: tomlLiteral(entry), expected: "a table [variants.\(name)]"))
                        continue
                    }
                    var scratch = RewardModelConfig()
                    RewardModelConfig.read(t, prefix: "variants.\(name)", into: &scratch, report: &report)
                    variantTables[name] = t
                }
            } else {
                report.problems.append(ConfigProblem(key: "variants", value: tomlLiteral(v), expected: "a table of named tables [variants.NAME]"))
            }
        }
        var config = ExperimentConfig()
        read(user, prefix: "", into: &config, report: &report)
        report.problems += problems(config, prefix: "")
        config.variants = resolveVariants(config.proxies, rm: config.rm, user: variantTables, report: &report)
        report.problems += config.crossSectionProblems(checkMemory: report.problems.isEmpty)
        for note in report.deprecations { deprecation(note) }
        if !report.problems.isEmpty { throw ConfigError(source: source, problems: report.problems) }
        return config
    }

    /// Every problem of the resolved config (its keys, its variants, and the relations
    /// between sections), thrown as one `ConfigError`.
    public func validate() throws {
        var found = Self.problems(self, prefix: "")
        for name in proxies {
            if let v = variants[name] {
                found += RewardModelConfig.problems(v, prefix: "variants.\(name)")
            } else {   // not resolved yet: a built-in name over `[rm]`
                var report = ConfigReport()
                _ = Self.resolveVariants([name], rm: rm, user: [:], report: &report)
                found += report.problems
            }
        }
        found += crossSectionProblems(checkMemory: found.isEmpty)
        if !found.isEmpty { throw ConfigError(source: nil, problems: found) }
    }

    /// Problems between sections: response lengths beyond the world's, and (when asked, once
    /// every size is valid) a memory estimate beyond the machine's.
    func crossSectionProblems(checkMemory: Bool) -> [ConfigProblem] {
        var out: [ConfigProblem] = []
        for (section, tokens) in [("ppo", ppo.maxNewTokens), ("grpo", grpo.maxNewTokens), ("rloo", rloo.maxNewTokens), ("dpo", dpo.maxNewTokens)]
        where tokens > world.maxResponseTokens {
            out.append(ConfigProblem(key: "\(section).max_new_tokens", value: "\(tokens)",
                                     expected: "≤ world.max_response_tokens (\(world.maxResponseTokens))"))
        }
        if checkMemory, let problem = memoryProblem(limit: Double(ProcessInfo.processInfo.physicalMemory)) { out.append(problem) }
        return out
    }

    /// A rough upper estimate, in bytes, of what the config's sizes make the run hold at
    /// once, by the keys that drive it: token sequences (a sequence of the world's maximum
    /// length as Int32 plus its array's overhead), sampled texts with their scores, and a
    /// training batch's activations (≈ 40 floats per token and channel per layer, with the
    /// logits). Computed in Double, so that absurd sizes cannot overflow.
    public func memoryEstimate() -> [(key: String, bytes: Double)] {
        let T = Double(1 + world.maxPromptTokens + 1 + world.maxResponseTokens)
        let sequence = 4 * T + 64
        func perToken(_ preset: String) -> Double {
            let model = TransformerConfig.preset(preset, vocabSize: 200) ?? TransformerConfig.preset("small", vocabSize: 200)!
            return Double(model.layers) * 40 * Double(model.width) * 4 + Double(model.vocabSize) * 8
        }
        // A proxy's activations are those of its own base (`rm.base`), the largest of them.
        let rmPerToken = variants.values.map { perToken($0.base ?? base.preset) }.max() ?? perToken(rm.base ?? base.preset)
        var out: [(String, Double)] = [
            ("base.corpus_size", Double(base.corpusSize) * sequence),
            ("base.eval_sequences", Double(base.evalSequences) * sequence),
            ("data.train_pairs", Double(data.trainPairs) * 2 * (sequence + 16)),
            ("data.eval_pairs", Double(data.evalPairs) * 4 * 2 * (sequence + 16)),
            ("bon.samples_per_prompt × bon.prompts", Double(bon.prompts) * Double(bon.samplesPerPrompt) * (sequence + 8 * Double(proxies.count + 8))),
            ("base.batch_size", Double(base.batchSize) * T * perToken(base.preset)),
            ("rm.batch_size", Double(rm.batchSize) * 2 * T * rmPerToken),
            ("ppo.prompts_per_step", Double(ppo.promptsPerStep) * (sequence + T * perToken(base.preset) / 4)),
            ("ppo.eval_prompts", Double(ppo.evalPrompts) * (sequence + T * perToken(base.preset) / 4)),
            ("grpo.prompts_per_step × grpo.group_size", Double(grpo.promptsPerStep) * Double(grpo.groupSize) * (sequence + T * perToken(base.preset) / 4)),
            ("rloo.prompts_per_step × rloo.k", Double(rloo.promptsPerStep) * Double(rloo.k) * (sequence + T * perToken(base.preset) / 4)),
            ("dpo.batch_size", Double(dpo.batchSize) * 2 * T * perToken(base.preset)),
        ]
        out.sort { $0.1 > $1.1 }
        return out.map { (key: $0.0, bytes: $0.1) }
    }

    /// The problem of a config whose `memoryEstimate` exceeds `limit` bytes (the machine's
    /// memory), naming the keys that drive it; nil when it fits.
    func memoryProblem(limit: Double) -> ConfigProblem? {
        let parts = memoryEstimate()
        let total = parts.reduce(0) { $0 + $1.bytes }
        guard total > limit else { return nil }
        let gib = { (b: Double) in b / 1_073_741_824 }
        let drivers = parts.prefix { $0.bytes > 0.1 * total }.map { "\($0.key) (\(String(format: "%.3g", gib($0.bytes))) GiB)" }
        return ConfigProblem(key: parts[0].key, expected: "needs about \(String(format: "%.3g", gib(total))) GiB, more than this machine's "
                             + "\(String(format: "%.3g", gib(limit))) GiB; it comes from \(drivers.joined(separator: ", "))")
    }

    /// The resolved config as pretty JSON (stored in every result file).
    public func json() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        return (try? enc.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// A stable hash of the resolved config (names a sweep entry's result file).
    public var hash: String { StageCache.key(self) }
}
