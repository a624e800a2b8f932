// Config files, overrides and the errors a user sees for bad input.
import Foundation
import Testing
import OverOpt

/// Writes `text` to a temporary .toml file and returns its path.
func tempConfig(_ text: String) throws -> String {
    let path = NSTemporaryDirectory() + "overopt-config-\(UUID().uuidString).toml"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// The description of the error thrown by `body`, or nil when nothing is thrown.
func configError(_ body: () throws -> Void) -> String? {
    do { try body(); return nil } catch { return "\(error)" }
}

@Suite struct ExperimentConfigTests {
    @Test func defaultsAreTheQuickStart() throws {
        let c = try ExperimentConfig.load(path: nil)
        #expect(c.proxies == ["bt", "ensemble", "grm-sft"])
        #expect(c.variants["grm-sft"]?.objective == .grm)
        #expect(c.variants["grm-sft"]?.regularizer == .sft)
        #expect(c.variants["ensemble"]?.objective == .ensemble)
        #expect(c.stages == ["bon", "ppo"])
    }

    @Test func fileThenOverridesThenSeed() throws {
        let path = try tempConfig("""
            seed = 3
            proxies = ["bt", "grm-dpo"]
            [data]
            train_pairs = 100
            label_noise = 0.25
            [rm]
            learning_rate = 0.001
            """)
        let c = try ExperimentConfig.load(path: path, overrides: ["data.train_pairs=200", "rm.alpha=0.05"], seed: 7)
        #expect(c.seed == 7)
        #expect(c.data.trainPairs == 200)
        #expect(c.data.labelNoise == 0.25)
        #expect(c.data.evalPairs == PreferenceDataConfig().evalPairs)   // untouched keys keep defaults
        #expect(c.variants["grm-dpo"]?.learningRate == 0.001)             // [rm] reaches every variant
        #expect(c.variants["grm-dpo"]?.alpha == 0.05)
        #expect(c.variants["grm-dpo"]?.regularizer == .dpo)
    }

    @Test func customVariantsLayerOverRM() throws {
        let path = try tempConfig("""
            proxies = ["grm-a05", "bt"]
            [rm]
            epochs = 4
            [variants.grm-a05]
            objective = "grm"
            alpha = 0.5
            """)
        let c = try ExperimentConfig.load(path: path)
        #expect(c.variants["grm-a05"]?.alpha == 0.5)
        #expect(c.variants["grm-a05"]?.epochs == 4)
        #expect(c.variants["bt"]?.alpha == 0.01)
    }

    @Test func unknownKeyNamesTheKeyTheFileAndTheValidKeys() throws {
        let path = try tempConfig("[data]\ntrain_pair = 10\n")
        let e = configError { _ = try ExperimentConfig.load(path: path) }
        #expect(e?.contains("data.train_pair") == true)
        #expect(e?.contains(path) == true)
        #expect(e?.contains("train_pairs") == true)
        let e2 = configError { _ = try ExperimentConfig.load(path: nil, overrides: ["ppo.stepz=3"]) }
        #expect(e2?.contains("ppo.stepz") == true)
        let e3 = configError { _ = try ExperimentConfig.load(path: nil, overrides: ["variants.x.alpah=0.1"]) }
        #expect(e3?.contains("variants.x.alpah") == true)
    }

    @Test func wrongTypesAndRangesAreReportedBeforeAnyWork() {
        let cases: [(String, String)] = [
            ("data.label_noise=0.6", "data.label_noise"),
            ("data.train_pairs=-5", "data.train_pairs"),
            ("rm.alpha=1.5", "alpha"),
            ("bon.max_n=1000", "max_n"),
            ("bon.samples_per_prompt=0", "samples_per_prompt"),
            ("base.preset=\"huge\"", "base.preset"),
            ("data.train_pairs=\"many\"", "data.train_pairs"),
            ("stages=[\"rlhf\"]", "stages"),
            ("proxies=[\"nope\"]", "proxies"),
            ("ppo.steps=-1", "steps"),
        ]
        for (override, key) in cases {
            let e = configError { _ = try ExperimentConfig.load(path: nil, overrides: [override]) }
            #expect(e != nil, "\(override) was accepted")
            #expect(e?.contains(key) == true, "\(override): \(e ?? "")")
        }
        let path = (try? tempConfig("[variants.bad]\nobjective = \"grm\"\nalpha = 2.0\n")) ?? ""
        let e = configError { _ = try ExperimentConfig.load(path: path, overrides: ["proxies=[\"bad\"]"]) }
        #expect(e?.contains("variants.bad.alpha") == true, "\(e ?? "")")
    }

    @Test func missingAndMalformedFilesNameTheFile() throws {
        let e = configError { _ = try ExperimentConfig.load(path: "/nonexistent/x.toml") }
        #expect(e?.contains("/nonexistent/x.toml") == true && e?.contains("no such file") == true)
        let path = try tempConfig("[data\ntrain_pairs = 1\n")
        let e2 = configError { _ = try ExperimentConfig.load(path: path) }
        #expect(e2?.contains(path) == true && e2?.contains("line") == true, "\(e2 ?? "")")
    }

    @Test func theHashIgnoresNothingButIsStable() throws {
        let a = try ExperimentConfig.load(path: nil, seed: 1), b = try ExperimentConfig.load(path: nil, seed: 1)
        let c = try ExperimentConfig.load(path: nil, seed: 2)
        #expect(a.hash == b.hash)
        #expect(a.hash != c.hash)
    }
}

struct MemoryEstimateTests {
    let experiments = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("experiments")

    /// Every committed experiment (and the quick start) fits well inside a laptop by the estimate.
    @Test func committedExperimentsFitInFourGiB() throws {
        var configs = [("quickstart (built in)", try ExperimentConfig.load(path: nil))]
        for name in try FileManager.default.contentsOfDirectory(atPath: experiments.path).sorted() where name.hasSuffix(".toml") {
            let text = try String(contentsOfFile: experiments.appendingPathComponent(name).path, encoding: .utf8)
            if text.contains("[grid]") { continue }   // sweeps: their entries are checked by the sweep tests
            configs.append((name, try ExperimentConfig.load(path: experiments.appendingPathComponent(name).path)))
        }
        for (name, c) in configs {
            let total = c.memoryEstimate().reduce(0) { $0 + $1.bytes }
            print("\(name): about \(String(format: "%.0f", total / 1_048_576)) MiB")
            #expect(total < 4 * 1_073_741_824, "\(name)")
            #expect(total > 1_000_000, "\(name): an estimate that small cannot be right")
        }
    }

    /// Sizes far beyond the machine are refused before any work, naming the key that drives them
    /// (these crashed or tried to allocate tens of GB before).
    @Test(arguments: [("bon.samples_per_prompt", "9223372036854775807"), ("bon.samples_per_prompt", "1000000000"),
                      ("base.corpus_size", "1000000000000"), ("data.train_pairs", "10000000000")])
    func absurdSizesAreRefusedNamingTheKey(key: String, value: String) {
        let error = #expect(throws: ConfigError.self) { try ExperimentConfig.load(path: nil, overrides: ["\(key)=\(value)"]) }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains(key) && text.contains("GiB"), "\(text)")
    }
}

/// Errors that once printed raw decoder or JSON text name the key, the value and what was
/// expected.
struct ConfigMessageTests {
    @Test func nanAndInfinityInAFileNameTheKey() throws {
        for literal in ["nan", "inf", "-inf"] {
            let path = try tempConfig("[data]\nlabel_noise = \(literal)\n")
            let message = configError { _ = try ExperimentConfig.load(path: path) } ?? ""
            #expect(message.contains("data.label_noise") && message.contains("finite") && message.contains(path), "\(message)")
        }
    }

    @Test func aFloatOrANegativeNumberForAnIntegerKeyNamesTheKey() throws {
        let path = try tempConfig("[data]\ntrain_pairs = 1.5\n")
        let float = configError { _ = try ExperimentConfig.load(path: path) } ?? ""
        #expect(float.contains("data.train_pairs") && float.contains("an integer (got 1.5)"), "\(float)")
        let seed = configError { _ = try ExperimentConfig.load(path: nil, overrides: ["seed=-1"]) } ?? ""
        #expect(seed.contains("'seed'") && seed.contains("≥ 0"), "\(seed)")
        // An integral float is still an integer.
        #expect(try ExperimentConfig.load(path: nil, overrides: ["base.corpus_size=2e3"]).base.corpusSize == 2000)
    }

    @Test func anUnknownChoiceListsTheValidOnes() {
        let split = configError { _ = try ExperimentConfig.load(path: nil, overrides: ["bon.prompt_split=\"bogus\""]) } ?? ""
        #expect(split.contains("bon.prompt_split") && split.contains("train, heldOut, all") && split.contains("bogus"), "\(split)")
        let objective = configError { _ = try ExperimentConfig.load(path: nil, overrides: ["rm.objective=\"nope\""]) } ?? ""
        #expect(objective.contains("rm.objective") && objective.contains("grm"), "\(objective)")
    }

    @Test func aDateIsNotAValue() throws {
        let path = try tempConfig("seed = 1979-05-27\n")
        let message = configError { _ = try ExperimentConfig.load(path: path) } ?? ""
        #expect(message.contains("'seed'") && message.contains("date"), "\(message)")
    }
}
