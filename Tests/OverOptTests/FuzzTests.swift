// The fuzz harness, in process (thousands of cases in seconds; the command line's own cases,
// byte-level corruption included, are in Tests/HDF5Tests/FuzzCLITests.swift). Fixed seeds,
// bounded case counts. A case passes when the code under test returns or throws an error
// with a message; a crash (a trapped overflow or index, an allocation of a crafted size)
// ends the test process, which fails the suite.
//
// - Configs: `--set` overrides of random keys (valid ones, misspelt, nested too deep,
//   unicode) with random values (extreme integers, nan/inf, wrong types, unicode, lists,
//   tables, malformed TOML), and the committed experiment and sweep files with lines
//   deleted, duplicated, values replaced and bytes inserted. A thrown error must be a
//   `ConfigError` with a one-line message (the command line exits 2 with it).
// - HDF5 files: run files, a collect summary and every kind of cache entry of a tiny run
//   with one dataset or attribute replaced by one of another type, shape or value (NaN,
//   huge, negative, empty) or removed — read by what `inspect --samples`, `plot`,
//   `collect`, `compare`, `report` and the stage cache read. A failed `collect` leaves no
//   summary under its final name.
import Foundation
import Testing
import OverOpt
import OverOptEngine
import OverOptHDF5
import TestSupport

let fuzzValues = ["0", "1", "-1", "2", "3", "7", "64", "1000", "1e9", "1e12", "9223372036854775807", "-9223372036854775808",
                  "9223372036854775808", "18446744073709551615", "4294967296", "0.5", "-0.0", "1e308", "-1e308", "1e-320",
                  "nan", "inf", "-inf", "+inf", "true", "false", "\"\"", "\"bt\"", "\"../escape\"", "\"a/b\"", "\"é∆😀\"",
                  "\"\(String(repeating: "x", count: 300))\"", "[]", "[1, 2]", "[\"bt\"]", "[\"bt\", \"bt\"]", "[[1]]",
                  "[\"bt\", \"grm-sft\", \"margin\"]", "{a = 1}", "{}", "[1, \"a\"]", "\"unterminated", "[[[", "=", "",
                  "1979-05-27", "0x10", "1_000", "\"\\u0000\"", "\"\\n\"", "😀"]

/// The dotted keys of the default config (sections' leaves), from its encoded tree.
func defaultConfigKeys() throws -> [String] {
    func leaves(_ tree: [String: Any], _ prefix: String) -> [String] {
        tree.keys.sorted().flatMap { k -> [String] in
            let full = prefix.isEmpty ? k : prefix + "." + k
            if let sub = tree[k] as? [String: Any] { return leaves(sub, full) }
            return [full]
        }
    }
    return leaves(try encodeTree(ExperimentConfig()), "")
}

/// A random `--set` override.
func randomOverride(_ r: inout SplitMix64, keys: [String]) -> String {
    var key = r.pick(keys)
    switch r.below(10) {
    case 0: key = r.pick(["", ".", "rm..alpha", "rm.alpha.x", "variants.bt.alpha", "variants.é∆.epochs", "variants..x", "😀",
                          "base.preset.x", "grid.seed", "set", "variants", "rm", "world"])
    case 1: key += r.pick(["x", ".y", "_", " "])
    default: break
    }
    let value = r.chance(0.1) ? r.pick(fuzzValues) + r.pick(fuzzValues) : r.pick(fuzzValues)
    return r.chance(0.03) ? key : "\(key)=\(value)"
}

/// `text` with one to three random edits: lines deleted, duplicated, a value replaced,
/// bytes inserted, the text cut short.
func mutatedTOML(_ text: String, _ r: inout SplitMix64) -> String {
    var lines = text.components(separatedBy: "\n")
    for _ in 0..<(1 + r.below(3)) where !lines.isEmpty {
        let i = r.below(lines.count)
        switch r.below(6) {
        case 0: lines.remove(at: i)
        case 1: lines.insert(lines[i], at: i)
        case 2, 3:
            if let eq = lines[i].firstIndex(of: "=") { lines[i] = String(lines[i][...eq]) + " " + r.pick(fuzzValues) }
        case 4:
            var chars = Array(lines[i])
            chars.insert(r.pick(Array("[]{}=\"'#.\\,\u{0}é😀\t")), at: r.below(chars.count + 1))
            lines[i] = String(chars)
        default: lines = Array(lines.prefix(i))
        }
    }
    return lines.joined(separator: "\n")
}

/// Records an issue unless `error` is a ConfigError with a one-line message.
func expectConfigError(_ error: Error, _ label: String) {
    guard let e = error as? ConfigError else {
        Issue.record("\(label): threw \(type(of: error)), not a ConfigError: \(error)")
        return
    }
    let text = e.description
    if text.isEmpty || text.contains("\n") { Issue.record("\(label): the message is not one line: \(text)") }
}

@Suite("fuzz", .serialized) struct FuzzTests {

    @Test func configsAndOverrides() throws {
        let keys = try defaultConfigKeys()
        #expect(keys.contains("ppo.minibatch_size") && keys.contains("bon.samples_per_prompt"))
        var r = SplitMix64(state: 21)
        var loaded = 0, refused = 0
        let start = Date()
        // --set overrides on the built-in config.
        for i in 0..<2500 {
            let overrides = (0..<(1 + r.below(3))).map { _ in randomOverride(&r, keys: keys) }
            do {
                _ = try ExperimentConfig.load(path: nil, overrides: overrides)
                loaded += 1
            } catch {
                refused += 1
                expectConfigError(error, "case \(i) --set \(overrides)")
            }
        }
        let overridesSeconds = Date().timeIntervalSince(start)
        // Mutated experiment files, with and without overrides.
        let folder = NSTemporaryDirectory() + "overopt-fuzz-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let experiments = packageRoot.appendingPathComponent("experiments").path
        let files = try FileManager.default.contentsOfDirectory(atPath: experiments).filter { $0.hasSuffix(".toml") }.sorted()
        let texts = try files.map { try String(contentsOfFile: experiments + "/" + $0, encoding: .utf8) }
        var sweepCases = 0
        for i in 0..<1000 {
            let k = r.below(texts.count)
            let text = mutatedTOML(texts[k], &r)
            let path = folder + "/case.toml"
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            let isSweep = texts[k].contains("[grid]")
            do {
                if isSweep {
                    // Resolves the base file relative to the experiments folder, as the sweep names it.
                    let spec = try SweepSpec.parse(text, source: path, directory: experiments)
                    if spec.count <= 4 { _ = try spec.entries() }
                    sweepCases += 1
                } else {
                    _ = try ExperimentConfig.load(path: path, overrides: r.chance(0.3) ? [randomOverride(&r, keys: keys)] : [])
                }
                loaded += 1
            } catch {
                refused += 1
                expectConfigError(error, "case \(i) (\(files[k]) mutated)")
            }
        }
        print("fuzz configs: \(loaded + refused) cases (\(sweepCases) sweep files resolved), \(loaded) loaded, \(refused) refused with a one-line error; \(String(format: "%.1f", overridesSeconds)) s for the --set cases, \(String(format: "%.1f", Date().timeIntervalSince(start))) s in all")
        #expect(loaded > 100 && refused > 1000)
    }

    // MARK: - HDF5 files


    /// The tiny run whose cache entries the cache readers are fuzzed on (and its config).
    static let tinyRun = ["--set", "base.corpus_size=300", "--set", "base.eval_sequences=20", "--set", "data.train_pairs=40",
                          "--set", "data.eval_pairs=20", "--set", "rm.epochs=1", "--set", "proxies=[\"bt\"]",
                          "--set", "bon.prompts=4", "--set", "bon.samples_per_prompt=8", "--set", "ppo.steps=2",
                          "--set", "ppo.eval_prompts=8", "--set", "ppo.prompts_per_step=8", "--set", "ppo.minibatch_size=4"]

    /// Every dataset (path) and every attribute (object path, name) below `g`.
    func contents(_ g: H5Group) throws -> (datasets: [String], attributes: [(String, String)], groups: [String]) {
        var datasets: [String] = [], attributes: [(String, String)] = [], groups: [String] = []
        func walk(_ g: H5Group) throws {
            for a in try g.attributeNames() { attributes.append((g.path, a)) }
            for name in try g.children() {
                let path = (g.path == "/" ? "" : g.path) + "/" + name
                if g.isGroup(name) { groups.append(path); try walk(try g.group(name)) } else { datasets.append(path) }
            }
        }
        try walk(g)
        return (datasets, attributes, groups)
    }

    /// One or two structural edits of the file at `path`: a dataset replaced by one of
    /// another type, shape or value, emptied or removed; a group removed; an attribute
    /// replaced by one of another type or value. Returns what was done.
    func mutate(_ path: String, _ r: inout SplitMix64) throws -> [String] {
        let f = try H5File.open(path, writable: true)
        defer { f.close() }
        var done: [String] = []
        for _ in 0..<(1 + r.below(2)) {
            let (datasets, attributes, groups) = try contents(f.root)
            let root = f.root
            switch r.below(10) {
            case 0...5 where !datasets.isEmpty:
                let d = r.pick(datasets)
                let (shape, type) = try root.datasetInfo(d)
                let count = shape.reduce(1, *)
                let op = r.below(8)
                done.append("\(d) (\(type) \(shape)) op \(op)")
                switch op {
                case 0: try root.write(d, [Double](repeating: 0.5, count: max(0, count + r.pick([-1, 1, 7]))))
                case 1: try root.write(d, (0..<count).map { Double($0) }, shape: r.chance(0.5) ? [count] : [1, count])
                case 2: try root.write(d, (0..<count).map { _ in r.pick([Int64.max, Int64.min, -1, 0, 1 << 40]) }, shape: shape.isEmpty ? nil : shape)
                case 3: try root.write(d, [Float](repeating: r.pick([.nan, .infinity, -.infinity, 3e38]), count: count), shape: shape.isEmpty ? nil : shape)
                case 4: try root.write(d, strings: (0..<max(count, 1)).map { _ in r.pick(["", "bt", "é😀", "nan", "{\"a\": 1}"]) })
                case 5: try root.write(d, [Double]())
                case 6: try root.remove(d)
                default:
                    if type.hasPrefix("int") {
                        try root.write(d, [Int64](repeating: r.pick([Int64.max, -1, 1 << 33]), count: count), shape: shape.isEmpty ? nil : shape)
                    } else {
                        try root.write(d, [Double](repeating: r.pick([Double.nan, 1e300, -1]), count: count), shape: shape.isEmpty ? nil : shape)
                    }
                }
            case 6 where !groups.isEmpty:
                let g = r.pick(groups)
                done.append("removed group \(g)")
                try root.remove(g)
            default:
                guard !attributes.isEmpty else { continue }
                let (object, name) = r.pick(attributes)
                let on: String? = object == "/" ? nil : object
                let op = r.below(6)
                done.append("attribute \(object)@\(name) op \(op)")
                switch op {
                case 0: try root.setAttribute(name, "garbage é😀", on: on)
                case 1: try root.setAttribute(name, r.pick([Double.nan, -1, 1e300, 0]), on: on)
                case 2: try root.setAttribute(name, r.pick([Int64.max, Int64.min, -1, 999]), on: on)
                case 3: try root.setAttribute(name, "{\"seed\": \"x\", \"name\": 1}", on: on)
                case 4: try root.setAttribute(name, [String](), on: on)
                default: try root.setAttribute(name, [1.0, 2.0, 3.0], on: on)
                }
            }
        }
        return done
    }

    @Test func runFilesSummariesAndCacheEntries() throws {
        let fm = FileManager.default
        let folder = NSTemporaryDirectory() + "overopt-fuzz-h5-\(UUID().uuidString)"
        try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: folder) }
        let start = Date()

        // Seeds: the committed Fig. 2 run files and a summary, and the cache of a tiny run.
        let runs = packageRoot.appendingPathComponent("results/runs/fig2").path
        let runFiles = try fm.contentsOfDirectory(atPath: runs).filter { $0.hasSuffix(".h5") }.sorted().map { runs + "/" + $0 }
        let summary = packageRoot.appendingPathComponent("results/fig2-bon-ppo-clean-summary.h5").path
        let cache = folder + "/cache"
        let tiny = Process()
        tiny.executableURL = URL(fileURLWithPath: try overoptBinary())
        tiny.arguments = ["run", "--out", folder + "/tiny", "--cache", cache, "--quiet", "--threads", "1"] + Self.tinyRun
        tiny.standardOutput = FileHandle.nullDevice
        try tiny.run()
        tiny.waitUntilExit()
        try #require(tiny.terminationStatus == 0, "the tiny run failed")
        let config = try ExperimentConfig.load(path: nil, overrides: Self.tinyRun.filter { $0 != "--set" })
        let world = try World(config: config.world)
        let entries = try fm.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".h5") }.sorted()
        #expect(entries.count == 6, "\(entries)")
        let dataEntry = try #require(entries.first { $0.hasPrefix("data-") })
        let oodSets = try { () throws -> [String] in
            let f = try H5File.open(cache + "/" + dataEntry)
            defer { f.close() }
            return try PreferenceDataset.read(from: f.root, world: world).oodEval.map(\.name)
        }()
        let readers: [String: (H5Group) throws -> Any] = [
            "base": { try BasePolicy.read(from: $0) },
            "data": { try PreferenceDataset.read(from: $0, world: world) },
            "bon-samples": { try BestOfNSamples.read(from: $0, world: world) },
            "rm": { g in try RewardModelResult.read(from: g.group("rm"), proxy: ProxyRewardModel.load(from: g.group("checkpoint")),
                                                    config: config.variants["bt"]!, oodSets: oodSets) },
            "bon-curves": { try BestOfNCurves.read(from: $0.group("bon")) },
            "ppo": { try PPOCurves.read(from: $0.group("ppo"), config: config.ppo) },
        ]
        // Every clean entry loads.
        for e in entries {
            let stage = String(e.dropLast(20)), key = String(e.dropLast(3).suffix(16))
            let reader = try #require(readers[stage], "no reader for \(e)")
            var lines: [String] = []
            #expect(StageCache(directory: cache).load(stage: stage, key: key, log: { lines.append($0) }, reader) != nil, "\(e) does not load: \(lines)")
        }

        var r = SplitMix64(state: 2121)
        var cases = 0, failures = 0
        var seconds = [Double](repeating: 0, count: 3)
        var readerSeconds: [String: Double] = [:]
        print("fuzz HDF5: seeds ready after \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        let work = folder + "/work"
        for i in 0..<600 {
            try? fm.removeItem(atPath: work)
            try fm.createDirectory(atPath: work, withIntermediateDirectories: true)
            let kind = r.below(10)
            let caseStart = Date()
            defer { seconds[kind < 4 ? 0 : kind < 9 ? 1 : 2] += Date().timeIntervalSince(caseStart) }
            if kind < 4 {
                // A cache entry, its checksum stamped again after the edit (as a build writing
                // another layout would): the stage's reader must refuse it or read it.
                let e = r.pick(entries)
                let stage = String(e.dropLast(20)), key = String(e.dropLast(3).suffix(16))
                let entryCache = StageCache(directory: work)
                try fm.copyItem(atPath: cache + "/" + e, toPath: work + "/" + e)
                let edits = try mutate(work + "/" + e, &r)
                let f = try H5File.open(work + "/" + e, writable: true)
                try f.root.setAttribute(StageCache.checksumAttribute,
                                        String(format: "%016llx", try f.root.contentDigest(excluding: [StageCache.checksumAttribute])))
                f.close()
                var lines: [String] = []
                if entryCache.load(stage: stage, key: key, log: { lines.append($0) }, readers[stage]!) == nil {
                    failures += 1
                    if lines.count != 1 || lines[0].contains("\n") { Issue.record("case \(i) \(e) \(edits): \(lines)") }
                }
            } else if kind < 9 {
                // A run file among the other seeds' clean ones: inspect --samples, plot, compare, collect, report.
                let k = r.below(runFiles.count)
                let collect = r.chance(0.02), report = r.chance(0.005)
                // The other seeds' files only where the folder is read.
                for (j, file) in runFiles.enumerated() where j == k || collect || report {
                    try fm.copyItem(atPath: file, toPath: work + "/seed\(j).h5")
                }
                let path = work + "/seed\(k).h5"
                let edits = try mutate(path, &r)
                func attempt(_ what: String, _ body: () throws -> Void) {
                    let t0 = Date()
                    defer { readerSeconds[what, default: 0] += Date().timeIntervalSince(t0) }
                    do { try body() } catch {
                        failures += 1
                        if String(describing: error).isEmpty { Issue.record("case \(i) \(what) \(edits): an empty message") }
                    }
                }
                attempt("samples") { _ = try describeSamples(file: path) }
                attempt("plot") { _ = try figure(file: path) }
                if r.chance(0.15) { attempt("compare") { _ = try compareRuns(try readComparedRuns([path]).runs, options: CompareOptions(baseline: "bt")) } }
                if collect {
                    let output = folder + "/summary.h5"
                    attempt("collect") { _ = try collectResults(directory: work, outputPath: output, log: { _ in }) }
                    let left = try fm.contentsOfDirectory(atPath: folder).filter { $0.contains("summary") }
                    if !left.isEmpty && !left.allSatisfy({ $0 == "summary.h5" }) { Issue.record("case \(i): collect left \(left)") }
                    try? fm.removeItem(atPath: output)
                }
                if report { attempt("report") { _ = try renderReport(directory: work) } }
            } else {
                // The summary: plot (and the scaling panels, absent here).
                try fm.copyItem(atPath: summary, toPath: work + "/summary.h5")
                _ = try mutate(work + "/summary.h5", &r)
                do { _ = try figure(file: work + "/summary.h5") } catch { failures += 1 }
                do { _ = try figure(file: work + "/summary.h5", options: FigureOptions(scaling: true)) } catch { failures += 1 }
            }
            cases += 1
        }
        print("fuzz HDF5 in process: \(cases) mutated files (cache entries, run files, a summary), \(failures) reader errors, "
              + "no crash; \(String(format: "%.1f", Date().timeIntervalSince(start))) s (cache entries, run files, summary: \(seconds.map { String(format: "%.1f", $0) }))")
        print("fuzz HDF5 reader seconds: \(readerSeconds)")
        #expect(failures > 60)
    }
}
