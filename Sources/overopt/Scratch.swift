import ArgumentParser
import Foundation
import OverOpt
import OverOptEngine
struct Scratch: ParsableCommand {
    @Option var corpus = 20000
    @Option var preset = "small"
    @Option var lr = 2e-3
    func run() throws {
        setBLASThreads(2)
        let world = try World()
        var cfg = BasePolicyConfig(); cfg.corpusSize = corpus; cfg.preset = preset; cfg.learningRate = lr
        let bp = pretrainBasePolicy(world: world, config: cfg) { print($0) }
        var rng = RNG(seed: 1)
        let prompts = Array(world.trainPrompts.prefix(200))
        let t0 = monotonicSeconds()
        let outs = Sampler(model: bp.model).generate(prompts: prompts.map { world.context(for: $0) }, config: SamplingConfig(temperature: 1, maxNewTokens: 50, eosToken: 3), rng: &rng)
        print("sampling", monotonicSeconds() - t0)
        var g = 0.0
        for (p, o) in zip(prompts, outs) { g += world.gold(prompt: p, response: o).total }
        print("mean gold", g / 200)
        for (p, o) in zip(prompts, outs).prefix(5) { print(world.render(prompt: p, response: o)); print("  ", world.gold(prompt: p, response: o)) }
    }
}
