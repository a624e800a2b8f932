// The values a run keeps in its cache entries (a proxy's result, PPO curves) read back
// exactly as written, so a resumed run writes the same result file as an uninterrupted one.
import Foundation
import Testing
import OverOpt
import OverOptEngine
import OverOptHDF5

@Suite struct UnitRoundTripTests {
    func roundTrip<T>(_ write: (H5Group) throws -> Void, _ read: (H5Group) throws -> T) throws -> T {
        let path = NSTemporaryDirectory() + "overopt-unit-\(UUID().uuidString).h5"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writeAtomically(to: path) { try write($0.root) }
        let f = try H5File.open(path)
        defer { f.close() }
        return try read(f.root)
    }

    @Test func anEnsembleResultReadsBackWithEveryMemberCurve() throws {
        var cfg = RewardModelConfig()
        cfg.objective = .ensemble
        let proxy = ProxyRewardModel(name: "ensemble", members: (0..<3).map { tinyProxyMember(seed: UInt64($0)) },
                                     combiner: .uwo, uwoLambda: 0.5)
        let curves = (0..<3).map { m -> TrainingCurve in
            var c = TrainingCurve()
            c.step = [0, 1, 2]; c.learningRate = [1e-4, 2e-4, 3e-4]
            c.loss = [0.7 + Double(m) * 0.01, 0.6, 0.5 / 3]
            c.accuracy = [0.5, 0.625, 0.75 + Double(m) / 7]
            return c
        }
        var r = RewardModelResult(proxy: proxy, config: cfg, seed: 7, trainPairs: 40, curves: curves, trainSeconds: 1.25, pairsPerSecond: 96)
        r.idAccuracy = 0.6; r.oodAccuracy = [("heldout_prompts", 0.55), ("ood_writer", 0.5), ("hot_samples", 1.0 / 3)]
        r.oodAccuracyMean = 0.461; r.lmPreferenceAccuracy = 0.52; r.lmNLL = 2.5; r.baseLMPreferenceAccuracy = 0.51
        r.baseLMNLL = 2.4; r.rewardMean = -0.1; r.rewardStd = .nan
        let back = try roundTrip({ try r.write(to: $0.createGroup("rm")) }) {
            try RewardModelResult.read(from: $0.group("rm"), proxy: proxy, config: cfg, oodSets: ["heldout_prompts", "ood_writer", "hot_samples"])
        }
        #expect(back.curves == r.curves && back.seed == 7 && back.trainPairs == 40)
        #expect(back.trainSeconds == 1.25 && back.pairsPerSecond == 96 && back.idAccuracy == 0.6)
        #expect(back.oodAccuracy.map(\.name) == r.oodAccuracy.map(\.name) && back.oodAccuracy.map(\.accuracy) == r.oodAccuracy.map(\.accuracy))
        #expect(back.oodAccuracyMean == 0.461 && back.lmNLL == 2.5 && back.baseLMNLL == 2.4 && back.rewardMean == -0.1 && back.rewardStd.isNaN)
        #expect(back.lmPreferenceAccuracy == 0.52 && back.baseLMPreferenceAccuracy == 0.51)
    }

    @Test func ppoCurvesReadBackEqual() throws {
        var c = PPOCurves(config: PPOConfig())
        c.step = [0, 5]; c.kl = [0, 0.3]; c.klK2 = [0, 0.1]; c.klK3 = [0, 0.2]; c.proxy = [-1, -0.5]; c.gold = [1, 1.1]
        for (i, name) in GoldScore.componentNames.enumerated() { c.goldComponents[name] = [Double(i), Double(i) / 3] }
        c.length = [30, 31]; c.entropy = [5, 4.9]
        c.trainStep = [1, 2, 3, 4, 5]; c.policyLoss = [0.1, 0.2, 0.3, 0.4, 0.5]; c.valueLoss = [1, 2, 3, 4, 5]
        c.trainReward = [-1, -0.9, -0.8, -0.7, -0.6]; c.trainKL = [0, 0.1, 0.2, 0.3, 0.4]; c.clipFraction = [0, 0, 0.1, 0.2, 0]
        c.approxKL = [0, 1e-4, 2e-4, 3e-4, 4e-4]; c.klCoef = [0, 0, 0, 0, 0]
        c.sampleStep = [0, 5]; c.sampleText = ["a → b", "c → d é"]
        c.samplePromptID = [12, 7]; c.sampleProxy = [0.5, -0.25]; c.sampleGold = [2.5, 1]
        c.rewardMean = -0.95; c.rewardStd = 0.25
        c.seconds = ["rollout": 1.5, "scoring": 0.25, "update": 3, "eval": 0.5]
        let back = try roundTrip({ try c.write(to: $0.createGroup("ppo")) }) { try PPOCurves.read(from: $0.group("ppo"), config: PPOConfig()) }
        #expect(back == c)
    }
}
