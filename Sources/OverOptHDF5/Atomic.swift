import Foundation

/// Writes an HDF5 file so that `path` either does not exist or holds the complete file.
///
/// `body` writes into `<folder>/.<name>.tmp-<pid>-<random>` in the destination folder (beside it a
/// `.lock` file the writer holds a flock on); when it returns,
/// the file is flushed, closed, synced to disk and renamed to `path` (replacing any older file).
/// If `body` throws, the temporary file is removed and nothing appears under `path`; if the process
/// is killed, at most a hidden temporary file is left behind, never a truncated file under `path`.
/// A missing or unwritable destination folder is reported, naming the folder, before `body` runs.
public func writeAtomically(to path: String, _ body: (H5File) throws -> Void) throws {
    let destination = URL(fileURLWithPath: path)
    let folder = destination.deletingLastPathComponent().path
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
        throw HDF5Error("cannot write '\(path)': folder '\(folder)' does not exist", hdf5Stack: false)
    }
    let temporary = folder + "/.\(destination.lastPathComponent).tmp-\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"

    // The writer holds a flock on `<temporary>.lock` until it is done; the kernel releases it
    // when the process dies, on any node of a shared file system, so
    // `removeAbandonedTemporaries` can tell a live writer's temporary from a killed one's.
    let lockPath = temporary + ".lock"
    let lock = Foundation.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard lock >= 0 else {
        throw HDF5Error("cannot write '\(path)': folder '\(folder)' is not writable (\(String(cString: strerror(errno))))",
                        hdf5Stack: false)
    }
    defer {
        unlink(lockPath)
        Foundation.close(lock)
    }
    _ = flock(lock, LOCK_EX)

    // Probe with a plain open(2) first: its errno names the real problem (permissions, read-only disk).
    let probe = Foundation.open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard probe >= 0 else {
        throw HDF5Error("cannot write '\(path)': folder '\(folder)' is not writable (\(String(cString: strerror(errno))))",
                        hdf5Stack: false)
    }
    Foundation.close(probe)

    var file: H5File?
    do {
        file = try H5File.create(temporary)
        try body(file!)
        try file!.flush()
        try file!.closeChecked()
        try syncToDisk(temporary)
        guard rename(temporary, path) == 0 else {
            throw HDF5Error("cannot rename '\(temporary)' to '\(path)': \(String(cString: strerror(errno)))", hdf5Stack: false)
        }
    } catch {
        // A write failed (typically a full disk) or `body` threw: the file is given up, not
        // closed — closing flushes again, and HDF5 1.10 crashes on a file whose flush failed.
        file?.abandon()
        unlink(temporary)
        let free = freeBytes(folder)
        if let free, free < 1 << 20 {
            throw HDF5Error("cannot write '\(path)': the disk holding '\(folder)' is full (\(free / 1024) KB free)", hdf5Stack: false)
        }
        throw error
    }
}

/// fsyncs a closed file so the rename never exposes a file whose data is not yet on disk.
private func syncToDisk(_ path: String) throws {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else {
        throw HDF5Error("cannot reopen '\(path)' to sync it: \(String(cString: strerror(errno)))", hdf5Stack: false)
    }
    defer { close(descriptor) }
    guard fsync(descriptor) == 0 else {
        throw HDF5Error("cannot sync '\(path)' to disk: \(String(cString: strerror(errno)))", hdf5Stack: false)
    }
}

/// Removes the temporaries of killed `writeAtomically` calls in `folder`: a temporary whose
/// `.lock` file nobody holds a flock on (its writer died; the kernel released the lock) goes,
/// with its lock file. A temporary whose lock is held — by a live writer in this or another
/// process, also on another node of a shared file system — stays, and so does a temporary
/// without a lock file. Returns the names removed.
@discardableResult
public func removeAbandonedTemporaries(in folder: String) -> [String] {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
    var removed: [String] = []
    for name in names where name.hasPrefix(".") && name.contains(".tmp-") && name.hasSuffix(".lock") {
        let lockPath = (folder as NSString).appendingPathComponent(name)
        let fd = Foundation.open(lockPath, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { continue }
        defer { Foundation.close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }   // a live writer holds it
        let temporary = String(lockPath.dropLast(".lock".count))
        unlink(temporary)
        unlink(lockPath)
        removed.append(String(name.dropLast(".lock".count)))
    }
    return removed
}

/// Bytes free to an unprivileged user on the file system holding `folder`.
func freeBytes(_ folder: String) -> UInt64? {
    var st = statvfs()
    guard statvfs(folder, &st) == 0 else { return nil }
    return UInt64(st.f_bavail) * UInt64(st.f_frsize)
}
