// Temporary: dumps hashes and cache keys of every committed config (baseline comparison).
import Foundation
import Testing
import OverOpt

@Test func zzDumpConfigHashes() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let exp = root.appendingPathComponent("experiments")
    var lines: [String] = []
    func dump(_ label: String, _ c: ExperimentConfig) throws {
        let world = try World(config: c.world)
        var parts = ["hash=\(c.hash)", "file=\(resultFileName(for: c))", "world=\(world.fingerprint)",
                     "data=\(StageCache.key(c.data))", "bon=\(StageCache.key(c.bon))", "bonS=\(c.bon.samplesKey)",
                     "ppo=\(StageCache.key(c.ppo))", "grpo=\(StageCache.key(c.grpo))", "rloo=\(StageCache.key(c.rloo))",
                     "dpo=\(StageCache.key(c.dpo))", "det=\(StageCache.key(c.detectors))", "base=\(StageCache.key(c.base))"]
        for (k, v) in c.variants.sorted(by: { $0.key < $1.key }) { parts.append("rm.\(k)=\(StageCache.key(v))") }
        parts.append("json=\(c.json().data(using: .utf8)!.base64EncodedString())")
        lines.append("\(label) " + parts.joined(separator: " "))
    }
    try dump("builtin", try ExperimentConfig.load(path: nil))
    for name in try FileManager.default.contentsOfDirectory(atPath: exp.path).sorted() where name.hasSuffix(".toml") {
        let path = exp.appendingPathComponent(name).path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        if text.contains("[grid]") {
            for e in try SweepSpec.load(path: path).entries() { try dump("\(name)#\(e.index)", e.config) }
        } else {
            try dump(name, try ExperimentConfig.load(path: path))
        }
    }
    let out = ProcessInfo.processInfo.environment["OVEROPT_DUMP"] ?? "/tmp/schema-work/dump.txt"
    try lines.joined(separator: "\n").write(toFile: out, atomically: true, encoding: .utf8)
    print("dumped \(lines.count) configs to \(out)")
}
