// ProxyRewardModel.swift — a trained proxy reward model as the downstream stages see it.
//
// A proxy is one or more transformers with a reward head (an ensemble has k members),
// combined when scoring by the mean, the worst case (min) or uncertainty-weighted
// optimization (mean − λ·variance; Coste et al. 2023). Best-of-n and PPO only ever call
// `score`. The score of a response is the reward head read at the last token of
// [BOS] prompt [SEP] response (normally EOS).
import OverOptEngine

/// How an ensemble's member scores are combined (Coste et al. 2023).
public enum EnsembleCombiner: String, Codable, Sendable, CaseIterable {
    /// Mean over members.
    case mean
    /// Worst case: minimum over members (WCO).
    case min
    /// Uncertainty-weighted: mean − λ·variance over members (UWO).
    case uwo
}

/// Combines member scores for one response.
public func combineEnsemble(_ scores: [Double], combiner: EnsembleCombiner, uwoLambda: Double) -> Double {
    precondition(!scores.isEmpty, "combineEnsemble needs at least one member score")
    let mean = Statistics.mean(scores)
    switch combiner {
    case .mean: return mean
    case .min: return scores.min()!
    case .uwo:
        // Population variance across members (the intra-ensemble spread).
        return mean - uwoLambda * Statistics.variance(scores, mean: mean)
    }
}

/// A proxy reward model: k ≥ 1 reward transformers and a combiner.
public final class ProxyRewardModel: @unchecked Sendable {
    /// The variant name (e.g. "bt", "grm-sft"): the HDF5 group name downstream.
    public let name: String
    public let members: [Transformer]
    public let combiner: EnsembleCombiner
    public let uwoLambda: Double

    public init(name: String, members: [Transformer], combiner: EnsembleCombiner = .mean, uwoLambda: Double = 0.5) {
        precondition(!members.isEmpty, "a proxy needs at least one member")
        precondition(members.allSatisfy { $0.heads.reward != .none }, "every proxy member needs a reward head")
        self.name = name
        self.members = members
        self.combiner = combiner
        self.uwoLambda = uwoLambda
    }

    /// Scores of every member for each (prompt, response): [member][response].
    public func memberScores(world: World, prompts: [Prompt], responses: [[Int32]], batchSize: Int = 256) -> [[Double]] {
        precondition(prompts.count == responses.count, "one prompt per response")
        let sequences = zip(prompts, responses).map { world.trainingSequence(prompt: $0, response: $1) }
        return members.map { scoreSequences($0, sequences, batchSize: batchSize) }
    }

    /// The latent dimension of an InfoRM proxy (one member with a variational head), else nil.
    public var latentDimension: Int? { members.count == 1 ? members[0].latentDimension : nil }

    /// The latent means μ(h) of an InfoRM proxy for each (prompt, response), [response][D]:
    /// the encoder's mean at the token the reward is read at.
    public func latentMeans(world: World, prompts: [Prompt], responses: [[Int32]], batchSize: Int = 256) -> [[Double]] {
        guard let D = latentDimension else { preconditionFailure("latentMeans needs an InfoRM proxy (a variational reward head)") }
        precondition(prompts.count == responses.count, "one prompt per response")
        let sequences = zip(prompts, responses).map { world.trainingSequence(prompt: $0, response: $1) }
        let flat = members[0].rewardLatentMeans(sequences, chunkSize: batchSize)
        return (0..<sequences.count).map { i in flat[(i * D)..<((i + 1) * D)].map(Double.init) }
    }

    /// The proxy score of each (prompt, response), members combined.
    public func score(world: World, prompts: [Prompt], responses: [[Int32]], batchSize: Int = 256) -> [Double] {
        combined(memberScores(world: world, prompts: prompts, responses: responses, batchSize: batchSize))
    }

    /// The proxy score of each response from its members' scores ([member][response]), as `score`.
    public func combined(_ ms: [[Double]]) -> [Double] {
        if ms.count == 1 { return ms[0] }
        return (0..<ms[0].count).map { i in combineEnsemble(ms.map { $0[i] }, combiner: combiner, uwoLambda: uwoLambda) }
    }
}

/// Reward-head scores of full token sequences (forward only, no dropout). Models without
/// LoRA adapters (every trained proxy: adapters are merged after training) run the
/// decoder's lean forward on packed weights (`Transformer.rewardScores`), in chunks of
/// `batchSize`; others run the training forward batch by batch.
public func scoreSequences(_ model: Transformer, _ sequences: [[Int32]], batchSize: Int = 256) -> [Double] {
    if model.lora == nil { return model.rewardScores(sequences, chunkSize: batchSize).map(Double.init) }
    return stride(from: 0, to: sequences.count, by: batchSize).flatMap { start -> [Double] in
        model.forward(TokenBatch(sequences: Array(sequences[start..<min(sequences.count, start + batchSize)])))
        return model.rewardForward().map(Double.init)
    }
}
