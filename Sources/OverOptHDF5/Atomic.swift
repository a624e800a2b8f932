import Foundation

/// Writes an HDF5 file so that `path` either does not exist or holds the complete file.
///
/// `body` writes into `<folder>/.<name>.tmp-<pid>-<random>` in the destination folder; when it returns,
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
        file?.close()  // explicitly: a group kept by `body` would otherwise keep the file open
        unlink(temporary)
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
