import ArgumentParser
import Foundation
import OverOpt
import OverOptEngine
import OverOptHDF5

/// `overopt run`: the whole pipeline for one seed into one HDF5 file.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one experiment: base policy, preference data, proxies, best-of-n and PPO.",
        discussion: """
            With no CONFIG, runs the built-in quick-start experiment (proxies bt, ensemble and \
            grm-sft; best-of-n and PPO). Keys of a config file can be overridden with \
            --set section.key=value (e.g. --set data.label_noise=0.25). The result file \
            <out>/<name>-seed<seed>-<hash>.h5 is written atomically at the end, with \
            <out>/<name>-seed<seed>-<hash>.metrics.jsonl streamed beside it. The base policy, \
            preference data, best-of-n samples and every finished proxy, best-of-n curve and \
            PPO run are cached in --cache, so the same command after a kill resumes, and a run \
            that changes only ppo.* or bon.* settings reuses the trained proxies.
            """)

    @Argument(help: "A TOML experiment config (see experiments/).")
    var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key, e.g. --set ppo.steps=50 (repeatable).", valueName: "key=value"))
    var overrides: [String] = []

    @Option(help: "Seed of this run (overrides the config's seed).")
    var seed: UInt64?

    @Option(help: "Folder for the result file.")
    var out = "runs"

    @Option(help: "Folder of the stage cache (base policy, preference data, best-of-n samples, proxies, curves).")
    var cache = ProcessInfo.processInfo.environment["OVEROPT_CACHE"] ?? ".overopt-cache"

    @Flag(help: "Disable the stage cache.")
    var noCache = false

    @Option(name: .customLong("load-proxy"), help: ArgumentHelp("Use the proxy NAME stored in an earlier result file (its /rm/NAME/checkpoint, written with save_checkpoints = true) instead of training it (repeatable).", valueName: "NAME=FILE"))
    var loadProxy: [String] = []

    @Flag(help: "Print only the summary table.")
    var quiet = false

    @OptionGroup var global: GlobalOptions

    func run() throws {
        becomeSweepWorker()
        setEngineThreads(global.threadCount)
        let cfg = try readingInput { try ExperimentConfig.load(path: config, overrides: overrides, seed: seed) }
        var loadProxies: [String: String] = [:]
        for spec in loadProxy {
            guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex, spec.index(after: eq) != spec.endIndex else {
                throw BadInput("--load-proxy \(spec): expected NAME=FILE, e.g. --load-proxy bt=runs/quickstart-seed0-f84958ce.h5")
            }
            let name = String(spec[..<eq]), file = String(spec[spec.index(after: eq)...])
            guard cfg.proxies.contains(name) else {
                throw BadInput("--load-proxy \(spec): '\(name)' is not among this run's proxies (\(cfg.proxies.joined(separator: ", ")))")
            }
            guard FileManager.default.fileExists(atPath: file) else { throw BadInput("--load-proxy \(spec): no such file \(file)") }
            loadProxies[name] = file
        }
        let path = (try prepareOutputFolder(out) as NSString).appendingPathComponent(resultFileName(for: cfg, loadProxies: loadProxies))
        let logger = ProgressLog(quiet: quiet)
        logger("overopt \(overOptVersion): \(cfg.name), seed \(cfg.seed), proxies \(cfg.proxies.joined(separator: ", ")), stages \(cfg.stages.joined(separator: ", ")), \(global.threadCount) threads")
        logger(ComputeEnvironment.current.line)
        let summary = try runExperiment(cfg, outputPath: path, cache: StageCache(directory: noCache ? nil : cache),
                                        loadProxies: loadProxies, log: logger.callAsFunction)
        print(summary.table)
    }
}
