// TrainerInputError.swift — inputs a policy trainer cannot work with that are not config
import OverOptEngine
// keys (a config's own problems are `ConfigError`s).

/// A base policy that does not fit the world (vocabulary, context) or missing training data.
public struct TrainerInputError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The problem of a stage's `max_new_tokens` longer than the world's responses, or nil.
func maxNewTokensProblem(section: String, _ tokens: Int, world: World) -> ConfigError? {
    tokens <= world.config.maxResponseTokens ? nil
        : ConfigError(source: nil, problems: [ConfigProblem(key: "\(section).max_new_tokens", value: "\(tokens)",
                                                            expected: "≤ world.max_response_tokens (\(world.config.maxResponseTokens))")])
}

/// Refuses a base policy whose vocabulary or context does not fit the world.
func checkPolicyFits(_ policy: Transformer, world: World) throws {
    guard policy.config.vocabSize == world.vocabSize, policy.config.contextLength >= world.maxSequenceLength else {
        throw TrainerInputError("the base policy (vocabulary \(policy.config.vocabSize), context \(policy.config.contextLength)) "
                                + "does not fit the world (vocabulary \(world.vocabSize), sequences up to \(world.maxSequenceLength) tokens)")
    }
}
