/// Reads that check what a reader is about to index: the rank, the length and the range of
/// the values, against what the rest of the file (or the program) says they must be. A file
/// that does not match — corrupt, hand-edited or of another layout — gives an error naming
/// the dataset, never an index out of range.
extension H5Group {
    /// A float dataset of `count` values (any count when nil), flattened.
    public func doubles(_ name: String, count: Int? = nil) throws -> [Double] {
        let (values, shape) = try readDoubles(name)
        try expect(name, shape: shape, count: values.count, wanted: count)
        return values
    }

    /// A float dataset as Float, of `count` values (any count when nil), flattened.
    public func floats(_ name: String, count: Int? = nil) throws -> [Float] {
        let (values, shape) = try readFloats(name)
        try expect(name, shape: shape, count: values.count, wanted: count)
        return values
    }

    /// An integer dataset of `count` values (any count when nil), flattened, each in `range`.
    public func integers(_ name: String, count: Int? = nil, in range: ClosedRange<Int64>? = nil) throws -> [Int64] {
        let (values, shape) = try readInt64s(name)
        try expect(name, shape: shape, count: values.count, wanted: count)
        if let range { try expect(name, values, in: range) }
        return values
    }

    /// A 2-D integer dataset of `rows` rows (any number when nil), each value in `range`.
    public func integerMatrix(_ name: String, rows: Int? = nil, in range: ClosedRange<Int64>? = nil) throws -> (values: [Int64], width: Int) {
        let (values, shape) = try readInt64s(name)
        guard shape.count == 2, rows == nil || shape[0] == rows else {
            throw HDF5Error("\(describe(name)) has shape \(shape), expected \(rows.map { "(\($0), width)" } ?? "a matrix")", hdf5Stack: false)
        }
        if let range { try expect(name, values, in: range) }
        return (values, shape[1])
    }

    /// A string dataset of `count` strings (any count when nil).
    public func strings(_ name: String, count: Int? = nil) throws -> [String] {
        let values = try readStrings(name)
        if let count, values.count != count {
            throw HDF5Error("\(describe(name)) holds \(values.count) strings, expected \(count)", hdf5Stack: false)
        }
        return values
    }

    private func expect(_ name: String, shape: [Int], count: Int, wanted: Int?) throws {
        if let wanted, count != wanted {
            throw HDF5Error("\(describe(name)) holds \(count) values, expected \(wanted)", hdf5Stack: false)
        }
    }

    private func expect(_ name: String, _ values: [Int64], in range: ClosedRange<Int64>) throws {
        if let bad = values.first(where: { !range.contains($0) }) {
            throw HDF5Error("\(describe(name)) holds \(bad), outside \(range.lowerBound)…\(range.upperBound)", hdf5Stack: false)
        }
    }
}
