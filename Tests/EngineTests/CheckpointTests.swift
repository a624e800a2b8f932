import Foundation
import Testing
import OverOptEngine
import OverOptHDF5

@Suite struct CheckpointTests {
    @Test func checkpointRoundTripIsBitExact() throws {
        let m = tinyModel(reward: .mlp(hidden: 6), value: true)
        let path = NSTemporaryDirectory() + "overopt-ckpt-\(UUID().uuidString).h5"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writeAtomically(to: path) { f in try m.save(to: f.root.createGroup("model")) }
        let loaded = try Transformer.load(from: try H5File.open(path).root.group("model"))
        #expect(loaded.config == m.config)
        #expect(loaded.heads == m.heads)
        #expect(loaded.params.array == m.params.array)
    }

    @Test func loadingAMalformedCheckpointNamesTheProblem() throws {
        let m = tinyModel(reward: .none, value: false)
        let path = NSTemporaryDirectory() + "overopt-ckpt-\(UUID().uuidString).h5"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writeAtomically(to: path) { f in
            let g = try f.root.createGroup("model")
            try m.save(to: g)
            try g.group("params").write("wte", [Float](repeating: 0, count: 3), shape: [3])
        }
        #expect {
            try Transformer.load(from: try H5File.open(path).root.group("model"))
        } throws: { error in
            "\(error)".contains("params/wte") && "\(error)".contains("shape")
        }
    }
}
