// Tiny transformers for gradient checks and short trainings: a few hundred parameters, with
// the weight matrices redrawn large enough that every path carries signal.
import OverOptEngine

/// A transformer of `config` initialized from `seed`; with `weightScale`, every weight
/// matrix (the tensors with weight decay) is redrawn from N(0, weightScale²) after the
/// standard initialization, so that attention, MLP and heads all move the loss visibly.
public func tinyTransformer(_ config: TransformerConfig, heads: HeadConfig = .languageModel, seed: UInt64,
                            weightScale: Float? = 0.4) -> Transformer {
    let m = Transformer(config: config, heads: heads)
    var rng = RNG(seed: seed)
    m.initialize(rng: &rng)
    if let scale = weightScale {
        for t in m.layout.tensors where t.decay {
            for i in 0..<t.count { m.params[t.offset + i] = scale * rng.normal() }
        }
    }
    return m
}
