import CHDF5
import Foundation

/// An open HDF5 file; closed by `close()` or when the last reference to it (or to one of its groups) goes away.
///
/// The underlying HDF5 library is not thread-safe: use a file and its groups from one thread at a time.
/// (Calls are additionally serialized by a global lock, so separate files on separate threads are safe.)
public final class H5File {
    /// The path the file was created or opened with.
    public let path: String
    /// The HDF5 file identifier; negative once closed.
    private(set) var id: hid_t
    /// For a file open for reading, its token for the read guard (see `installReadGuard`).
    private var readingToken: Int?

    private init(id: hid_t, path: String, readingToken: Int? = nil) {
        self.id = id
        self.path = path
        self.readingToken = readingToken
    }

    deinit { close() }

    /// Creates a new file at `path`, truncating any existing file.
    public static func create(_ path: String) throws -> H5File {
        try serialized {
            let access = try fileAccessList()
            defer { H5Pclose(access) }
            let id = H5Fcreate(path, overopt_H5F_ACC_TRUNC(), overopt_H5P_DEFAULT(), access)
            try check(id, "cannot create HDF5 file '\(path)'")
            return H5File(id: id, path: path)
        }
    }

    /// Opens an existing HDF5 file, read-only unless `writable`.
    ///
    /// A missing path, a folder, or a file that is not HDF5 gives an error naming the path.
    public static func open(_ path: String, writable: Bool = false) throws -> H5File {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw HDF5Error("no such file: '\(path)' (expected an HDF5 file)", hdf5Stack: false)
        }
        if isFolder.boolValue {
            throw HDF5Error("'\(path)' is a folder, not an HDF5 file", hdf5Stack: false)
        }
        return try serialized {
            let token = writable ? nil : startReading(path)
            var opened = false
            defer { if let token, !opened { doneReading(token) } }
            let isHDF5 = H5Fis_hdf5(path)
            try check(isHDF5, "cannot read '\(path)' (expected an HDF5 file)")
            if isHDF5 == 0 {
                throw HDF5Error("'\(path)' is not an HDF5 file (no HDF5 signature found; expected an HDF5 file such as an OverOpt result file)", hdf5Stack: false)
            }
            let access = try fileAccessList()
            defer { H5Pclose(access) }
            let mode = writable ? overopt_H5F_ACC_RDWR() : overopt_H5F_ACC_RDONLY()
            let id = H5Fopen(path, mode, access)
            try check(id, "cannot open HDF5 file '\(path)'\(writable ? " for writing" : "")")
            opened = true
            return H5File(id: id, path: path, readingToken: token)
        }
    }

    /// The root group "/".
    public var root: H5Group {
        serialized {
            // A closed file yields a group whose every operation throws "file is closed".
            let groupID = isOpen ? H5Gopen2(id, "/", overopt_H5P_DEFAULT()) : -1
            return H5Group(file: self, path: "/", id: groupID)
        }
    }

    /// Whether the file is still open.
    var isOpen: Bool { id >= 0 }

    /// Flushes buffered data to disk.
    public func flush() throws {
        try serialized {
            guard isOpen else { throw HDF5Error("cannot flush '\(path)': the file is closed", hdf5Stack: false) }
            try check(H5Fflush(id, H5F_SCOPE_LOCAL), "cannot flush HDF5 file '\(path)'")
        }
    }

    /// Closes the file and every group or dataset still open in it. Calling it again does nothing.
    public func close() { try? closeChecked() }

    /// Closes the file, reporting a failure to write it out.
    func closeChecked() throws {
        try serialized {
            guard isOpen else { return }
            let result = H5Fclose(id)
            id = -1
            if let token = readingToken { doneReading(token) }
            try check(result, "cannot close HDF5 file '\(path)'")
        }
    }

    /// Gives the file up without closing it, after a failed write (a full disk): HDF5 1.10
    /// crashes when it closes — and so flushes again — a file whose flush failed. The handle
    /// and its memory are leaked for the rest of the process; the file itself is unlinked by
    /// the caller.
    func abandon() {
        serialized { id = -1 }
    }

    /// File-access properties: closing the file closes all its objects, so `close()` really closes it.
    private static func fileAccessList() throws -> hid_t {
        let list = try check(H5Pcreate(overopt_H5P_FILE_ACCESS()), "cannot create a file-access property list")
        if H5Pset_fclose_degree(list, H5F_CLOSE_STRONG) < 0 {
            H5Pclose(list)
            throw HDF5Error("cannot set the file close degree")
        }
        return list
    }
}
