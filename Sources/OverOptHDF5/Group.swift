import CHDF5

/// A group in an open HDF5 file: holds child groups, datasets (see Dataset.swift) and attributes
/// (see Attribute.swift). Names given to its methods are relative to it and may be nested ("a/b").
///
/// Keeps its file alive. Use from one thread at a time (the HDF5 library is not thread-safe).
public final class H5Group {
    /// The group's absolute path in the file, e.g. "/rm/bt".
    public let path: String
    /// The file the group belongs to.
    let file: H5File
    /// The HDF5 group identifier (negative if the file was already closed when the group was made).
    let id: hid_t

    init(file: H5File, path: String, id: hid_t) {
        self.file = file
        self.path = path
        self.id = id
    }

    deinit {
        // Closing the file closes its groups too; only close the identifier while it is valid.
        serialized { if id >= 0 && file.isOpen { H5Gclose(id) } }
    }

    /// Creates the group `name` (intermediate groups included) or returns it if it already exists.
    @discardableResult
    public func createGroup(_ name: String) throws -> H5Group {
        try serialized {
            let parts = name.split(separator: "/").map(String.init)
            guard !parts.isEmpty else { throw HDF5Error("cannot create a group with an empty name in \(describe())", hdf5Stack: false) }
            var current = name.hasPrefix("/") ? file.root : self
            for part in parts {
                if current.contains(part) {
                    current = try current.group(part)
                } else {
                    let loc = try current.location()
                    let p = P_DEFAULT
                    let groupID = try check(H5Gcreate2(loc, part, p, p, p), "cannot create group \(current.describe(part))")
                    current = H5Group(file: file, path: current.childPath(part), id: groupID)
                }
            }
            return current
        }
    }

    /// Opens the existing group `name`.
    public func group(_ name: String) throws -> H5Group {
        try serialized {
            let loc = try location()
            guard contains(name) else { throw HDF5Error("no group \(describe(name))", hdf5Stack: false) }
            let kind = objectKind(name)
            guard kind == "group" else { throw HDF5Error("\(describe(name)) is a \(kind), not a group", hdf5Stack: false) }
            let groupID = try check(H5Gopen2(loc, name, P_DEFAULT), "cannot open group \(describe(name))")
            return H5Group(file: file, path: childPath(name), id: groupID)
        }
    }

    /// Whether a link called `name` exists (every component of a nested name must exist).
    public func contains(_ name: String) -> Bool {
        serialized {
            guard let loc = try? location() else { return false }
            var prefix = name.hasPrefix("/") ? "/" : ""
            for part in name.split(separator: "/") {
                prefix += (prefix.isEmpty || prefix == "/" ? "" : "/") + part
                // H5Lexists fails (negative) when an intermediate component is not a group.
                if H5Lexists(loc, prefix, P_DEFAULT) <= 0 { return false }
            }
            return true
        }
    }

    /// The names of the group's direct children (groups, datasets, other links), sorted.
    public func children() throws -> [String] {
        try serialized {
            let loc = try location()
            var info = H5G_info_t()
            try check(H5Gget_info(loc, &info), "cannot list group '\(path)' in '\(file.path)'")
            var names: [String] = []
            for index in 0..<info.nlinks {
                let length = try check(H5Lget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, P_DEFAULT),
                                       "cannot read a link name in '\(path)' of '\(file.path)'")
                var buffer = [CChar](repeating: 0, count: Int(length) + 1)
                H5Lget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, buffer.count, P_DEFAULT)
                names.append(string(fromNulTerminated: buffer))
            }
            return names.sorted()
        }
    }

    /// Removes the link `name` (a dataset or a group with everything below it).
    public func remove(_ name: String) throws {
        try serialized {
            let loc = try location()
            guard contains(name) else { throw HDF5Error("no object \(describe(name)) to remove", hdf5Stack: false) }
            try check(H5Ldelete(loc, name, P_DEFAULT), "cannot remove \(describe(name))")
        }
    }

    /// Whether `name` exists and is a group.
    public func isGroup(_ name: String) -> Bool {
        serialized { contains(name) && objectKind(name) == "group" }
    }

    // MARK: - Internal helpers

    /// The group identifier, or an error if the file has been closed.
    func location() throws -> hid_t {
        guard file.isOpen, id >= 0 else {
            throw HDF5Error("cannot use group '\(path)': file '\(file.path)' is closed", hdf5Stack: false)
        }
        return id
    }

    /// The absolute path of `name` relative to this group.
    func childPath(_ name: String) -> String {
        if name.hasPrefix("/") { return name }
        return path == "/" ? "/" + name : path + "/" + name
    }

    /// "'/a/b' in 'file.h5'" for `name` (or for this group if nil), for error messages.
    func describe(_ name: String? = nil) -> String {
        "'\(name.map(childPath) ?? path)' in '\(file.path)'"
    }

    /// "group", "dataset", "named datatype" or "object" for an existing `name`; "unresolvable link" if it cannot be opened.
    func objectKind(_ name: String) -> String {
        serialized {
            guard let loc = try? location() else { return "unresolvable link" }
            let object = H5Oopen(loc, name, P_DEFAULT)
            guard object >= 0 else {
                H5Eclear2(overopt_H5E_DEFAULT())
                return "unresolvable link"
            }
            defer { H5Oclose(object) }
            switch H5Iget_type(object) {
            case H5I_GROUP: return "group"
            case H5I_DATASET: return "dataset"
            case H5I_DATATYPE: return "named datatype"
            default: return "object"
            }
        }
    }
}

/// H5P_DEFAULT, shortened: it appears in nearly every call.
var P_DEFAULT: hid_t { overopt_H5P_DEFAULT() }

/// Decodes a NUL-terminated (or NUL-padded) C buffer as UTF-8.
func string(fromNulTerminated buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
