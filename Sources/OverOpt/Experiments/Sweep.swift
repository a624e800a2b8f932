// Sweep.swift — a grid of experiments: the sweep file, its manifest, resuming, Slurm.
//
// A sweep file (TOML) names a base experiment, fixed overrides and a grid:
//
//     base = "quickstart.toml"          # relative to the sweep file; absent = built-in quick-start
//     [set]                             # fixed overrides, dotted keys
//     "ppo.steps" = 100
//     [grid]                            # dotted keys → lists of values
//     seed = [0, 1, 2]
//     "data.label_noise" = [0.0, 0.25]
//     proxies = [["bt"], ["grm-sft"]]
//
// The manifest is the cartesian product of the grid. Order (stable, documented): grid keys
// sorted alphabetically, except `seed`, which always comes last; the last key varies
// fastest (nested loops in that key order), so the seeds of one configuration are
// adjacent. Each entry is `ExperimentConfig.load(path: base, overrides: set + grid values)`
// and writes `<name>-seed<seed>-<hash8>.h5` (hash of the resolved config). An entry whose
// file exists with root attribute `complete` = 1 is done; re-running a sweep skips it.
//
// Orchestration only; running an entry is `runExperiment` (Experiment.swift).
import Foundation
import OverOptHDF5

/// One entry of a sweep's manifest.
public struct SweepEntry: Sendable {
    /// Position in the manifest (the Slurm array index).
    public var index: Int
    /// `key=value` overrides (the `[set]` table, then this entry's grid values).
    public var overrides: [String]
    /// Only this entry's grid values, `key=value`, in grid key order (for listings).
    public var gridOverrides: [String]
    /// The resolved config.
    public var config: ExperimentConfig
    /// The result file name, `<name>-seed<seed>-<hash8>.h5`.
    public var fileName: String { resultFileName(for: config) }
}

/// A parsed sweep file.
public struct SweepSpec: Sendable {
    /// The sweep file (for messages).
    public var source: String
    /// The base experiment config file (resolved against the sweep file's folder), or nil
    /// for the built-in quick-start.
    public var basePath: String?
    /// Fixed overrides, `key=value`, sorted by key.
    public var fixed: [String]
    /// Grid keys in manifest order, each with its values rendered as TOML literals.
    public var grid: [(key: String, values: [String])]

    /// Reads a sweep file.
    public static func load(path: String) throws -> SweepSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError.file(path: path, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        let dir = (path as NSString).deletingLastPathComponent
        return try parse(String(decoding: data, as: UTF8.self), source: path, directory: dir)
    }

    /// Parses sweep-file text; `directory` resolves a relative `base`.
    public static func parse(_ text: String, source: String, directory: String) throws -> SweepSpec {
        let tree = try parseTOML(text, source: source)
        for key in tree.keys where !["base", "set", "grid"].contains(key) {
            throw ConfigError.unknownKey(key: key, source: source, valid: ["base", "set", "grid"])
        }
        var basePath: String?
        if let b = tree["base"] {
            guard let s = b as? String, !s.isEmpty else {
                throw ConfigError.wrongType(key: "base", source: source, expected: "a path (string) of an experiment TOML")
            }
            basePath = s.hasPrefix("/") || directory.isEmpty ? s : (directory as NSString).appendingPathComponent(s)
        }
        var fixed: [String] = []
        if let s = tree["set"] {
            guard let t = s as? ConfigTree else { throw ConfigError.wrongType(key: "set", source: source, expected: "a table [set]") }
            fixed = flattenTable(t).map { "\($0.key)=\(tomlLiteral($0.value))" }
        }
        var grid: [(key: String, values: [String])] = []
        if let g = tree["grid"] {
            guard let t = g as? ConfigTree else { throw ConfigError.wrongType(key: "grid", source: source, expected: "a table [grid]") }
            for (key, value) in flattenTable(t) {
                guard let list = value as? [Any], !list.isEmpty else {
                    throw ConfigError.wrongType(key: "grid.\(key)", source: source, expected: "a non-empty list of values")
                }
                grid.append((key, list.map(tomlLiteral)))
            }
        }
        grid.sort { a, b in (a.key == "seed" ? 1 : 0, a.key) < (b.key == "seed" ? 1 : 0, b.key) }
        var entries = 1
        for (key, values) in grid {
            let (product, overflow) = entries.multipliedReportingOverflow(by: values.count)
            guard !overflow, product <= maxSweepEntries else {
                throw ConfigError.invalid(key: "grid.\(key)", "the grid has more than \(maxSweepEntries) entries; split the sweep")
            }
            entries = product
        }
        return SweepSpec(source: source, basePath: basePath, fixed: fixed, grid: grid)
    }

    /// The number of entries (product of the grid's list lengths; 1 for an empty grid).
    public var count: Int { grid.reduce(1) { $0 * $1.values.count } }

    /// The grid values of entry `index`: mixed radix, last key fastest.
    public func gridOverrides(at index: Int) -> [String] {
        var rest = index
        var out = [String](repeating: "", count: grid.count)
        for k in grid.indices.reversed() {
            let m = grid[k].values.count
            out[k] = "\(grid[k].key)=\(grid[k].values[rest % m])"
            rest /= m
        }
        return out
    }

    /// Resolves every entry (this loads and validates each config, so a bad value fails
    /// before any work starts). Two entries resolving to the same config is an error.
    public func entries() throws -> [SweepEntry] {
        var out: [SweepEntry] = []
        var seen: [String: Int] = [:]
        for i in 0..<count {
            let g = gridOverrides(at: i)
            let config: ExperimentConfig
            do {
                config = try ExperimentConfig.load(path: basePath, overrides: fixed + g)
            } catch let e as ConfigError {
                throw ConfigError.file(path: source, "entry \(i) (\(g.joined(separator: " "))): \(e.description)")
            }
            let entry = SweepEntry(index: i, overrides: fixed + g, gridOverrides: g, config: config)
            if let j = seen[entry.fileName] {
                throw ConfigError.file(path: source, "entries \(j) and \(i) resolve to the same config (\(entry.fileName)); the grid lists a value twice")
            }
            seen[entry.fileName] = i
            out.append(entry)
        }
        return out
    }
}

/// The most entries a sweep may have: each is a config resolved and checked up front.
let maxSweepEntries = 100_000

/// `table` flattened to dotted keys, sorted. A nested table (`[grid.data]` or unquoted
/// `data.label_noise = …`) is descended into; any other value is a leaf.
func flattenTable(_ table: ConfigTree, prefix: String = "") -> [(key: String, value: Any)] {
    var out: [(key: String, value: Any)] = []
    for key in table.keys.sorted() {
        let full = prefix.isEmpty ? key : "\(prefix).\(key)"
        if let sub = table[key] as? ConfigTree { out += flattenTable(sub, prefix: full) } else { out.append((full, table[key]!)) }
    }
    return out
}

/// A value of a parsed TOML tree written back as a TOML literal, so that
/// `parseOverrideValue(tomlLiteral(v))` gives `v` again: 2000, 0.25, true, "bt", ["bt", "grm-sft"].
public func tomlLiteral(_ value: Any) -> String {
    switch value {
    case let s as String:
        return jsonString(s)
    case let a as [Any]:
        return "[" + a.map(tomlLiteral).joined(separator: ", ") + "]"
    case let t as ConfigTree:
        return "{" + t.keys.sorted().map { "\($0) = \(tomlLiteral(t[$0]!))" }.joined(separator: ", ") + "}"
    case let n as NSNumber:
        // JSONSerialization gives NSNumber for booleans ("c"), integers and doubles ("d", "f").
        let type = String(cString: n.objCType)
        if type == "c" || type == "B" { return n.boolValue ? "true" : "false" }
        if type == "d" || type == "f" {
            let d = n.doubleValue
            if d.isNaN { return "nan" }
            if d.isInfinite { return d > 0 ? "inf" : "-inf" }
            return "\(d)"
        }
        return "\(n.int64Value)"
    case let b as Bool:
        return b ? "true" : "false"
    case let i as Int:
        return "\(i)"
    case let d as Double:
        return "\(d)"
    default:
        return tomlLiteral("\(value)")
    }
}

// MARK: - Resume

/// Runs one sweep entry in this process into `outputFolder` unless its complete file
/// exists. Returns the result path and whether it ran (false = skipped).
@discardableResult
public func runSweepEntry(_ entry: SweepEntry, outputFolder: String, cache: StageCache,
                          log: @escaping (String) -> Void) throws -> (path: String, ran: Bool) {
    let path = (try prepareOutputFolder(outputFolder) as NSString).appendingPathComponent(entry.fileName)
    if isCompleteResult(path) {
        log("sweep entry \(entry.index): \(entry.fileName) is complete; skipping")
        return (path, false)
    }
    log("sweep entry \(entry.index): \(entry.gridOverrides.joined(separator: " ")) → \(entry.fileName)")
    _ = try runExperiment(entry.config, outputPath: path, cache: cache, log: log)
    return (path, true)
}

// MARK: - Slurm

/// Resources and paths of a Slurm job-array script.
public struct SlurmOptions: Sendable {
    public var cpusPerTask = 2
    /// `--time`, e.g. "02:00:00".
    public var time = "02:00:00"
    /// `--mem`, e.g. "4G".
    public var memory = "4G"
    public var partition: String? = nil
    public var account: String? = nil
    /// At most this many array tasks at once (`--array=0-(n-1)%K`); nil = no limit.
    public var maxParallel: Int? = nil
    public var jobName = "overopt-sweep"
    /// Extra `#SBATCH` lines, passed through (written as given, `#SBATCH ` added when absent).
    public var directives: [String] = []
    /// Shell lines run before the task's command (e.g. `module load hdf5`).
    public var setup: [String] = []
    public init() {}

    /// The extra directives as `#SBATCH …` lines.
    var directiveLines: [String] {
        directives.map { $0.hasPrefix("#SBATCH") ? $0 : "#SBATCH " + $0 }
    }
}

/// Quotes a word for bash when it holds anything but safe characters.
public func shellQuoted(_ s: String) -> String {
    let safe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%")
    if !s.isEmpty && s.unicodeScalars.allSatisfy(safe.contains) { return s }
    return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// A value for an `#SBATCH` line: as it is when it holds only safe characters, else in double
/// quotes with backslash escapes (how sbatch reads its directives).
func sbatchQuoted(_ s: String) -> String {
    let safe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%")
    if !s.isEmpty && s.unicodeScalars.allSatisfy(safe.contains) { return s }
    return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}

/// The `#SBATCH` lines and set-up lines every generated Slurm script starts with.
func slurmPreamble(jobName: String, array: String?, output: String, cpus: Int, options: SlurmOptions) -> [String] {
    var lines = ["#SBATCH --job-name=\(sbatchQuoted(jobName))"]
    if let array { lines.append("#SBATCH --array=\(array)") }
    lines.append("#SBATCH --output=\(sbatchQuoted(output))")
    lines.append("#SBATCH --cpus-per-task=\(cpus)")
    lines.append("#SBATCH --time=\(options.time)")
    lines.append("#SBATCH --mem=\(options.memory)")
    if let p = options.partition { lines.append("#SBATCH --partition=\(sbatchQuoted(p))") }
    if let a = options.account { lines.append("#SBATCH --account=\(sbatchQuoted(a))") }
    lines += options.directiveLines
    lines.append("set -euo pipefail")
    return lines + options.setup
}

/// An sbatch job-array script with one task per sweep entry (all paths absolute): each
/// task runs `<binary> sweep <sweepFile> --index $SLURM_ARRAY_TASK_ID --out <out> --cache <cache>
/// --threads <cpus>` and logs to `<out>/logs/<index>.log`.
public func slurmScript(count: Int, binary: String, sweepFile: String, outputFolder: String, cache: String?,
                        options: SlurmOptions) -> String {
    var lines = ["#!/bin/bash", "# Written by `overopt sweep --slurm`; submit with: sbatch \(shellQuoted(outputFolder + "/sweep.sbatch"))"]
    lines += slurmPreamble(jobName: options.jobName, array: "0-\(count - 1)" + (options.maxParallel.map { "%\($0)" } ?? ""),
                           output: "\(outputFolder)/logs/%a.log", cpus: options.cpusPerTask, options: options)
    var command = [binary, "sweep", sweepFile, "--index", "\"$SLURM_ARRAY_TASK_ID\"", "--out", outputFolder]
        .enumerated().map { $0.offset == 4 ? $0.element : shellQuoted($0.element) }
    command += cache.map { ["--cache", shellQuoted($0)] } ?? ["--no-cache"]
    command += ["--threads", "\"${SLURM_CPUS_PER_TASK:-\(options.cpusPerTask)}\""]
    lines.append(command.joined(separator: " "))
    return lines.joined(separator: "\n") + "\n"
}

/// An sbatch script (one task, 1 CPU) that summarizes the sweep's results:
/// `<binary> collect <out> -o <out>/summary.h5`, logging to `<out>/logs/collect.log`.
/// `slurmSubmitScript` runs it after the array with `--dependency=afterok`.
public func slurmCollectScript(binary: String, outputFolder: String, options: SlurmOptions) -> String {
    var lines = ["#!/bin/bash", "# Written by `overopt sweep --slurm --collect`; submitted by submit.sh after the array"]
    lines += slurmPreamble(jobName: options.jobName + "-collect", array: nil, output: "\(outputFolder)/logs/collect.log",
                           cpus: 1, options: options)
    lines.append([binary, "collect", outputFolder, "-o", outputFolder + "/summary.h5"].map(shellQuoted).joined(separator: " "))
    return lines.joined(separator: "\n") + "\n"
}

/// A bash script that submits `sweep.sbatch` and then `collect.sbatch` to run only after
/// every array task succeeded (`--dependency=afterok:<array job id>`).
public func slurmSubmitScript(outputFolder: String) -> String {
    let dir = shellQuoted(outputFolder)
    return """
        #!/bin/bash
        # Written by `overopt sweep --slurm --collect`: the job array, then the collect job after it.
        set -euo pipefail
        array=$(sbatch --parsable \(dir)/sweep.sbatch)
        array=${array%%;*}
        collect=$(sbatch --parsable --dependency=afterok:"$array" \(dir)/collect.sbatch)
        echo "submitted array job $array and collect job ${collect%%;*} (runs after every task succeeded)"

        """
}

/// `path` made absolute against the current directory.
public func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return (path as NSString).standardizingPath }
    let cwd = FileManager.default.currentDirectoryPath
    return ((cwd as NSString).appendingPathComponent(path) as NSString).standardizingPath
}
