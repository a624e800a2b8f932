import ArgumentParser
import Foundation
import OverOpt
import OverOptEngine
import OverOptHDF5

/// `overopt world`: what the synthetic world looks like, and how a base policy writes in it.
struct WorldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "world",
        abstract: "Describe the synthetic world: vocabulary, prompts, gold reward, writer samples.",
        discussion: """
            With --stats, statistics of gold over 2000 reference-writer samples. With --base, \
            a cached base policy (a base-*.h5 file of the stage cache) writes for 1000 prompts \
            and the same statistics are printed for its samples.
            """)

    @Option(help: "Number of writer samples to print.")
    var samples = 6

    @Option(help: "Seed of the printed samples.")
    var seed: UInt64 = 0

    @Flag(help: "Also print writer statistics over 2000 samples (gold mean/std per component, feature correlations).")
    var stats = false

    @Option(help: ArgumentHelp("A cached base policy (.overopt-cache/base-<key>.h5): print samples and gold statistics of its writing.", valueName: "file"))
    var base: String?

    @Option(help: "Sampling temperature of the base policy.")
    var temperature = 1.0

    @OptionGroup var global: GlobalOptions

    func run() throws {
        setEngineThreads(global.threadCount)
        let world = try World()
        print(world.describe(samples: samples, seed: seed))
        if stats {
            print("\nreference writer:")
            print(WorldStatistics.ofWriter(world, count: 2000, seed: seed).summary)
        }
        guard let base else { return }
        let policy = try readingInput("\(base): not a cached base policy") { try BasePolicy.read(from: try H5File.open(base).root) }
        guard policy.model.config.vocabSize == world.vocabSize else {
            throw BadInput("\(base): the policy's vocabulary (\(policy.model.config.vocabSize)) is not this world's (\(world.vocabSize))")
        }
        var rng = RNG(seed: seed).split("world-base")
        let prompts = (0..<1000).map { _ in world.allPrompts[rng.int(below: world.allPrompts.count)] }
        let responses = samplePolicy(policy.model, world: world, prompts: prompts, temperature: temperature, rng: &rng)
        print(String(format: "\nbase policy %@ (%d parameters, held-out NLL %.3f) at T = %.2f:", base, policy.model.parameterCount, policy.evalNLL, temperature))
        for (p, y) in zip(prompts, responses).prefix(samples) {
            print("  " + world.render(prompt: p, response: y))
            print("    \(world.gold(prompt: p, response: y))")
        }
        print(WorldStatistics(world: world, samples: Array(zip(prompts, responses)).map { (prompt: $0.0, response: $0.1) }).summary)
    }
}
