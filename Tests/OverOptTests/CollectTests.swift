// CollectTests.swift — `collect` on tiny synthetic result files written here: grouping
// ignores the seed, statistics match hand-computed values, PPO curves meet on a common KL
// grid, incomplete files are skipped, and the fits are stored.

import Foundation
import Testing
import OverOptHDF5
@testable import OverOpt

/// A fresh empty folder under the temporary directory.
func temporaryFolder(_ label: String) throws -> String {
    let p = FileManager.default.temporaryDirectory.appendingPathComponent("overopt-\(label)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

/// A minimal run file with the schema `collect` and `plot` read: best-of-n on n = 1, 2, 4
/// (gold = goldAtN, proxy = 2·goldAtN), PPO at steps 0, 5, 10 (kl, gold), an RM accuracy.
func writeToyRun(_ path: String, seed: Int, noise: Double = 0, goldAtN: [Double], ppoKL: [Double] = [0, 1, 2],
                 ppoGold: [Double] = [0, 1, 2], idAccuracy: Double = 0.7, complete: Bool = true,
                 variants: [String] = ["bt"]) throws {
    try writeAtomically(to: path) { f in
        let root = f.root
        try root.setAttribute("config", #"{"data" : {"label_noise" : \#(noise)}, "name" : "toy", "seed" : \#(seed)}"#)
        try root.setAttribute("seed", Int64(seed))
        try root.setAttribute("name", "toy")
        for v in variants {
            let bon = try root.createGroup("bon/\(v)")
            let n: [Int64] = [1, 2, 4]
            try bon.write("n", n)
            try bon.write("kl", n.map { log(Double($0)) - Double($0 - 1) / Double($0) })
            try bon.write("gold", goldAtN)
            try bon.write("proxy", goldAtN.map { 2 * $0 })
            try bon.write("gold_sem", [9.0, 9, 9])   // sems over prompts: kept as gold_sem_over_prompts
            try bon.write("gold_shifted", goldAtN.map { $0 - goldAtN[0] })
            try bon.write("proxy_shifted", goldAtN.map { 2 * ($0 - goldAtN[0]) })
            let ppo = try root.createGroup("ppo/\(v)")
            try ppo.write("step", [0, 5, 10] as [Int64])
            try ppo.write("kl", ppoKL)
            try ppo.write("gold", ppoGold)
            try ppo.write("proxy", ppoGold.map { 3 * $0 })
            try ppo.write("policy_loss", [0.1, 0.2] as [Double])
            let rm = try root.createGroup("rm/\(v)")
            try rm.write("id_accuracy", [idAccuracy], shape: [])
            try rm.write("ood_accuracy/hot", [idAccuracy - 0.1], shape: [])
        }
        if complete { try root.setAttribute("complete", Int64(1)) }
    }
}

@Test func groupingIgnoresTheSeed() throws {
    let a = try configWithoutSeed(#"{"seed": 1, "name": "x", "data": {"label_noise": 0.25}}"#)
    let b = try configWithoutSeed(#"{"data": {"label_noise": 0.25}, "name": "x", "seed": 7}"#)
    let c = try configWithoutSeed(#"{"data": {"label_noise": 0.0}, "name": "x", "seed": 1}"#)
    #expect(a == b)
    #expect(a != c)
}

@Test func collectStatisticsMatchHandComputedValues() throws {
    let dir = try temporaryFolder("collect")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // Group A: label_noise 0, seeds 0, 1, 2. Gold at n=4 is 1, 2, 4 across seeds.
    try writeToyRun("\(dir)/a0.h5", seed: 0, goldAtN: [0, 0.5, 1], ppoKL: [0, 1, 2], ppoGold: [0, 1, 2], idAccuracy: 0.6)
    try writeToyRun("\(dir)/a1.h5", seed: 1, goldAtN: [0, 1, 2], ppoKL: [0, 2, 4], ppoGold: [0, 4, 8], idAccuracy: 0.7)
    try writeToyRun("\(dir)/a2.h5", seed: 2, goldAtN: [1, 2, 5], ppoKL: [0, 1.5, 3], ppoGold: [1, 1, 1], idAccuracy: 0.8)
    // Group B: label_noise 0.25, one seed. And an incomplete file, which is skipped.
    try writeToyRun("\(dir)/b0.h5", seed: 0, noise: 0.25, goldAtN: [0, 1, 1])
    try writeToyRun("\(dir)/c0.h5", seed: 5, goldAtN: [0, 9, 9], complete: false)
    let out = "\(dir)/summary.h5"
    let report = try collectResults(directory: dir, outputPath: out, klPoints: 3)
    #expect(report.runs == 4)
    #expect(report.skipped.count == 1)
    let seedLists: [[Int64]] = report.groups.map(\.seeds).sorted { $0.count > $1.count }
    #expect(seedLists == [[0, 1, 2], [0]])

    let f = try H5File.open(out)
    defer { f.close() }
    #expect(try f.root.stringAttribute("kind") == "summary")
    #expect(try f.root.intAttribute("schema_version") == resultSchemaVersion)
    #expect(try f.root.stringAttribute("source") == (dir as NSString).lastPathComponent)   // no machine path
    let groups = try f.root.group("groups")
    let names = try groups.children()
    #expect(names.count == 2)
    let gA = try groups.group(try names.first { try groups.group($0).intAttribute("count") == 3 }!)
    #expect(try gA.intArrayAttribute("seeds") == [0, 1, 2])
    #expect(try gA.readStrings("files") == ["a0.h5", "a1.h5", "a2.h5"])
    #expect(!(try gA.stringAttribute("config")).contains("seed"))

    // Best-of-n: gold at n = 4 across seeds is 1, 2, 5 → mean 8/3, std √(13/3), sem √13/3.
    let bon = try gA.group("bon/bt")
    #expect(try bon.readInt64s("n").values == [1, 2, 4])
    let m = try bon.readDoubles("gold").values, s = try bon.readDoubles("gold_std_over_seeds").values
    let e = try bon.readDoubles("gold_sem_over_seeds").values
    #expect(abs(m[2] - 8.0 / 3) < 1e-12)
    #expect(abs(s[2] - (13.0 / 3).squareRoot()) < 1e-12)   // deviations −5/3, −2/3, 7/3: Σ² = 78/9, /2
    #expect(abs(e[2] - 13.0.squareRoot() / 3) < 1e-12)
    // Shifted gold at n = 4: 1, 2, 4 → mean 7/3.
    #expect(abs(try bon.readDoubles("gold_shifted").values[2] - 7.0 / 3) < 1e-12)
    #expect(try bon.readDoubles("gold_sem_over_prompts").values == [9, 9, 9])
    // Each seed's curve, seed-major, on the `seed` and `n` dimensions.
    let perSeed = try bon.readDoubles("gold_per_seed")
    #expect(perSeed.shape == [3, 3] && perSeed.values == [0, 0.5, 1, 0, 1, 2, 1, 2, 5])
    #expect(try bon.readInt64s("seed").values == [0, 1, 2])
    #expect(try bon.dimensionNames(of: "gold_per_seed") == ["seed", "n"])
    #expect(try bon.dimensionNames(of: "gold") == ["n"])
    #expect(try bon.stringAttribute("units", on: "gold") == "reward")
    #expect(bon.hasAttribute("gold_alpha") && bon.hasAttribute("gold_r2"))

    // PPO: grid 0 … min(2, 4, 3) = 2 in 3 points; seed 1 interpolated (kl 1 → gold 2),
    // seed 2 shifted by its step-0 gold (1) → 0 everywhere.
    let ppo = try gA.group("ppo/bt")
    #expect(try ppo.readDoubles("kl").values == [0, 1, 2])
    let pm = try ppo.readDoubles("gold_shifted").values
    let expected: [Double] = [0, 1, 2]   // means of (0, 0, 0), (1, 2, 0), (2, 4, 0)
    #expect(zip(pm, expected).allSatisfy { abs($0 - $1) < 1e-12 })
    #expect(!ppo.contains("policy_loss"))
    #expect(try ppo.dimensionNames(of: "gold_shifted_per_seed") == ["seed", "kl"])

    // RM scalars: 0.6, 0.7, 0.8 → mean 0.7, std 0.1, sem 0.1/√3.
    let rm = try gA.group("rm/bt")
    #expect(abs(try rm.readDoubles("id_accuracy").values[0] - 0.7) < 1e-12)
    #expect(abs(try rm.readDoubles("id_accuracy_std_over_seeds").values[0] - 0.1) < 1e-12)
    #expect(abs(try rm.readDoubles("id_accuracy_sem_over_seeds").values[0] - 0.1 / 3.0.squareRoot()) < 1e-12)
    #expect(abs(try rm.readDoubles("ood_accuracy/hot").values[0] - 0.6) < 1e-12)
    #expect(try rm.readDoubles("id_accuracy_per_seed").values == [0.6, 0.7, 0.8])

    // The one-seed group: no spread.
    let gB = try groups.group(try names.first { try groups.group($0).intAttribute("count") == 1 }!)
    #expect(try gB.group("bon/bt").readDoubles("gold_std_over_seeds").values.allSatisfy(\.isNaN))
}

@Test func collectFailsClearlyOnAFolderWithoutRuns() throws {
    let dir = try temporaryFolder("collect-empty")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    #expect(throws: CollectError.self) { try collectResults(directory: dir, outputPath: "\(dir)/s.h5") }
    #expect(!FileManager.default.fileExists(atPath: "\(dir)/s.h5"))
    // A missing folder, and a file given as the folder: one line naming the path.
    for (path, expected) in [("\(dir)/missing", "\(dir)/missing: no such folder"), ("\(dir)/s.txt", "is a file")] {
        if path.hasSuffix(".txt") { FileManager.default.createFile(atPath: path, contents: Data("x".utf8)) }
        do {
            _ = try collectResults(directory: path, outputPath: "\(dir)/s.h5")
            Issue.record("collect of \(path) did not fail")
        } catch {
            #expect("\(error)".contains(expected) && !"\(error)".contains("\n"), "\(error)")
        }
    }
}
