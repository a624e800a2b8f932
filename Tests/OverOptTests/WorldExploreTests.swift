import Testing
import OverOptEngine
@testable import OverOpt

@Test func explore() throws {
    let world = try World()
    print(world.describe(samples: 8))
    for style in WriterStyle.allCases {
        print("== \(style)")
        print(WorldStatistics.ofWriter(world, style: style, count: 5000).summary)
    }
    let b = WorldStatistics.bestOfNByGold(world, n: 256, promptCount: 100)
    print("best-of-256 by gold: \(b)")
}
