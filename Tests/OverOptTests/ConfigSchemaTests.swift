// The config schemas: README's tables, unknown keys, several problems at once, range and
// choice errors per value type, the deprecated camelCase `[world]` keys, and what must not
// move (hashes, fingerprints, attribute names).
import Foundation
import Testing
import OverOpt
import OverOptHDF5

/// The ConfigError thrown by `body` (nil, and an issue, when something else or nothing is thrown).
func thrownConfigError(_ body: () throws -> Void) -> ConfigError? {
    do { try body(); Issue.record("no error thrown"); return nil } catch let e as ConfigError { return e } catch {
        Issue.record("\(type(of: error)) thrown, not a ConfigError: \(error)")
        return nil
    }
}

@Suite struct ConfigSchemaTests {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func readmeConfigTablesMatchTheSchemas() throws {
        let path = root.appendingPathComponent("README.md").path
        let readme = try String(contentsOfFile: path, encoding: .utf8)
        let (updated, missing) = ConfigReference.updating(readme: readme)
        #expect(missing.isEmpty, "README lacks the tables \(missing)")
        if ProcessInfo.processInfo.environment["OVEROPT_UPDATE_README"] == "1", updated != readme {
            try updated.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        #expect(updated == readme, "README's configuration tables differ from the schemas; run OVEROPT_UPDATE_README=1 swift test --filter readmeConfigTables")
        // Every key of every section is in a table, with its default.
        for (_, table) in ConfigReference.tables { #expect(readme.contains(table)) }
        #expect(readme.contains("| `max_response_tokens` | `50` |") && readme.contains("| `tone_weight` | `3` |"))
    }

    @Test func keysAreSnakeCaseAndUniqueAndDefaultsAreValid() throws {
        func check<S: ConfigSection>(_ type: S.Type) {
            let names = S.schema.map(\.name)
            #expect(Set(names).count == names.count, "\(S.section): a key twice")
            for n in names { #expect(n.range(of: "^[a-z][a-z0-9_]*$", options: .regularExpression) != nil, "\(S.section).\(n)") }
            #expect(S.problems(S()).isEmpty, "\(S.section): \(S.problems(S()))")
            for key in S.schema { if let nested = key.nested { checkNested(nested) } }
        }
        func checkNested(_ t: any ConfigSection.Type) { check(t) }
        check(ExperimentConfig.self)
        #expect(throws: Never.self) { try ExperimentConfig().validate() }
    }

    @Test func anUnknownKeyNamesTheFileAndTheKeyItResembles() throws {
        let path = try tempConfig("[ppo]\nlearning_rat = 1e-4\n[rm]\nzzzzzz = 1\n")
        let e = thrownConfigError { _ = try ExperimentConfig.load(path: path) }
        let text = e?.description ?? ""
        #expect(e?.problems.map(\.key) == ["ppo.learning_rat", "rm.zzzzzz"], "\(text)")
        #expect(text.contains("unknown key 'ppo.learning_rat'; did you mean 'learning_rate'?"), "\(text)")
        #expect(text.contains("unknown key 'rm.zzzzzz'; valid keys here: alpha, base, batch_size"), "\(text)")
        #expect(text.hasPrefix("2 problems in \(path): "), "\(text)")
        // A swapped pair of letters is one edit; top-level keys too.
        let swapped = configError { _ = try ExperimentConfig.load(path: nil, overrides: ["porxies=[\"bt\"]"]) } ?? ""
        #expect(swapped.contains("unknown key 'porxies'") && swapped.contains("did you mean 'proxies'?"), "\(swapped)")
        let variant = configError { _ = try ExperimentConfig.load(path: nil, overrides: ["variants.x.alpah=0.1"]) } ?? ""
        #expect(variant.contains("unknown key 'variants.x.alpah'") && variant.contains("did you mean 'alpha'?"), "\(variant)")
    }

    @Test func everyProblemOfAConfigIsReportedAtOnce() throws {
        let path = try tempConfig("""
            name = ".hidden"
            stages = ["bon", "rlhf", "bon"]
            [data]
            train_pairs = 0
            label_noise = 0.6
            [rm]
            alpha = "x"
            [ppo]
            stepz = 3
            minibatch_size = 100
            [world.writer]
            on_topic = 1.5
            """)
        let e = thrownConfigError { _ = try ExperimentConfig.load(path: path) }
        let keys = Set(e?.problems.map(\.key) ?? [])
        #expect(keys == ["name", "stages", "data.train_pairs", "data.label_noise", "rm.alpha", "ppo.stepz", "ppo.minibatch_size",
                         "world.writer.on_topic"], "\(e?.description ?? "")")
        // "stages" breaks two rules: both are named.
        #expect(e?.problems.filter { $0.key == "stages" }.map(\.expected) == ["each one of bon, ppo, grpo, rloo, dpo", "without repeats"])
        let text = e?.description ?? ""
        #expect(text.hasPrefix("9 problems in \(path): ") && !text.contains("\n"), "\(text)")
        #expect(text.contains("invalid value for 'rm.alpha': expected a number (got \"x\")"), "\(text)")
        // A bad [rm] value is named once, as rm.<key>, not again for every variant.
        let rm = thrownConfigError { _ = try ExperimentConfig.load(path: nil, overrides: ["rm.alpha=1.5"]) }
        #expect(rm?.problems.map(\.key) == ["rm.alpha"])
        // NaN and infinities in a file are all reported.
        let nan = thrownConfigError { _ = try ExperimentConfig.load(path: try tempConfig("[data]\nlabel_noise = nan\ntemperature = inf\n")) }
        #expect(nan?.problems.map(\.key).sorted() == ["data.label_noise", "data.temperature"])
    }

    /// Range, choice and type errors for each kind of value: the key, the value given and
    /// what was expected.
    @Test(arguments: [
        ("ppo.steps=-1", "'ppo.steps'", "expected ≥ 0 (got -1)"),                                  // Int
        ("seed=-1", "'seed'", "expected an integer ≥ 0 (got -1)"),                                 // UInt64
        ("data.train_pairs=1.5", "'data.train_pairs'", "expected an integer (got 1.5)"),          // Int from a float
        ("data.label_noise=0.6", "'data.label_noise'", "expected in [0, 0.5] (got 0.6)"),          // Double
        ("ppo.top_p=1.5", "'ppo.top_p'", "expected in (0, 1] (got 1.5)"),                          // Float
        ("ppo.normalize_reward=3", "'ppo.normalize_reward'", "expected true or false (got 3)"),    // Bool
        ("name=3", "'name'", "expected a string (got 3)"),                                          // String
        ("base.preset=\"huge\"", "'base.preset'", "expected one of \"tiny\", \"small\", \"medium\", \"large\", \"xl\" (got \"huge\")"),
        ("bon.prompt_split=\"bogus\"", "'bon.prompt_split'", "expected one of train, heldOut, all (got \"bogus\")"),   // choice
        ("bon.select=[\"argmin\"]", "'bon.select'", "each one of soft, caution, lcb (got [\"argmin\"])"),             // list of choices
        ("ppo.reward_clip=-1", "'ppo.reward_clip'", "expected > 0 (got -1)"),                      // optional
        ("proxies=3", "'proxies'", "expected a list of strings (got 3)"),                          // list
        ("proxies=[]", "'proxies'", "expected not empty (got [])"),
        ("grpo.group_size=300", "'grpo.group_size'", "expected in 2...256 (got 300)"),
        ("world.writer.on_topic=1.5", "'world.writer.on_topic'", "expected in [0, 1] (got 1.5)"),  // nested section
        ("world.max_response_tokens=60", "'world.max_response_tokens'", "expected ≤ 62 − max_prompt_tokens"),
        ("ppo.minibatch_size=100", "'ppo.minibatch_size'", "expected ≤ prompts_per_step (64) (got 100)"),   // relation
        ("ppo.max_new_tokens=60", "'ppo.max_new_tokens'", "expected ≤ world.max_response_tokens (50) (got 60)"),
        ("world=3", "'world'", "expected a table [world] (got 3)"),
        ("rm.finetune=\"lora\"", "", ""),
    ])
    func rangeChoiceAndTypeErrorsNameKeyValueAndExpectation(override: String, key: String, expected: String) {
        if key.isEmpty {   // a valid value
            #expect(throws: Never.self) { try ExperimentConfig.load(path: nil, overrides: [override]) }
            return
        }
        let e = thrownConfigError { _ = try ExperimentConfig.load(path: nil, overrides: [override]) }
        let text = e?.description ?? ""
        #expect(e?.problems.count == 1, "\(text)")
        #expect(text.contains("invalid value for \(key) in the built-in quick-start config (with --set overrides): "), "\(text)")
        #expect(text.contains(expected), "\(text)")
    }

    @Test func camelCaseWorldKeysAreReadWithADeprecationNote() throws {
        let camel = try tempConfig("""
            [world]
            maxResponseTokens = 40
            [world.gold]
            toneWeight = 2.5
            [world.writer]
            onTopic = 0.7
            """)
        let snake = try tempConfig("""
            [world]
            max_response_tokens = 40
            [world.gold]
            tone_weight = 2.5
            [world.writer]
            on_topic = 0.7
            """)
        var notes: [String] = []
        let a = try ExperimentConfig.load(path: camel, overrides: ["ppo.max_new_tokens=40", "grpo.max_new_tokens=40",
                                                                   "rloo.max_new_tokens=40", "dpo.max_new_tokens=40"]) { notes.append($0) }
        #expect(a.world.maxResponseTokens == 40 && a.world.gold.toneWeight == 2.5 && a.world.writer.onTopic == 0.7)
        #expect(notes.sorted() == [
            "config key 'world.gold.toneWeight' is deprecated; write 'world.gold.tone_weight' (snake_case, like every other key)",
            "config key 'world.maxResponseTokens' is deprecated; write 'world.max_response_tokens' (snake_case, like every other key)",
            "config key 'world.writer.onTopic' is deprecated; write 'world.writer.on_topic' (snake_case, like every other key)",
        ])
        var none: [String] = []
        let b = try ExperimentConfig.load(path: snake, overrides: ["ppo.max_new_tokens=40", "grpo.max_new_tokens=40",
                                                                   "rloo.max_new_tokens=40", "dpo.max_new_tokens=40"]) { none.append($0) }
        #expect(none.isEmpty && a == b && a.hash == b.hash)
        // The note is printed once per process.
        #expect(deprecationNoteIsNew("a note for this test") && !deprecationNoteIsNew("a note for this test"))
        // A camelCase key outside [world] is unknown.
        let e = configError { _ = try ExperimentConfig.load(path: nil, overrides: ["ppo.learningRate=1e-4"]) } ?? ""
        #expect(e.contains("unknown key 'ppo.learningRate'") && e.contains("did you mean 'learning_rate'?"), "\(e)")
    }

    /// The schemas keep the JSON of configs, so hashes (result file names), the world's
    /// fingerprint and stage cache keys are those the code had before them (the values below
    /// are what it gave for the quick start).
    @Test func hashesFingerprintsAndCacheKeysAreUnchanged() throws {
        let c = try ExperimentConfig.load(path: nil)
        #expect(c.hash == "99c4e9017ccdf62a")
        #expect(try World(config: c.world).fingerprint == "7abe3907752351c6")
        #expect(StageCache.key(c.ppo) == StageCache.key(PPOConfig()))
        let world = try encodeTree(c.world)
        #expect(world["maxResponseTokens"] as? Int == 50 && (world["gold"] as? [String: Any])?["toneWeight"] != nil)
    }

    /// The attributes a stage writes from its config keep the names and types of the
    /// committed run files.
    @Test func settingAttributesMatchTheCommittedRunFiles() throws {
        let dir = root.appendingPathComponent("results/runs/optimizers").path
        guard let name = try FileManager.default.contentsOfDirectory(atPath: dir).sorted().first(where: { $0.hasSuffix(".h5") }) else {
            Issue.record("no committed optimizers run"); return
        }
        let file = try H5File.open(dir + "/" + name)
        defer { file.close() }
        let config = try SweepSpec.load(path: root.appendingPathComponent("experiments/optimizers.toml").path).entries()[0].config
        func compare(_ group: H5Group, _ settings: [OptimizerSetting], _ label: String) throws {
            let names = Set(try group.attributeNames())
            for s in settings {
                #expect(names.contains(s.key), "\(label): \(s.key) missing in the committed file")
                guard names.contains(s.key) else { continue }
                switch s.value {
                case .int: #expect(throws: Never.self, "\(label).\(s.key)") { _ = try group.intAttribute(s.key) }
                case .float:   // a float: readable as a number, refused as an integer
                    #expect(throws: Never.self, "\(label).\(s.key)") { _ = try group.doubleAttribute(s.key) }
                    #expect(throws: (any Error).self, "\(label).\(s.key)") { _ = try group.intAttribute(s.key) }
                case .bool: #expect(throws: Never.self, "\(label).\(s.key)") { _ = try group.boolAttribute(s.key) }
                case .string: #expect(throws: Never.self, "\(label).\(s.key)") { _ = try group.stringAttribute(s.key) }
                case .strings: break
                }
            }
        }
        let root = file.root
        for stage in ["ppo", "grpo", "rloo"] where root.contains(stage) {
            let variants = try root.group(stage).children()
            let settings = stage == "ppo" ? config.ppo.attributes : stage == "grpo" ? config.grpo.attributes : config.rloo.attributes
            try compare(try root.group("\(stage)/\(variants[0])"), settings, stage)
        }
        if root.contains("rm") {
            let variant = try root.group("rm").children()[0]
            try compare(try root.group("rm/\(variant)"), RewardModelConfig().attributes, "rm")
        }
    }
}
