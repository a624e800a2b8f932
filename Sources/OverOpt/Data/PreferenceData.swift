// PreferenceData.swift — building the preference pairs from base-policy samples.
//
// Training pairs compare two responses to the same training prompt, labelled by gold:
//   • base vs base: two samples of the base policy (small gold gaps: hard pairs);
//   • base vs perturbed: a base sample against a copy edited in one aspect (tone flipped,
//     topic changed, length changed, made disfluent). These decide whether a proxy
//     learns the prompt-tone × adjective-polarity interaction (docs/world.md, "Design
//     lessons"); their share is the `perturbed_fraction` knob.
// Label noise (Coste et al. 2023: 25%) swaps chosen and rejected in exactly
// round(noise·count) randomly chosen training pairs. Evaluation sets are never noisy:
//   • id: built like the training pairs, on training prompts;
//   • heldout_prompts: the same construction on held-out prompts (prompt shift);
//   • ood_writer: two responses of the high-variance OOD writer (response shift);
//   • hot_samples: base samples at a higher temperature (the tail best-of-n explores).
import OverOptEngine
import OverOptHDF5

/// Settings of the preference data (`[data]` in a config file).
public struct PreferenceDataConfig: ConfigSection, Equatable {
    /// Number of training pairs.
    public var trainPairs = 4000
    /// Pairs in the ID evaluation set and in each OOD set.
    public var evalPairs = 500
    /// Share of base-vs-perturbed pairs (the rest are base vs base).
    public var perturbedFraction = 0.5
    /// Share of training pairs whose label is swapped, in [0, 0.5].
    public var labelNoise = 0.0
    /// Sampling temperature of the base policy for pair responses.
    public var temperature = 1.0
    /// Temperature of the `hot_samples` OOD set.
    public var hotTemperature = 1.5

    public init() {}

    public static let section = "data"

    public static var schema: [ConfigKey<PreferenceDataConfig>] { [
        .key("train_pairs", \.trainPairs, "training pairs (on training prompts)", .atLeast(1)),
        .key("eval_pairs", \.evalPairs, "pairs in the ID set and in each OOD set", .atLeast(1)),
        .key("perturbed_fraction", \.perturbedFraction, "share of base-vs-perturbed pairs (the rest base vs base): the pair-difficulty knob", .within(0, 1)),
        .key("label_noise", \.labelNoise, "share of training pairs with chosen/rejected swapped (Coste et al.: 0.25)", .within(0, 0.5)),
        .key("temperature", \.temperature, "base-policy sampling temperature for pair responses", .above(0)),
        .key("hot_temperature", \.hotTemperature, "temperature of the `hot_samples` OOD set", .above(0)),
    ] }
}

/// Samples responses of `policy` for `prompts` in batches (one response per entry).
public func samplePolicy(_ policy: Transformer, world: World, prompts: [Prompt], temperature: Double, topP: Double = 1,
                         rng: inout RNG, batchSize: Int = 512) -> [[Int32]] {
    let sampler = Sampler(model: policy)
    let cfg = SamplingConfig(temperature: Float(temperature), topP: Float(topP),
                             maxNewTokens: world.config.maxResponseTokens, eosToken: Tokenizer.eos)
    var out: [[Int32]] = []
    out.reserveCapacity(prompts.count)
    var start = 0
    while start < prompts.count {
        let chunk = prompts[start..<min(prompts.count, start + batchSize)]
        var r = rng.split(UInt64(start))
        out += sampler.generate(prompts: chunk.map { world.context(for: $0) }, config: cfg, rng: &r)
        start += batchSize
    }
    _ = rng.next()
    return out
}

/// Builds pairs on `prompts`: a `perturbedFraction` share base vs perturbed, the rest base vs base.
func makePairs(count: Int, prompts: [Prompt], world: World, policy: Transformer, temperature: Double,
               perturbedFraction: Double, rng: inout RNG) -> [PreferencePair] {
    let nPerturbed = Int((Double(count) * perturbedFraction).rounded())
    let chosenPrompts = (0..<count).map { _ in prompts[rng.int(below: prompts.count)] }
    // First response of every pair, then the second response of the base-vs-base pairs.
    let samplePrompts = chosenPrompts + chosenPrompts[nPerturbed...]
    let samples = samplePolicy(policy, world: world, prompts: samplePrompts, temperature: temperature, rng: &rng)
    let kinds = Perturbation.allCases
    var pairs: [PreferencePair] = []
    pairs.reserveCapacity(count)
    for i in 0..<count {
        let p = chosenPrompts[i], a = samples[i]
        let b: [Int32]
        let kind: PairKind
        if i < nPerturbed {
            b = world.perturb(a, for: p, kind: kinds[rng.int(below: kinds.count)], rng: &rng)
            kind = .baseVsPerturbed
        } else {
            b = samples[count + i - nPerturbed]
            kind = .baseVsBase
        }
        pairs.append(.labelled(prompt: p, a: a, b: b, goldA: world.gold(prompt: p, response: a).total,
                               goldB: world.gold(prompt: p, response: b).total, flip: false, kind: kind))
    }
    rng.shuffle(&pairs)
    return pairs
}

/// Pairs of two OOD-writer responses.
func makeWriterPairs(count: Int, prompts: [Prompt], world: World, style: WriterStyle, rng: inout RNG) -> [PreferencePair] {
    (0..<count).map { _ in
        let p = prompts[rng.int(below: prompts.count)]
        let a = world.writeResponse(for: p, rng: &rng, style: style), b = world.writeResponse(for: p, rng: &rng, style: style)
        return .labelled(prompt: p, a: a, b: b, goldA: world.gold(prompt: p, response: a).total,
                         goldB: world.gold(prompt: p, response: b).total, flip: false, kind: .oodWriter)
    }
}

/// Swaps chosen and rejected in exactly round(noise·count) randomly chosen pairs.
public func applyLabelNoise(_ pairs: [PreferencePair], noise: Double, rng: inout RNG) -> [PreferencePair] {
    let nFlip = Int((Double(pairs.count) * noise).rounded())
    if nFlip == 0 { return pairs }
    var idx = Array(pairs.indices)
    rng.shuffle(&idx)
    var out = pairs
    for i in idx.prefix(nFlip) {
        let q = pairs[i]
        out[i] = PreferencePair(prompt: q.prompt, chosen: q.rejected, rejected: q.chosen, chosenGold: q.rejectedGold,
                                rejectedGold: q.chosenGold, flipped: !q.flipped, kind: q.kind)
    }
    return out
}

/// Builds the whole preference dataset of a run from the base policy.
public func buildPreferenceData(world: World, basePolicy: Transformer, config: PreferenceDataConfig, seed: UInt64,
                                log: (String) -> Void) -> PreferenceDataset {
    let root = RNG(seed: seed).split("preference-data")
    let t0 = monotonicSeconds()
    var r1 = root.split("train"), r2 = root.split("id"), r3 = root.split("heldout"), r4 = root.split("ood-writer")
    var r5 = root.split("hot"), rn = root.split("noise")
    let clean = makePairs(count: config.trainPairs, prompts: world.trainPrompts, world: world, policy: basePolicy,
                          temperature: config.temperature, perturbedFraction: config.perturbedFraction, rng: &r1)
    let train = applyLabelNoise(clean, noise: config.labelNoise, rng: &rn)
    let id = makePairs(count: config.evalPairs, prompts: world.trainPrompts, world: world, policy: basePolicy,
                       temperature: config.temperature, perturbedFraction: config.perturbedFraction, rng: &r2)
    let held = makePairs(count: config.evalPairs, prompts: world.heldOutPrompts, world: world, policy: basePolicy,
                         temperature: config.temperature, perturbedFraction: config.perturbedFraction, rng: &r3)
    let oodWriter = makeWriterPairs(count: config.evalPairs, prompts: world.trainPrompts, world: world, style: .ood, rng: &r4)
    let hot = makePairs(count: config.evalPairs, prompts: world.trainPrompts, world: world, policy: basePolicy,
                        temperature: config.hotTemperature, perturbedFraction: 0, rng: &r5)
    let flipped = train.filter(\.flipped).count
    log(String(format: "preference data: %d train pairs (%d flipped), %d ID, 3 OOD sets × %d, in %.1f s",
               train.count, flipped, id.count, config.evalPairs, monotonicSeconds() - t0))
    return PreferenceDataset(train: train, idEval: id,
                             oodEval: [("heldout_prompts", held), ("ood_writer", oodWriter), ("hot_samples", hot)])
}

// MARK: - HDF5

extension PreferenceDataset {
    /// Writes every split under `group` (tokens as padded int64 matrices with lengths).
    public func write(to group: H5Group) throws {
        try writePairs(train, to: group.createGroup("train"))
        try writePairs(idEval, to: group.createGroup("id"))
        for (name, pairs) in oodEval { try writePairs(pairs, to: group.createGroup("ood/\(name)")) }
    }

    /// Reads a dataset written by `write(to:)`.
    public static func read(from group: H5Group, world: World) throws -> PreferenceDataset {
        let train = try readPairs(group.group("train"), world: world)
        let id = try readPairs(group.group("id"), world: world)
        let ood = try group.group("ood")
        var sets: [(name: String, pairs: [PreferencePair])] = []
        for name in ["heldout_prompts", "ood_writer", "hot_samples"] where ood.contains(name) {
            sets.append((name, try readPairs(ood.group(name), world: world)))
        }
        return PreferenceDataset(train: train, idEval: id, oodEval: sets)
    }
}

/// Pads token lists into a (count, width) int64 matrix.
func paddedMatrix(_ rows: [[Int32]]) -> (values: [Int64], width: Int) {
    let w = max(1, rows.map(\.count).max() ?? 1)
    var m = [Int64](repeating: 0, count: rows.count * w)
    for (i, r) in rows.enumerated() { for (j, t) in r.enumerated() { m[i * w + j] = Int64(t) } }
    return (m, w)
}

func unpad(_ values: [Int64], width: Int, lengths: [Int64]) -> [[Int32]] {
    lengths.enumerated().map { i, n in (0..<Int(n)).map { Int32(values[i * width + $0]) } }
}

func writePairs(_ pairs: [PreferencePair], to g: H5Group) throws {
    let c = paddedMatrix(pairs.map(\.chosen)), r = paddedMatrix(pairs.map(\.rejected))
    try g.write("prompt_id", pairs.map { Int64($0.prompt.id) })
    try g.write("chosen", c.values, shape: [pairs.count, c.width], compress: true)
    try g.write("chosen_length", pairs.map { Int64($0.chosen.count) })
    try g.write("rejected", r.values, shape: [pairs.count, r.width], compress: true)
    try g.write("rejected_length", pairs.map { Int64($0.rejected.count) })
    try g.write("chosen_gold", pairs.map(\.chosenGold))
    try g.write("rejected_gold", pairs.map(\.rejectedGold))
    try g.write("flipped", pairs.map { $0.flipped ? Int64(1) : 0 })
    try g.write("kind", strings: pairs.map(\.kind.rawValue))
}

/// Reads what `writePairs` wrote, checking every shape, length, prompt id and token against
/// the pair count and the world.
func readPairs(_ g: H5Group, world: World) throws -> [PreferencePair] {
    let ids = try g.integers("prompt_id", in: 0...Int64(world.allPrompts.count - 1))
    let n = ids.count
    let tokens = 0...Int64(world.vocabSize - 1)
    let c = try g.integerMatrix("chosen", rows: n, in: tokens), r = try g.integerMatrix("rejected", rows: n, in: tokens)
    let chosen = unpad(c.values, width: c.width, lengths: try g.integers("chosen_length", count: n, in: 0...Int64(c.width)))
    let rejected = unpad(r.values, width: r.width, lengths: try g.integers("rejected_length", count: n, in: 0...Int64(r.width)))
    let cg = try g.doubles("chosen_gold", count: n), rg = try g.doubles("rejected_gold", count: n)
    let flipped = try g.integers("flipped", count: n), kinds = try g.strings("kind", count: n)
    return ids.indices.map { i in
        PreferencePair(prompt: world.allPrompts[Int(ids[i])], chosen: chosen[i], rejected: rejected[i],
                       chosenGold: cg[i], rejectedGold: rg[i], flipped: flipped[i] != 0,
                       kind: PairKind(rawValue: kinds[i]) ?? .baseVsBase)
    }
}
