// ResultFile.swift — a run's result file: its name, its folder, and its writing.
//
// `<folder>/<name>-seed<seed>-<hash8>.h5`, written atomically at the end of a run (an
// interrupted run leaves no file under the final name), complete when its root attribute
// `complete` is true. The schema is documented in README.md and annotated in the file
// (ResultSchema.swift).
import Foundation
import OverOptEngine
import OverOptHDF5

/// An output folder that cannot take result files (bad input: exit status 2 on the command line).
public struct OutputFolderError: Error, CustomStringConvertible {
    public let description: String
}

/// Makes `folder` ready for result files before any work: creates it, checks that a file can
/// be created in it, and removes the temporaries of killed result writes. Returns `folder`.
@discardableResult
public func prepareOutputFolder(_ folder: String) throws -> String {
    do {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    } catch {
        throw OutputFolderError(description: "cannot create the output folder \(folder): \(error.localizedDescription)")
    }
    // access(2) says yes to root on folders such as /proc that refuse new files: try one.
    let probe = (folder as NSString).appendingPathComponent(".overopt-write-probe-\(getpid())")
    let fd = open(probe, O_CREAT | O_EXCL | O_WRONLY, 0o600)
    guard fd >= 0 else {
        throw OutputFolderError(description: "the output folder \(folder) is not writable (\(String(cString: strerror(errno))))")
    }
    close(fd)
    unlink(probe)
    // Decided by each writer's lock, not its PID, which means nothing on another node.
    removeAbandonedTemporaries(in: folder)
    return folder
}

/// The result file name of a run: `<name>-seed<seed>-<hash8>.h5` (the same as `overopt run`).
/// Proxies loaded from other files (`overopt run --load-proxy`) are part of the hash.
public func resultFileName(for config: ExperimentConfig, loadProxies: [String: String] = [:]) -> String {
    let hash = loadProxies.isEmpty ? config.hash
        : StageCache.key(["config": config.hash, "load_proxies": loadProxies.keys.sorted().map { "\($0)=\(absolutePath(loadProxies[$0]!))" }.joined(separator: ",")])
    return "\(config.name)-seed\(config.seed)-\(hash.prefix(8)).h5"
}

/// True when `path` is a result file whose root attribute `complete` is true (schema 2) or 1.
public func isCompleteResult(_ path: String) -> Bool {
    guard FileManager.default.fileExists(atPath: path), let f = try? H5File.open(path) else { return false }
    defer { f.close() }
    return f.root.hasAttribute("complete") && (try? f.root.boolAttribute("complete")) == true
}

/// The result file, written atomically: the run's attributes, /timing, /base, /data, then
/// what each stage recorded.
func writeRunFile(_ path: String, run: RunContext, base: BasePolicy, data: PreferenceDataset, baseGold: Double, seconds: Double,
                  loadProxies: [String: String]) throws {
    let config = run.config
    try writeAtomically(to: path) { file in
        let root = file.root
        try root.setAttribute("schema_version", resultSchemaVersion)
        try root.setAttribute("overopt_version", overOptVersion)
        try root.setAttribute("name", config.name)
        try root.setAttribute("seed", Int64(config.seed))
        try root.setAttribute("config", config.json())
        try root.setAttribute("config_hash", config.hash)
        try root.setAttribute("world_fingerprint", run.world.fingerprint)
        try root.setAttribute("threads", Int64(engineThreadCount()))
        let compute = ComputeEnvironment.current
        try root.setAttribute("cpu", compute.cpu)
        try root.setAttribute("blas_core", compute.blasCore)
        try root.setAttribute("kernels", compute.kernels)
        try root.setAttribute("proxies", config.proxies)
        if !loadProxies.isEmpty {
            try root.setAttribute("loaded_proxies", loadProxies.keys.sorted().map { "\($0)=\(loadProxies[$0]!)" })
        }
        try root.setAttribute("created", ISO8601DateFormatter().string(from: Date()))
        try root.setAttribute("seconds", seconds)
        let timing = try root.createGroup("timing")
        for (stage, s) in run.timings { try timing.setAttribute(stage.replacingOccurrences(of: "/", with: "_"), s) }
        let b = try root.createGroup("base")
        try b.write("curve_step", base.curveStep)
        try b.write("curve_loss", base.curveLoss)
        try b.setAttribute("eval_nll", base.evalNLL)
        try b.setAttribute("parameters", Int64(base.model.parameterCount))
        try b.setAttribute("preset", config.base.preset)
        try b.setAttribute("gold_mean", baseGold)
        try writeDataSummary(data, to: root.createGroup("data"))
        try run.writeRecords(to: root)
        try annotateRunFile(root)
        try root.setAttribute("complete", true)
    }
}

/// Sizes, noise and a few example pairs of the preference data.
func writeDataSummary(_ d: PreferenceDataset, to g: H5Group) throws {
    try g.setAttribute("train_pairs", Int64(d.train.count))
    try g.setAttribute("flipped_pairs", Int64(d.train.filter(\.flipped).count))
    try g.setAttribute("id_pairs", Int64(d.idEval.count))
    try g.setAttribute("ood_sets", d.oodEval.map(\.name))
    try g.write("train_gold_margin", d.train.map(\.goldMargin), compress: true)
}
