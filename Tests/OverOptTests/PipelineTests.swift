// The pipeline's data stages: label noise, determinism per seed, the stage cache, and the
// preference data's HDF5 round trip.
import Foundation
import Testing
import OverOpt
import OverOptEngine
import OverOptHDF5

@Suite struct PreferenceDataTests {
    func smallConfig(noise: Double = 0) -> PreferenceDataConfig {
        var c = PreferenceDataConfig()
        c.trainPairs = 120; c.evalPairs = 30; c.labelNoise = noise
        return c
    }

    @Test func labelNoiseFlipsExactlyTheRequestedShareUniformly() {
        // Exactly round(noise·count) pairs are swapped, each pair with equal chance.
        let p = testWorld.trainPrompts[0]
        let pairs = (0..<400).map { i in
            PreferencePair.labelled(prompt: p, a: [Int32(5 + i % 7), Tokenizer.eos], b: [Tokenizer.eos],
                                    goldA: Double(i), goldB: -1, flip: false, kind: .baseVsBase)
        }
        var counts = [Int](repeating: 0, count: 400)
        for seed in 0..<200 {
            var rng = RNG(seed: UInt64(seed))
            let noisy = applyLabelNoise(pairs, noise: 0.25, rng: &rng)
            #expect(noisy.filter(\.flipped).count == 100)
            for (i, q) in noisy.enumerated() where q.flipped {
                counts[i] += 1
                #expect(q.chosenGold < q.rejectedGold && q.goldMargin < 0)
            }
        }
        // Each pair is flipped in ≈ 25% of the 200 seeds (binomial sd ≈ 6): no pair is favoured.
        #expect(counts.min()! > 20 && counts.max()! < 80, "flip counts range \(counts.min()!)…\(counts.max()!)")
    }

    @Test func sameSeedGivesIdenticalDataAndOtherSeedsDiffer() {
        let base = tinyPolicy()
        let a = buildPreferenceData(world: testWorld, basePolicy: base, config: smallConfig(noise: 0.25), seed: 4, log: { _ in })
        let b = buildPreferenceData(world: testWorld, basePolicy: base, config: smallConfig(noise: 0.25), seed: 4, log: { _ in })
        let c = buildPreferenceData(world: testWorld, basePolicy: base, config: smallConfig(noise: 0.25), seed: 5, log: { _ in })
        #expect(a.train.map(\.chosen) == b.train.map(\.chosen))
        #expect(a.train.map(\.flipped) == b.train.map(\.flipped))
        #expect(a.oodEval.map { $0.pairs.map(\.rejected) } == b.oodEval.map { $0.pairs.map(\.rejected) })
        #expect(a.train.map(\.chosen) != c.train.map(\.chosen))
        #expect(a.train.filter(\.flipped).count == 30)
        #expect(a.idEval.allSatisfy { !$0.flipped && $0.chosenGold >= $0.rejectedGold })
        #expect(a.train.allSatisfy { !$0.prompt.isHeldOut })
        #expect(a.oodEval.first { $0.name == "heldout_prompts" }!.pairs.allSatisfy { $0.prompt.isHeldOut })
        #expect(Set(a.train.map(\.kind)) == [.baseVsBase, .baseVsPerturbed])
    }

    @Test func preferenceDataRoundTripsThroughHDF5() throws {
        let d = buildPreferenceData(world: testWorld, basePolicy: tinyPolicy(), config: smallConfig(noise: 0.1), seed: 1, log: { _ in })
        let path = NSTemporaryDirectory() + "overopt-data-\(UUID().uuidString).h5"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writeAtomically(to: path) { try d.write(to: $0.root) }
        let r = try PreferenceDataset.read(from: try H5File.open(path).root, world: testWorld)
        #expect(r.train.map(\.chosen) == d.train.map(\.chosen))
        #expect(r.train.map(\.rejected) == d.train.map(\.rejected))
        #expect(r.train.map(\.flipped) == d.train.map(\.flipped))
        #expect(r.train.map(\.prompt.id) == d.train.map(\.prompt.id))
        #expect(r.oodEval.map(\.name) == d.oodEval.map(\.name))
        #expect(r.idEval.map(\.chosenGold) == d.idEval.map(\.chosenGold))
    }
}

@Suite struct StageCacheTests {
    func tempDir() -> String {
        let d = NSTemporaryDirectory() + "overopt-cache-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test func hitMissAndCorruption() throws {
        let cache = StageCache(directory: tempDir())
        var lines: [String] = []
        let log: (String) -> Void = { lines.append($0) }
        // Miss.
        #expect(cache.load(stage: "base", key: "k1", log: log, { try $0.readDoubles("x").values }) == nil)
        // Store, then hit.
        try cache.store(stage: "base", key: "k1", log: log) { try $0.write("x", [1.0, 2.0]) }
        #expect(cache.load(stage: "base", key: "k1", log: log, { try $0.readDoubles("x").values }) == [1, 2])
        // Another key misses.
        #expect(cache.load(stage: "base", key: "k2", log: log, { try $0.readDoubles("x").values }) == nil)
        // A corrupt (truncated) entry is reported and treated as a miss.
        let path = cache.path(stage: "base", key: "k1")!
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(100).write(to: URL(fileURLWithPath: path))
        lines = []
        #expect(cache.load(stage: "base", key: "k1", log: log, { try $0.readDoubles("x").values }) == nil)
        #expect(lines.contains { $0.contains("unreadable") })
        // Rebuilding over it works.
        try cache.store(stage: "base", key: "k1", log: log) { try $0.write("x", [3.0]) }
        #expect(cache.load(stage: "base", key: "k1", log: log, { try $0.readDoubles("x").values }) == [3])
        // A readable file missing what the stage needs is also a miss.
        #expect(cache.load(stage: "base", key: "k1", log: log, { try $0.readDoubles("y").values }) == nil)
    }

    @Test func entryBuildsOnceThenLoadsAndAbandonedTemporariesGo() throws {
        let dir = tempDir()
        let cache = StageCache(directory: dir)
        var builds = 0
        for _ in 0..<2 {
            let v = try cache.entry(stage: "rm", key: "k", log: { _ in }, read: { try $0.readDoubles("x").values },
                                    build: { builds += 1; return [4.0, 5.0] }, write: { try $1.write("x", $0) })
            #expect(v == [4, 5])
        }
        #expect(builds == 1)
        #expect(FileManager.default.fileExists(atPath: dir + "/rm-k.h5.lock"))
        // A killed builder's temporary (its lock free) is removed; one whose lock is held
        // (a builder at work, maybe on another machine) is kept.
        _ = FileManager.default.createFile(atPath: dir + "/.rm-a.h5.tmp-999999-x", contents: Data("partial".utf8))
        _ = FileManager.default.createFile(atPath: dir + "/.rm-b.h5.tmp-1-y", contents: Data("partial".utf8))
        let held = open(dir + "/rm-b.h5.lock", O_RDWR | O_CREAT, 0o644)
        defer { close(held) }
        #expect(flock(held, LOCK_EX | LOCK_NB) == 0)
        cache.removeAbandonedTemporaries()
        let left = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(!left.contains(".rm-a.h5.tmp-999999-x") && left.contains(".rm-b.h5.tmp-1-y"), "\(left)")
    }

    /// Overwrites `count` bytes in the middle of the file at `path` with `byte`.
    func overwriteMiddle(_ path: String, with byte: UInt8, count: Int) throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        let start = data.count / 2 - count / 2
        data.replaceSubrange(start..<(start + count), with: [UInt8](repeating: byte, count: count))
        try data.write(to: URL(fileURLWithPath: path))
    }

    @Test(arguments: [UInt8(0), 0xFF])
    func anEntryChangedOnDiskFailsItsChecksumAndIsRebuilt(byte: UInt8) throws {
        let dir = tempDir()
        let cache = StageCache(directory: dir)
        let values = (0..<20_000).map { Double($0).squareRoot() }
        var builds = 0
        let read = { (g: H5Group) in try g.readDoubles("x").values }
        _ = try cache.entry(stage: "base", key: "k", log: { _ in }, read: read, build: { builds += 1; return values }, write: { try $1.write("x", $0) })
        let path = cache.path(stage: "base", key: "k")!
        let f = try H5File.open(path)
        #expect(try f.root.stringAttribute(StageCache.checksumAttribute).count == 16)
        f.close()
        // Bytes inside the data region (the 160 KB dataset is most of the file): the file
        // stays readable, only its numbers change — what the checksum is for.
        try overwriteMiddle(path, with: byte, count: 64)
        let changed = try H5File.open(path)
        #expect(try changed.root.readDoubles("x").values != values)
        changed.close()
        var lines: [String] = []
        #expect(cache.load(stage: "base", key: "k", log: { lines.append($0) }, read) == nil)
        #expect(lines.count == 1 && lines[0].contains("corrupt") && lines[0].contains(path), "\(lines)")
        lines = []
        let v = try cache.entry(stage: "base", key: "k", log: { lines.append($0) }, read: read,
                                build: { builds += 1; return values }, write: { try $1.write("x", $0) })
        #expect(v == values && builds == 2)
        #expect(lines.filter { $0.contains("corrupt") }.count == 1 && lines.contains { $0.contains("removed it, rebuilding") }, "\(lines)")
        #expect(cache.load(stage: "base", key: "k", log: { _ in }, read) == values)
    }

    @Test func anEntryWithoutAChecksumIsStaleAndRebuilt() throws {
        let dir = tempDir()
        let cache = StageCache(directory: dir)
        let path = cache.path(stage: "data", key: "k")!
        try writeAtomically(to: path) { try $0.root.write("x", [1.0, 2.0]) }   // as an older build wrote entries
        var lines: [String] = [], builds = 0
        let v = try cache.entry(stage: "data", key: "k", log: { lines.append($0) }, read: { try $0.readDoubles("x").values },
                                build: { builds += 1; return [3.0] }, write: { try $1.write("x", $0) })
        #expect(v == [3.0] && builds == 1)
        #expect(lines.contains { $0.contains("stale: it has no checksum") && $0.contains(path) }, "\(lines)")
    }

    @Test func theChecksumCoversValuesAttributesNamesAndShapes() throws {
        let dir = tempDir()
        func digest(_ body: (H5Group) throws -> Void) throws -> UInt64 {
            let p = dir + "/d-\(UUID().uuidString).h5"
            try writeAtomically(to: p, { try body($0.root) })
            let f = try H5File.open(p)
            defer { f.close() }
            return try f.root.contentDigest(excluding: ["skip"])
        }
        let reference = try digest { try $0.write("g/x", [1.0, 2.0, 3.0, 4.0]); try $0.setAttribute("a", "text") }
        #expect(try digest { try $0.write("g/x", [1.0, 2.0, 3.0, 4.0]); try $0.setAttribute("a", "text") } == reference)
        #expect(try digest { try $0.write("g/x", [1.0, 2.0, 3.0, 4.0]); try $0.setAttribute("a", "text"); try $0.setAttribute("skip", 1.0) } == reference)
        #expect(try digest { try $0.write("g/x", [1.0, 2.0, 3.0, 4.5]); try $0.setAttribute("a", "text") } != reference)
        #expect(try digest { try $0.write("g/x", [1.0, 2.0, 3.0, 4.0], shape: [2, 2]); try $0.setAttribute("a", "text") } != reference)
        #expect(try digest { try $0.write("g/y", [1.0, 2.0, 3.0, 4.0]); try $0.setAttribute("a", "text") } != reference)
        #expect(try digest { try $0.write("g/x", [Float(1), 2, 3, 4]); try $0.setAttribute("a", "text") } != reference)
        #expect(try digest { try $0.write("g/x", [1.0, 2.0, 3.0, 4.0]); try $0.setAttribute("a", "texT") } != reference)
        #expect(try digest { try $0.write("g/x", [1.0, 2.0, 3.0, 4.0]); try $0.setAttribute("a", "text"); try $0.write("g/s", strings: ["a"]) } != reference)
    }

    @Test func disabledCacheNeverStores() throws {
        let cache = StageCache(directory: nil)
        try cache.store(stage: "base", key: "k", log: { _ in }) { try $0.write("x", [1.0]) }
        #expect(cache.load(stage: "base", key: "k", log: { _ in }, { try $0.readDoubles("x").values }) == nil)
    }

    @Test func keysAreStableAndSensitive() {
        var a = BasePolicyConfig(), b = BasePolicyConfig()
        #expect(StageCache.key(a) == StageCache.key(b))
        b.corpusSize += 1
        #expect(StageCache.key(a) != StageCache.key(b))
        a.seed = 9
        #expect(StageCache.key(a) != StageCache.key(BasePolicyConfig()))
    }

    @Test func basePolicyRoundTripsThroughTheCache() throws {
        var cfg = BasePolicyConfig()
        cfg.corpusSize = 64; cfg.batchSize = 32; cfg.evalSequences = 16
        let b = pretrainBasePolicy(world: testWorld, config: cfg, log: { _ in })
        #expect(b.evalNLL.isFinite)
        let cache = StageCache(directory: tempDir())
        try cache.store(stage: "base", key: "k", log: { _ in }) { try b.write(to: $0) }
        let r = cache.load(stage: "base", key: "k", log: { _ in }) { try BasePolicy.read(from: $0) }
        #expect(r?.model.params.array == b.model.params.array)
        #expect(r?.evalNLL == b.evalNLL)
        // Same seed → the same base policy.
        let b2 = pretrainBasePolicy(world: testWorld, config: cfg, log: { _ in })
        #expect(b2.model.params.array == b.model.params.array)
    }
}
