import ArgumentParser
import Foundation
import OverOpt

/// `overopt world`: what the synthetic world looks like.
struct WorldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "world",
        abstract: "Describe the synthetic world: vocabulary, prompts, gold reward, writer samples.")

    @Option(help: "Number of writer samples to print.")
    var samples = 6

    @Option(help: "Seed of the printed samples.")
    var seed: UInt64 = 0

    @Flag(help: "Also print writer statistics over 2000 samples (gold mean/std per component, feature correlations).")
    var stats = false

    func run() throws {
        let world = try World()
        print(world.describe(samples: samples, seed: seed))
        if stats { print(WorldStatistics.ofWriter(world, count: 2000, seed: seed).summary) }
    }
}
