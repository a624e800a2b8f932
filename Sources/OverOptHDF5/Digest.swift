import CHDF5

/// A checksum of a group's whole contents, to detect a file changed on disk after it was
/// written (a bad sector, a partial copy, bytes overwritten): every child group, dataset and
/// attribute below the group, in name order, with its path, element type, shape and values.
/// Attributes whose names are in `excluding` (on the group itself only) are left out, so the
/// checksum can be stored on the group it covers.
///
/// The hash is FNV-1a over 64-bit little-endian words (`ContentHasher`): changing any single
/// word of the hashed stream always changes the result, since each step is a bijection of
/// the running state for a fixed word.
extension H5Group {
    public func contentDigest(excluding: Set<String> = []) throws -> UInt64 {
        try serialized {
            var hasher = ContentHasher()
            try addContents(to: &hasher, excluding: excluding)
            return hasher.value
        }
    }

    private func addContents(to hasher: inout ContentHasher, excluding: Set<String>) throws {
        for name in try attributeNames() where !excluding.contains(name) {
            hasher.add(string: "@" + path + "/" + name)
            try withAttributeValues(name) { hasher.add(bytes: $0) }
        }
        for name in try children() {
            hasher.add(string: childPath(name))
            switch objectKind(name) {
            case "group": try group(name).addContents(to: &hasher, excluding: [])
            case "dataset": try withDatasetValues(name) { hasher.add(bytes: $0) }
            case let kind: throw HDF5Error("\(describe(name)) is a \(kind), which a checksum does not cover", hdf5Stack: false)
            }
        }
    }

    /// Calls `body` with the stored type, shape and values of attribute `name` as bytes.
    private func withAttributeValues(_ name: String, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        let loc = try location()
        let attribute = try check(H5Aopen(loc, name, P_DEFAULT), "cannot open \(describe(attribute: name, on: nil))")
        defer { H5Aclose(attribute) }
        try withValueBytes(what: describe(attribute: name, on: nil), type: H5Aget_type(attribute), space: H5Aget_space(attribute),
                           limit: Int.max, read: { H5Aread(attribute, $0, $1) }, body)
    }

    /// Calls `body` with the stored type, shape and values of dataset `name` as bytes.
    private func withDatasetValues(_ name: String, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        let dataset = try openDataset(name)
        defer { H5Dclose(dataset) }
        try withValueBytes(what: describe(name), type: H5Dget_type(dataset), space: H5Dget_space(dataset),
                           limit: try plausibleByteCount(dataset, describe(name)),
                           read: { H5Dread(dataset, $0, overopt_H5S_ALL(), overopt_H5S_ALL(), P_DEFAULT, $1) }, body)
    }

    /// The type description, the shape and the values (strings as their UTF-8 bytes, each
    /// followed by a NUL; anything else in its native in-memory layout) of a dataset or an
    /// attribute, as one byte stream.
    private func withValueBytes(what: String, type fileType: hid_t, space: hid_t, limit: Int,
                                read: (hid_t, UnsafeMutableRawPointer) -> herr_t,
                                _ body: (UnsafeRawBufferPointer) -> Void) throws {
        let type = try check(fileType, "cannot read the type of \(what)")
        defer { H5Tclose(type) }
        let dataspace = try check(space, "cannot read the shape of \(what)")
        defer { H5Sclose(dataspace) }
        let (shape, count) = try extent(of: dataspace)
        var header = Array((typeDescription(type) + "\(shape)").utf8)
        header.withUnsafeBytes(body)
        guard count > 0 else { return }
        if H5Tget_class(type) == H5T_STRING {
            let strings = try readStringValues(fileType: type, count: count, what: what, read: read)
            header = []
            for s in strings { header += Array(s.utf8) + [0] }
            header.withUnsafeBytes(body)
            return
        }
        guard H5Tdetect_class(type, H5T_VLEN) <= 0 else {
            throw HDF5Error("\(what) holds variable-length values, which a checksum does not cover", hdf5Stack: false)
        }
        let memoryType = try check(H5Tget_native_type(type, H5T_DIR_ASCEND), "cannot find the native type of \(what)")
        defer { H5Tclose(memoryType) }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: H5Tget_size(memoryType))
        guard !overflow, bytes <= limit else {
            throw HDF5Error("\(what) claims \(count) values, more than its file can hold (the file is corrupt)", hdf5Stack: false)
        }
        var values = [UInt8](repeating: 0, count: bytes)
        try check(values.withUnsafeMutableBytes { read(memoryType, $0.baseAddress!) }, "cannot read \(what)")
        values.withUnsafeBytes(body)
    }
}

/// The most bytes a dataset's values can take in memory given the storage its file gives
/// it: a corrupt header can claim any shape, and reading it would allocate that much. Data
/// stored contiguously takes exactly its size; compressed chunks expand at most about
/// 1032-fold (deflate's limit).
func plausibleByteCount(_ dataset: hid_t, _ what: @autoclosure () -> String) throws -> Int {
    let storage = H5Dget_storage_size(dataset)
    let file = H5Iget_file_id(dataset)
    var fileSize: hsize_t = 0
    if file >= 0 {
        H5Fget_filesize(file, &fileSize)
        H5Fclose(file)
    }
    // Storage beyond the file's size is itself a sign of a corrupt header.
    let stored = fileSize > 0 ? min(storage, fileSize) : storage
    let (limit, overflow) = Int(clamping: stored).multipliedReportingOverflow(by: 1100)
    return overflow ? Int.max : limit + (1 << 16)
}

/// FNV-1a over 64-bit little-endian words (a trailing partial word padded with zeros), with
/// the length of each piece mixed in.
struct ContentHasher {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    private mutating func mix(_ word: UInt64) {
        value = (value ^ word) &* 0x0000_0100_0000_01b3
    }

    mutating func add(bytes: UnsafeRawBufferPointer) {
        mix(UInt64(bytes.count))
        let words = bytes.count / 8
        for i in 0..<words {
            mix(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
        }
        var tail: UInt64 = 0
        for (k, byte) in bytes[(words * 8)...].enumerated() { tail |= UInt64(byte) << (8 * UInt64(k)) }
        if bytes.count % 8 != 0 { mix(tail) }
    }

    mutating func add(string: String) {
        Array(string.utf8).withUnsafeBytes { add(bytes: $0) }
    }
}
