import CHDF5

/// Datasets: N-dimensional Float, Double and Int64 arrays and 1-D string lists.
///
/// Writing a name that already holds a dataset replaces it; intermediate groups of a nested name
/// ("a/b/x") are created. Shapes are row-major (C order), as in NumPy.
extension H5Group {
    /// Writes `values` as a float32 dataset of `shape` (nil: 1-D), optionally chunked and gzip-compressed.
    public func write(_ name: String, _ values: [Float], shape: [Int]? = nil, compress: Bool = false) throws {
        try writeNumbers(name, values, shape: shape, compress: compress, type: .float32)
    }

    /// Writes `values` as a float64 dataset of `shape` (nil: 1-D), optionally chunked and gzip-compressed.
    public func write(_ name: String, _ values: [Double], shape: [Int]? = nil, compress: Bool = false) throws {
        try writeNumbers(name, values, shape: shape, compress: compress, type: .float64)
    }

    /// Writes `values` as an int64 dataset of `shape` (nil: 1-D), optionally chunked and gzip-compressed.
    public func write(_ name: String, _ values: [Int64], shape: [Int]? = nil, compress: Bool = false) throws {
        try writeNumbers(name, values, shape: shape, compress: compress, type: .int64)
    }

    /// Writes `strings` as a 1-D dataset of variable-length UTF-8 strings.
    public func write(_ name: String, strings: [String]) throws {
        try serialized {
            let type = try variableStringType()
            defer { H5Tclose(type) }
            try createDataset(name, shape: [strings.count], fileType: type, chunk: nil) { dataset in
                try withCStrings(strings) { buffer in
                    try check(H5Dwrite(dataset, type, overopt_H5S_ALL(), overopt_H5S_ALL(), P_DEFAULT, buffer),
                              "cannot write strings to \(describe(name))")
                }
            }
        }
    }

    /// Reads a numeric dataset as Float (HDF5 converts other integer or float types) with its shape.
    public func readFloats(_ name: String) throws -> (values: [Float], shape: [Int]) {
        try readNumbers(name, zero: Float(0), memoryType: overopt_H5T_NATIVE_FLOAT(), expected: "numbers", accepts: isNumeric)
    }

    /// Reads a numeric dataset as Double (HDF5 converts other integer or float types) with its shape.
    public func readDoubles(_ name: String) throws -> (values: [Double], shape: [Int]) {
        try readNumbers(name, zero: Double(0), memoryType: overopt_H5T_NATIVE_DOUBLE(), expected: "numbers", accepts: isNumeric)
    }

    /// Reads an integer dataset as Int64 with its shape (floating-point datasets are refused, not truncated).
    public func readInt64s(_ name: String) throws -> (values: [Int64], shape: [Int]) {
        try readNumbers(name, zero: Int64(0), memoryType: overopt_H5T_NATIVE_INT64(), expected: "integers") {
            H5Tget_class($0) == H5T_INTEGER
        }
    }

    /// Reads a string dataset of any rank, flattened, whether its strings are variable- or fixed-length.
    public func readStrings(_ name: String) throws -> [String] {
        try withDataset(name) { dataset, type, extent in
            guard H5Tget_class(type) == H5T_STRING else {
                throw HDF5Error("\(describe(name)) holds \(typeDescription(type)) values, expected strings", hdf5Stack: false)
            }
            return try readStringValues(fileType: type, count: extent.count, what: describe(name)) { memoryType, buffer in
                H5Dread(dataset, memoryType, overopt_H5S_ALL(), overopt_H5S_ALL(), P_DEFAULT, buffer)
            }
        }
    }

    /// The shape and stored element type ("float32", "float64", "int64", "string", …) of a dataset.
    public func datasetInfo(_ name: String) throws -> (shape: [Int], typeDescription: String) {
        try withDataset(name) { _, type, extent in (extent.shape, typeDescription(type)) }
    }

    // MARK: - Internals

    private func writeNumbers<T>(_ name: String, _ values: [T], shape: [Int]?, compress: Bool, type: NumericType) throws {
        try serialized {
            let dims = try resolvedShape(shape, count: values.count, what: describe(name))
            let chunk = compress && !values.isEmpty && !dims.isEmpty
                ? chunkShape(dims, elementSize: MemoryLayout<T>.stride) : nil
            try createDataset(name, shape: dims, fileType: type.file, chunk: chunk) { dataset in
                try values.withUnsafeBytes { buffer in
                    try check(H5Dwrite(dataset, type.memory, overopt_H5S_ALL(), overopt_H5S_ALL(), P_DEFAULT, buffer.baseAddress),
                              "cannot write \(describe(name))")
                }
            }
        }
    }

    /// Creates dataset `name` (replacing an existing dataset), then fills it with `fill` unless it is empty.
    private func createDataset(_ name: String, shape: [Int], fileType: hid_t, chunk: [Int]?,
                               fill: (hid_t) throws -> Void) throws {
        let (parent, leaf) = try parentAndLeaf(name)
        let loc = try parent.location()
        if parent.contains(leaf) {
            guard parent.objectKind(leaf) == "dataset" else {
                throw HDF5Error("cannot write dataset \(describe(name)): a \(parent.objectKind(leaf)) of that name exists", hdf5Stack: false)
            }
            try check(H5Ldelete(loc, leaf, P_DEFAULT), "cannot replace dataset \(describe(name))")
        }
        let space = try makeDataspace(shape)
        defer { H5Sclose(space) }
        let creation = try check(H5Pcreate(overopt_H5P_DATASET_CREATE()), "cannot create dataset properties")
        defer { H5Pclose(creation) }
        if let chunk {
            try check(H5Pset_chunk(creation, Int32(chunk.count), chunk.map { hsize_t($0) }), "cannot set chunk shape \(chunk)")
            try check(H5Pset_deflate(creation, 4), "cannot enable gzip compression (is zlib support missing?)")
        }
        let dataset = try check(H5Dcreate2(loc, leaf, fileType, space, P_DEFAULT, creation, P_DEFAULT),
                                "cannot create dataset \(describe(name))")
        defer { H5Dclose(dataset) }
        if shape.reduce(1, *) > 0 {
            do { try fill(dataset) } catch {
                H5Ldelete(loc, leaf, P_DEFAULT)  // do not leave a half-written dataset behind
                throw error
            }
        }
    }

    /// The group that will hold `name` (created if missing) and the last component of `name`.
    private func parentAndLeaf(_ name: String) throws -> (H5Group, String) {
        let parts = name.split(separator: "/")
        guard let leaf = parts.last else { throw HDF5Error("empty dataset name in \(describe())", hdf5Stack: false) }
        guard parts.count > 1 || name.hasPrefix("/") else { return (self, String(leaf)) }
        let parentName = (name.hasPrefix("/") ? "/" : "") + parts.dropLast().joined(separator: "/")
        return (parentName == "/" ? file.root : try createGroup(parentName), String(leaf))
    }

    /// Opens dataset `name`, with an error naming the file and path if it is missing or not a dataset.
    func openDataset(_ name: String) throws -> hid_t {
        let loc = try location()
        guard contains(name) else { throw HDF5Error("no dataset \(describe(name))", hdf5Stack: false) }
        let kind = objectKind(name)
        guard kind == "dataset" else { throw HDF5Error("\(describe(name)) is a \(kind), not a dataset", hdf5Stack: false) }
        return try check(H5Dopen2(loc, name, P_DEFAULT), "cannot open dataset \(describe(name))")
    }

    /// Calls `body` with an open dataset, its stored type, shape and element count.
    private func withDataset<T>(_ name: String, _ body: (hid_t, hid_t, (shape: [Int], count: Int)) throws -> T) throws -> T {
        try serialized {
            let dataset = try openDataset(name)
            defer { H5Dclose(dataset) }
            let type = try check(H5Dget_type(dataset), "cannot read the type of \(describe(name))")
            defer { H5Tclose(type) }
            let space = try check(H5Dget_space(dataset), "cannot read the shape of \(describe(name))")
            defer { H5Sclose(space) }
            let shape = try extent(of: space)
            // A corrupt header can claim any shape: refuse one its file cannot hold before
            // allocating for it.
            let (bytes, overflow) = shape.count.multipliedReportingOverflow(by: H5Tget_size(type))
            guard !overflow, bytes <= (try plausibleByteCount(dataset, describe(name))) else {
                throw HDF5Error("\(describe(name)) claims shape \(shape.shape), more values than its file can hold (the file is corrupt)",
                                hdf5Stack: false)
            }
            return try body(dataset, type, shape)
        }
    }

    private func readNumbers<T>(_ name: String, zero: T, memoryType: hid_t, expected: String,
                                accepts: (hid_t) -> Bool) throws -> (values: [T], shape: [Int]) {
        try withDataset(name) { dataset, type, extent in
            guard accepts(type) else {
                throw HDF5Error("\(describe(name)) holds \(typeDescription(type)) values, expected \(expected)", hdf5Stack: false)
            }
            var values = [T](repeating: zero, count: extent.count)
            if extent.count > 0 {
                try check(values.withUnsafeMutableBytes {
                    H5Dread(dataset, memoryType, overopt_H5S_ALL(), overopt_H5S_ALL(), P_DEFAULT, $0.baseAddress)
                }, "cannot read \(describe(name)) as \(expected)")
            }
            return (values, extent.shape)
        }
    }
}

/// A chunk shape for gzip compression: the dataset's shape, halving its largest dimension until a
/// chunk holds at most 256 KiB.
func chunkShape(_ shape: [Int], elementSize: Int) -> [Int] {
    var chunk = shape.map { max($0, 1) }
    while chunk.reduce(elementSize, *) > 1 << 18, let largest = chunk.indices.max(by: { chunk[$0] < chunk[$1] }) {
        chunk[largest] = (chunk[largest] + 1) / 2
    }
    return chunk
}
