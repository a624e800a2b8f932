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

/// SplitMix64: the harness's own stream, fixed by its seed.
struct FuzzRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func pick<T>(_ xs: [T]) -> T { xs[below(xs.count)] }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
}

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
func randomOverride(_ r: inout FuzzRandom, keys: [String]) -> String {
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
func mutatedTOML(_ text: String, _ r: inout FuzzRandom) -> String {
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
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func configsAndOverrides() throws {
        let keys = try defaultConfigKeys()
        #expect(keys.contains("ppo.minibatch_size") && keys.contains("bon.samples_per_prompt"))
        var r = FuzzRandom(state: 21)
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
}
