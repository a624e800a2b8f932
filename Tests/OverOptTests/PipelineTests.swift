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
