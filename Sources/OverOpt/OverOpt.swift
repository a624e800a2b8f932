// OverOpt — the simulator: world, base policy, preference data, proxy reward models,
// best-of-n, PPO and the experiments that run them (see README.md, "A run, stage by stage").

/// The tool's version, stored in every result file and printed by `overopt --version`.
public let overOptVersion = "0.1.0"
