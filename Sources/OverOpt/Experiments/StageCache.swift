// StageCache.swift — reusing expensive stage outputs across runs.
//
// A stage output (the base policy, a run's preference data, best-of-n samples) is stored
// as one HDF5 file named by the stage and a stable hash of everything it depends on (the
// world's fingerprint, the stage's config, seeds, the code version). Files are written
// atomically, so parallel sweep workers and interrupted runs never see half a file; an
// unreadable cache file is reported and recomputed.
import Foundation
import OverOptEngine
import OverOptHDF5

/// A folder of cached stage outputs.
public struct StageCache: Sendable {
    /// nil disables caching.
    public let directory: String?

    public init(directory: String?) { self.directory = directory }

    /// A stable key for any encodable description of a stage's inputs.
    public static func key<T: Encodable>(_ parts: T) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let text = (try? enc.encode(parts)).map { String(decoding: $0, as: UTF8.self) } ?? "\(parts)"
        return String(format: "%016llx", RNG.stableHash(text))
    }

    public func path(stage: String, key: String) -> String? {
        directory.map { ($0 as NSString).appendingPathComponent("\(stage)-\(key).h5") }
    }

    /// The cached value, or nil when absent or unreadable (then `log` says why).
    public func load<T>(stage: String, key: String, log: (String) -> Void, _ read: (H5Group) throws -> T) -> T? {
        guard let p = path(stage: stage, key: key), FileManager.default.fileExists(atPath: p) else { return nil }
        do {
            let f = try H5File.open(p)
            defer { f.close() }
            let v = try read(f.root)
            log("\(stage): loaded from cache \(p)")
            return v
        } catch {
            log("\(stage): ignoring unreadable cache file \(p) (\(error)); recomputing")
            return nil
        }
    }

    /// Stores a value atomically (no-op when caching is disabled).
    public func store(stage: String, key: String, log: (String) -> Void, _ write: (H5Group) throws -> Void) throws {
        guard let p = path(stage: stage, key: key), let dir = directory else { return }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeAtomically(to: p) { f in try write(f.root) }
        log("\(stage): cached in \(p)")
    }
}
