// StageCache.swift — reusing expensive stage outputs across runs.
//
// A stage output (the base policy, a run's preference data, best-of-n samples, and each
// proxy, best-of-n curve and PPO run of a run: see Experiment.swift) is stored as one HDF5
// file named by the stage and a stable hash of everything it depends on (the world's
// fingerprint, the stage's config, seeds, the code version). Files are written atomically,
// so interrupted runs never leave half a file. Each entry carries a checksum of its whole
// contents (the root attribute `content_checksum`), verified before it is read: an entry
// changed on disk after it was written (a bad sector, bytes overwritten), unreadable, or
// without a checksum (written by an older build) is reported in one line, removed and
// rebuilt.
//
// Concurrent processes sharing a cache (`sweep --jobs N` workers, Slurm array tasks on a
// shared file system) build each entry once: `entry` builds under an exclusive `flock` on
// `<stage>-<key>.lock`, and a process that finds the lock taken waits for it, then loads
// what the holder stored. The kernel releases the lock when its holder exits or is killed,
// so a killed builder leaves no stale lock: the next waiter takes it and builds. Lock files
// stay in the folder (removing them could let two processes hold "the" lock at once); each
// names its last holder ("pid 123 on node7"), which a waiting process logs.
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

    /// The root attribute holding an entry's checksum (`H5Group.contentDigest` of everything
    /// else in the file, as 16 hex digits).
    public static let checksumAttribute = "content_checksum"

    /// What a lookup of an entry found.
    enum Lookup<T> {
        case absent
        case found(T)
        /// A file that must not be used: why, in a few words.
        case bad(String)
    }

    /// Opens the entry at `path`, verifies its checksum, then reads it.
    func lookup<T>(_ path: String, _ read: (H5Group) throws -> T) -> Lookup<T> {
        guard FileManager.default.fileExists(atPath: path) else { return .absent }
        do {
            let f = try H5File.open(path)
            defer { f.close() }
            guard f.root.hasAttribute(Self.checksumAttribute) else { return .bad("stale: it has no checksum") }
            let stored = try f.root.stringAttribute(Self.checksumAttribute)
            let actual = Self.hex(try f.root.contentDigest(excluding: [Self.checksumAttribute]))
            guard stored == actual else { return .bad("corrupt: checksum \(actual) instead of the stored \(stored)") }
            return .found(try read(f.root))
        } catch {
            return .bad("unreadable: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
    }

    static func hex(_ digest: UInt64) -> String { String(format: "%016llx", digest) }

    /// The cached value, or nil when absent, unreadable or failing its checksum (then `log`
    /// says why; the file stays, for `entry` to replace under its lock).
    public func load<T>(stage: String, key: String, log: (String) -> Void, _ read: (H5Group) throws -> T) -> T? {
        guard let p = path(stage: stage, key: key) else { return nil }
        switch lookup(p, read) {
        case .absent: return nil
        case .found(let v):
            log("\(stage): loaded from cache \(p)")
            return v
        case .bad(let why):
            log("\(stage): ignoring cache entry \(p) (\(why)); recomputing")
            return nil
        }
    }

    /// The cached value of (`stage`, `key`), or `build()`'s, which is then stored with
    /// `write` — built by one process at a time (see the file header). An entry that is
    /// unreadable or fails its checksum is removed (one log line names it) and rebuilt.
    /// Without a cache folder, just `build()`.
    public func entry<T>(stage: String, key: String, log: (String) -> Void,
                         read: (H5Group) throws -> T, build: () throws -> T, write: (T, H5Group) throws -> Void) throws -> T {
        guard let p = path(stage: stage, key: key), let dir = directory else { return try build() }
        if case .found(let v) = lookup(p, read) {
            log("\(stage): loaded from cache \(p)")
            return v
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let lock = try EntryLock(path: p + ".lock", waiting: { holder in
            log("\(stage): waiting for another process building \(p)" + (holder.isEmpty ? "" : " (\(holder))"))
        })
        defer { lock.release() }
        switch lookup(p, read) {
        case .found(let v):
            log("\(stage): loaded from cache \(p)")
            return v
        case .bad(let why):
            unlink(p)
            log("\(stage): cache entry \(p) is \(why); removed it, rebuilding")
        case .absent: break
        }
        let v = try build()
        // A cache that cannot take the entry (a full disk) costs only the reuse: the run goes on
        // with the value it holds.
        do {
            try store(stage: stage, key: key, log: log) { try write(v, $0) }
        } catch {
            log("\(stage): not cached (\(error)); the run goes on without this cache entry")
        }
        return v
    }

    /// Removes temporary files that killed builders left (`.<entry>.tmp-…`): those whose
    /// entry lock nobody holds (a builder writes only while holding it, on any machine).
    public func removeAbandonedTemporaries() {
        guard let dir = directory, let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names where name.hasPrefix(".") {
            guard let r = name.range(of: ".tmp-") else { continue }
            let entry = String(name[name.index(after: name.startIndex)..<r.lowerBound])
            let lockPath = (dir as NSString).appendingPathComponent(entry + ".lock")
            let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                try? FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent(name))
            }
            close(fd)
        }
    }

    /// Stores a value atomically (no-op when caching is disabled).
    public func store(stage: String, key: String, log: (String) -> Void, _ write: (H5Group) throws -> Void) throws {
        guard let p = path(stage: stage, key: key), let dir = directory else { return }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeAtomically(to: p) { f in
            try write(f.root)
            try f.root.setAttribute(Self.checksumAttribute, Self.hex(try f.root.contentDigest(excluding: [Self.checksumAttribute])))
        }
        log("\(stage): cached in \(p)")
    }
}

/// An exclusive `flock` on a lock file, held until `release()` (or the process's end).
final class EntryLock {
    private var descriptor: Int32

    /// Takes the lock, blocking while another process holds it (`waiting` is called once
    /// then, with the holder's "pid <pid> on <host>" as it wrote it into the file), and
    /// writes this process's.
    init(path: String, waiting: (String) -> Void) throws {
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw ExperimentError("cache: cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            waiting(holder)
            while flock(descriptor, LOCK_EX) != 0 {
                guard errno == EINTR else {
                    let message = String(cString: strerror(errno))
                    close(descriptor)
                    throw ExperimentError("cache: cannot lock \(path): \(message)")
                }
            }
        }
        let me = Array("pid \(getpid()) on \(ProcessInfo.processInfo.hostName)\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = me.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
    }

    func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)   // closing the only descriptor of the open file releases the flock
        descriptor = -1
    }

    deinit { release() }
}
