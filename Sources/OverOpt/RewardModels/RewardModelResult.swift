// RewardModelResult.swift — what the proxy stage hands on and writes to the results file,
// and proxy checkpoints for best-of-n and PPO.
//
// Results layout under the given group (e.g. /rm/<variant>):
//   step (int64, S), loss, accuracy (float64, S): the training curve, mean over members
//   member_loss, member_accuracy (k,S): per member, for ensemble and warm
//   learning_rate (S)
//   id_accuracy, ood_accuracy/<set>, ood_accuracy_mean         (scalars, against gold)
//   lm_preference_accuracy, lm_nll, base_lm_preference_accuracy, base_lm_nll (scalars)
//   reward_mean, reward_std (scalars; NaN without normalization samples)
//   train_seconds, pairs_per_second (scalars)
//   attributes: every config key (snake_case; `base`, `inform_latent_dim` and `inform_beta`
//   only when set), seed, train_pairs,
//   variant, base_parameters (the parameters of the language model it was fine-tuned from)
// Proxy checkpoint layout (ProxyRewardModel.save): attributes name, combiner, uwo_lambda,
// members; members/<i> = a Transformer checkpoint (Checkpoint.swift).

import OverOptEngine
import OverOptHDF5

/// A trained proxy with its curves and evaluation.
public struct RewardModelResult: @unchecked Sendable {
    public let proxy: ProxyRewardModel
    public let config: RewardModelConfig
    public let seed: UInt64
    public let trainPairs: Int
    /// One curve per trained member (before WARM averaging).
    public let curves: [TrainingCurve]
    public let trainSeconds: Double
    /// Pairs processed per second of training (pairs × epochs × members / seconds).
    public let pairsPerSecond: Double
    /// Gold accuracy on the ID evaluation set.
    public var idAccuracy = Double.nan
    /// Gold accuracy per OOD set, in the dataset's order.
    public var oodAccuracy: [(name: String, accuracy: Double)] = []
    public var oodAccuracyMean = Double.nan
    /// The proxy's LM head on the ID set (mean over members), and the base policy's.
    public var lmPreferenceAccuracy = Double.nan
    public var lmNLL = Double.nan
    public var baseLMPreferenceAccuracy = Double.nan
    public var baseLMNLL = Double.nan
    /// Proxy score mean and std on the base-policy samples given for normalization.
    public var rewardMean = Double.nan
    public var rewardStd = Double.nan

    public init(proxy: ProxyRewardModel, config: RewardModelConfig, seed: UInt64, trainPairs: Int,
                curves: [TrainingCurve], trainSeconds: Double, pairsPerSecond: Double) {
        self.proxy = proxy; self.config = config; self.seed = seed; self.trainPairs = trainPairs
        self.curves = curves; self.trainSeconds = trainSeconds; self.pairsPerSecond = pairsPerSecond
    }

    /// One line for logs.
    public var summary: String {
        let ood = oodAccuracy.map { String(format: "%@ %.3f", $0.name, $0.accuracy) }.joined(separator: ", ")
        return String(format: "rm %@: ID %.3f, OOD mean %.3f (%@); LM pref %.3f, LM NLL %.3f (base %.3f); %.1f s, %.0f pairs/s",
                      proxy.name, idAccuracy, oodAccuracyMean, ood, lmPreferenceAccuracy, lmNLL, baseLMNLL,
                      trainSeconds, pairsPerSecond)
    }

    /// Writes curves, metrics and hyperparameters under `group` (see the file header).
    public func write(to group: H5Group) throws {
        let S = curves.map(\.step.count).min() ?? 0
        let k = curves.count
        func meanCurve(_ kp: KeyPath<TrainingCurve, [Double]>) -> [Double] {
            (0..<S).map { s in curves.map { $0[keyPath: kp][s] }.reduce(0, +) / Double(k) }
        }
        try group.write("step", Array((curves.first?.step ?? []).prefix(S)))
        try group.write("loss", meanCurve(\.loss))
        try group.write("accuracy", meanCurve(\.accuracy))
        try group.write("learning_rate", Array((curves.first?.learningRate ?? []).prefix(S)))
        if k > 1 {
            try group.write("member_loss", curves.flatMap { $0.loss.prefix(S) }, shape: [k, S])
            try group.write("member_accuracy", curves.flatMap { $0.accuracy.prefix(S) }, shape: [k, S])
        }
        func scalar(_ name: String, _ v: Double) throws { try group.write(name, [v], shape: []) }
        try scalar("id_accuracy", idAccuracy)
        for (name, acc) in oodAccuracy { try scalar("ood_accuracy/\(name)", acc) }
        try scalar("ood_accuracy_mean", oodAccuracyMean)
        try scalar("lm_preference_accuracy", lmPreferenceAccuracy)
        try scalar("lm_nll", lmNLL)
        try scalar("base_lm_preference_accuracy", baseLMPreferenceAccuracy)
        try scalar("base_lm_nll", baseLMNLL)
        try scalar("reward_mean", rewardMean)
        try scalar("reward_std", rewardStd)
        try scalar("train_seconds", trainSeconds)
        try scalar("pairs_per_second", pairsPerSecond)
        try group.setAttribute("variant", proxy.name)
        try group.setAttribute("seed", Int64(bitPattern: seed))
        try group.setAttribute("train_pairs", Int64(trainPairs))
        // The size of the language model the proxy was fine-tuned from (its own base's, with
        // `rm.base`), without the reward head: the x axis of reward-model scaling.
        if let member = proxy.members.first {
            try group.setAttribute("base_parameters", Int64(Transformer(config: member.config).parameterCount))
        }
        try config.writeAttributes(to: group)
    }
}

extension RewardModelResult {
    /// Reads what `write(to:)` wrote, with the proxy and the settings it was trained with
    /// (the attributes are not parsed) and the OOD sets in the dataset's order.
    public static func read(from group: H5Group, proxy: ProxyRewardModel, config: RewardModelConfig,
                            oodSets: [String]) throws -> RewardModelResult {
        func scalar(_ name: String) throws -> Double { try group.readDoubles(name).values.first ?? .nan }
        let step = try group.readInt64s("step").values
        let learningRate = try group.readDoubles("learning_rate").values
        var curves: [TrainingCurve] = []
        if group.contains("member_loss") {
            let (loss, shape) = try group.readDoubles("member_loss")
            let accuracy = try group.readDoubles("member_accuracy").values
            for m in 0..<shape[0] {
                var c = TrainingCurve()
                c.step = step; c.learningRate = learningRate
                c.loss = Array(loss[(m * shape[1])..<((m + 1) * shape[1])])
                c.accuracy = Array(accuracy[(m * shape[1])..<((m + 1) * shape[1])])
                curves.append(c)
            }
        } else {
            var c = TrainingCurve()
            c.step = step; c.learningRate = learningRate
            c.loss = try group.readDoubles("loss").values
            c.accuracy = try group.readDoubles("accuracy").values
            curves = [c]
        }
        var r = RewardModelResult(proxy: proxy, config: config, seed: UInt64(bitPattern: try group.intAttribute("seed")),
                                  trainPairs: Int(try group.intAttribute("train_pairs")), curves: curves,
                                  trainSeconds: try scalar("train_seconds"), pairsPerSecond: try scalar("pairs_per_second"))
        r.idAccuracy = try scalar("id_accuracy")
        r.oodAccuracy = try oodSets.map { ($0, try scalar("ood_accuracy/\($0)")) }
        r.oodAccuracyMean = try scalar("ood_accuracy_mean")
        r.lmPreferenceAccuracy = try scalar("lm_preference_accuracy")
        r.lmNLL = try scalar("lm_nll")
        r.baseLMPreferenceAccuracy = try scalar("base_lm_preference_accuracy")
        r.baseLMNLL = try scalar("base_lm_nll")
        r.rewardMean = try scalar("reward_mean")
        r.rewardStd = try scalar("reward_std")
        return r
    }
}

// MARK: - Proxy checkpoints

/// A proxy checkpoint that cannot be read.
public struct ProxyCheckpointError: Error, CustomStringConvertible {
    public let description: String
}

extension ProxyRewardModel {
    /// Writes the members (Transformer checkpoints under members/<i>) and the combiner.
    public func save(to group: H5Group) throws {
        try group.setAttribute("name", name)
        try group.setAttribute("combiner", combiner.rawValue)
        try group.setAttribute("uwo_lambda", uwoLambda)
        try group.setAttribute("members", Int64(members.count))
        for (i, m) in members.enumerated() { try m.save(to: group.createGroup("members/\(i)")) }
    }

    /// Reads a proxy written by `save(to:)`.
    public static func load(from group: H5Group) throws -> ProxyRewardModel {
        let n = Int(try group.intAttribute("members"))
        guard let combiner = EnsembleCombiner(rawValue: try group.stringAttribute("combiner")) else {
            throw ProxyCheckpointError(description: "\(group.path): unknown combiner \"\(try group.stringAttribute("combiner"))\"")
        }
        let members = try (0..<n).map { try Transformer.load(from: group.group("members/\($0)")) }
        return ProxyRewardModel(name: try group.stringAttribute("name"), members: members, combiner: combiner,
                                uwoLambda: try group.doubleAttribute("uwo_lambda"))
    }
}
