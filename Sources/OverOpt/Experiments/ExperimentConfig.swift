// ExperimentConfig.swift — one run's complete configuration, and how it is resolved.
//
// A config file (TOML) lists only what it changes; everything else comes from the
// defaults below, which are the built-in quick-start experiment. Resolution order:
// defaults < file < `--set key=value` overrides < `--seed`. Every key is checked (an
// unknown key names the file and the valid keys beside it), every value's type and
// range is checked before any work starts.
//
// Proxy variants are named. Built-in names map to reward-model settings layered over the
// `[rm]` table (e.g. "grm-sft" = objective grm, regularizer sft); a `[variants.NAME]`
// table defines or refines a variant with any `[rm]` key.
import Foundation
import OverOptEngine

/// The configuration of one run (one seed).
public struct ExperimentConfig: Codable, Sendable, Equatable {
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

    enum CodingKeys: String, CodingKey {
        case name, seed, proxies, stages, world, base, data, rm, variants, bon, ppo, grpo, rloo, dpo, detectors
        case saveCheckpoints = "save_checkpoints"
    }

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

    /// Keys that may appear although their default is absent (optional settings).
    static let optionalKeys: [String: [String]] = [
        "bon": ["max_n", "select", "soft_temperature", "caution_coef", "lcb_k"],
        "ppo": ["target_kl", "reward_clip", "kl_estimator", "kl_horizon", "reward_shaping", "par_reference_samples"],
        "grpo": ["reward_shaping", "par_reference_samples"],
        "rloo": ["reward_shaping", "par_reference_samples"],
        "rm": ["base", "inform_latent_dim", "inform_beta"],
    ]

    /// Resolves each proxy name to its reward-model settings.
    static func resolveVariants(_ names: [String], rm: ConfigTree, user: [String: Any], source: String) throws -> [String: RewardModelConfig] {
        var out: [String: RewardModelConfig] = [:]
        for name in names {
            guard builtinVariants[name] != nil || user[name] != nil else {
                let known = Set(builtinVariants.keys).union(user.keys).sorted()
                throw ConfigError.invalid(key: "proxies", "unknown proxy variant '\(name)' in \(source); known: \(known.joined(separator: ", ")) (or define [variants.\(name)])")
            }
            var tree = deepMerge(rm, (builtinVariants[name] ?? [:]) as ConfigTree)
            tree = deepMerge(tree, user[name] as? ConfigTree ?? [:])
            let cfg = try decodeTree(RewardModelConfig.self, from: tree, source: "\(source) [variants.\(name)]").resolvingInformKeys
            do { try cfg.validate() } catch let ConfigError.invalid(key, message) {
                throw ConfigError.invalid(key: key.replacingOccurrences(of: "rm.", with: "variants.\(name)."), message)
            }
            out[name] = cfg
        }
        return out
    }

    /// Loads a config: the defaults, then `path` (if any), then `overrides` ("a.b=value"),
    /// then `seed` (if any). Throws `ConfigError` naming the key on any problem.
    public static func load(path: String?, overrides: [String] = [], seed: UInt64? = nil) throws -> ExperimentConfig {
        var user: ConfigTree = [:]
        let source = (path ?? "the built-in quick-start config") + (overrides.isEmpty ? "" : " (with --set overrides)")
        if let path {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigError.file(path: path, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
            }
            user = try parseTOML(String(decoding: data, as: UTF8.self), source: path)
        }
        try applyOverrides(overrides, to: &user)
        if let seed { user["seed"] = NSNumber(value: seed) }

        var defaults = try encodeTree(ExperimentConfig())
        defaults["variants"] = [String: Any]()
        for (section, keys) in optionalKeys {
            var t = defaults[section] as? ConfigTree ?? [:]
            for k in keys where t[k] == nil { t[k] = NSNull() }
            defaults[section] = t
        }
        try checkKeys(user, against: defaults, source: source, freeTables: ["variants": try encodeTree(RewardModelConfig()).merging(["base": NSNull(), "inform_latent_dim": NSNull(), "inform_beta": NSNull()]) { a, _ in a }])

        let userVariants = user["variants"] as? [String: Any] ?? [:]
        /// The defaults with `user` merged over them, ready to decode.
        func resolved(_ user: ConfigTree) -> ConfigTree {
            var merged = deepMerge(defaults, user)
            merged["variants"] = [String: Any]()
            for (section, keys) in optionalKeys {
                var t = merged[section] as? ConfigTree ?? [:]
                for k in keys where t[k] is NSNull { t[k] = nil }
                merged[section] = t
            }
            return merged
        }
        let merged = resolved(user)
        var config: ExperimentConfig
        do {
            config = try decodeTree(ExperimentConfig.self, from: merged, source: source)
        } catch ConfigError.invalid(let key, _) where key.isEmpty {
            // The decoder named no key: find the value that breaks it.
            let decode = { (tree: ConfigTree) throws -> Void in _ = try decodeTree(ExperimentConfig.self, from: tree, source: source) }
            guard let culprit = culpritLeaf(user, defaults: resolved([:]), decode: decode) else { throw ConfigError.invalid(key: "", "cannot be read") }
            throw ConfigError.wrongType(key: culprit.key, source: source, expected: culprit.expected)
        }
        try config.rm.validate()   // before the variants, so that a bad [rm] key is named as such
        config.variants = try resolveVariants(config.proxies, rm: try encodeTree(config.rm), user: userVariants, source: source)
        try config.validate()
        return config
    }

    /// Checks every section; throws the first problem.
    public func validate() throws {
        try validateName(name)
        if proxies.isEmpty { throw ConfigError.invalid(key: "proxies", "needs at least one proxy variant") }
        if Set(proxies).count != proxies.count { throw ConfigError.invalid(key: "proxies", "lists a variant twice: \(proxies)") }
        let validStages = ["bon"] + policyOptimizerStages
        for s in stages where !validStages.contains(s) {
            throw ConfigError.invalid(key: "stages", "unknown stage '\(s)'; valid stages: \(validStages.joined(separator: ", "))")
        }
        if Set(stages).count != stages.count { throw ConfigError.invalid(key: "stages", "lists a stage twice: \(stages)") }
        try base.validate()
        try data.validate()
        try rm.validate()
        do {
            try bon.validate()
        } catch BestOfNError.invalidConfig(let message) {
            // "bon.<key> must be …": the key, then what it must be.
            let key = String(message.prefix { $0 != " " })
            throw ConfigError.invalid(key: key, String(message.dropFirst(key.count + 1)))
        }
        do {
            try ppo.validate()
        } catch let e as PPOConfigError {
            throw ConfigError.invalid(key: "ppo.\(e.key)", e.message)
        }
        do {
            try grpo.validate()
            try rloo.validate()
            try dpo.validate()
        } catch let e as CriticFreeConfigError {
            throw ConfigError.invalid(key: "\(e.section).\(e.key)", e.message)
        }
        try detectors.validate()
        if bon.prompts < 1 { throw ConfigError.invalid(key: "bon.prompts", "must be positive") }
        try checkMemory(limit: Double(ProcessInfo.processInfo.physicalMemory))
        for (section, tokens) in [("grpo", grpo.maxNewTokens), ("rloo", rloo.maxNewTokens), ("dpo", dpo.maxNewTokens)] where tokens > world.maxResponseTokens {
            throw ConfigError.invalid(key: "\(section).max_new_tokens",
                                      "must be ≤ the world's max response tokens (\(world.maxResponseTokens)), got \(tokens)")
        }
        if ppo.maxNewTokens > world.maxResponseTokens {
            throw ConfigError.invalid(key: "ppo.max_new_tokens",
                                      "must be ≤ the world's max response tokens (\(world.maxResponseTokens)), got \(ppo.maxNewTokens)")
        }
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

    /// Refuses, before any work, a config whose `memoryEstimate` exceeds `limit` bytes (the
    /// machine's memory), naming the keys that drive it.
    func checkMemory(limit: Double) throws {
        let parts = memoryEstimate()
        let total = parts.reduce(0) { $0 + $1.bytes }
        guard total > limit else { return }
        let gib = { (b: Double) in b / 1_073_741_824 }
        let drivers = parts.prefix { $0.bytes > 0.1 * total }.map { "\($0.key) (\(String(format: "%.3g", gib($0.bytes))) GiB)" }
        throw ConfigError.invalid(key: parts[0].key, "needs about \(String(format: "%.3g", gib(total))) GiB, more than this machine's "
                                  + "\(String(format: "%.3g", gib(limit))) GiB; it comes from \(drivers.joined(separator: ", "))")
    }

    /// `name` starts every result file's name: 1–100 letters, digits, '.', '_' or '-', not
    /// starting with '.', so that it can neither leave the output folder nor hide the file.
    func validateName(_ name: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard !name.isEmpty, name.count <= 100, !name.hasPrefix("."), name.allSatisfy(allowed.contains) else {
            throw ConfigError.invalid(key: "name", "must be 1–100 letters, digits, '.', '_' or '-', not starting with '.' "
                                      + "(it starts the result file's name), got \"\(name)\"")
        }
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
