import CHDF5

/// An attribute value with its type, for writing heterogeneous settings in one loop.
public enum AttributeValue: Sendable, Equatable {
    case int(Int)
    case bool(Bool)
    case float(Double)
    case string(String)
    case strings([String])
}

/// Attributes on this group (`on: nil`) or on a child object (`on:` its name, e.g. a dataset).
///
/// Setting an attribute that exists replaces it. Numbers are stored as float64 or int64, booleans as
/// h5py and NumPy store them (an int8 enum FALSE = 0, TRUE = 1), strings as variable-length UTF-8;
/// readers also accept what h5py writes (other numeric widths, fixed-length strings).
extension H5Group {
    /// Sets a float64 scalar attribute.
    public func setAttribute(_ name: String, _ value: Double, on: String? = nil) throws {
        try setNumbers(name, [value], shape: [], type: .float64, on: on)
    }

    /// Sets an int64 scalar attribute.
    public func setAttribute(_ name: String, _ value: Int64, on: String? = nil) throws {
        try setNumbers(name, [value], shape: [], type: .int64, on: on)
    }

    /// Sets a variable-length UTF-8 string attribute.
    public func setAttribute(_ name: String, _ value: String, on: String? = nil) throws {
        try serialized {
            let type = try variableStringType()
            defer { H5Tclose(type) }
            try createAttribute(name, on: on, shape: [], fileType: type) { attribute in
                try withCStrings([value]) { try check(H5Awrite(attribute, type, $0), "cannot write \(describe(attribute: name, on: on))") }
            }
        }
    }

    /// Sets an attribute of the value's type: int64, boolean, float64, string or string array.
    public func setAttribute(_ name: String, _ value: AttributeValue, on: String? = nil) throws {
        switch value {
        case .int(let v): try setAttribute(name, Int64(v), on: on)
        case .bool(let v): try setAttribute(name, v, on: on)
        case .float(let v): try setAttribute(name, v, on: on)
        case .string(let v): try setAttribute(name, v, on: on)
        case .strings(let v): try setAttribute(name, v, on: on)
        }
    }

    /// Sets a boolean attribute (h5py reads it as `numpy.bool_`).
    public func setAttribute(_ name: String, _ value: Bool, on: String? = nil) throws {
        try serialized {
            let type = try booleanType()
            defer { H5Tclose(type) }
            try createAttribute(name, on: on, shape: [], fileType: type) { attribute in
                var byte: Int8 = value ? 1 : 0
                try check(H5Awrite(attribute, type, &byte), "cannot write \(describe(attribute: name, on: on))")
            }
        }
    }

    /// Sets a 1-D attribute of variable-length UTF-8 strings (h5py reads a list of str).
    public func setAttribute(_ name: String, _ values: [String], on: String? = nil) throws {
        try serialized {
            let type = try variableStringType()
            defer { H5Tclose(type) }
            try createAttribute(name, on: on, shape: [values.count], fileType: type) { attribute in
                try withCStrings(values) { try check(H5Awrite(attribute, type, $0), "cannot write \(describe(attribute: name, on: on))") }
            }
        }
    }

    /// Sets a 1-D float64 array attribute.
    public func setAttribute(_ name: String, _ values: [Double], on: String? = nil) throws {
        try setNumbers(name, values, shape: [values.count], type: .float64, on: on)
    }

    /// Sets a 1-D int64 array attribute.
    public func setAttribute(_ name: String, _ values: [Int64], on: String? = nil) throws {
        try setNumbers(name, values, shape: [values.count], type: .int64, on: on)
    }

    /// The names of the attributes on the group or on `on`, sorted.
    public func attributeNames(on: String? = nil) throws -> [String] {
        try withObject(on) { object in
            final class Names { var list: [String] = [] }
            let names = Names()
            try withExtendedLifetime(names) {
                _ = try check(H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, nil, { _, name, _, data in
                    if let name, let data { Unmanaged<Names>.fromOpaque(data).takeUnretainedValue().list.append(String(cString: name)) }
                    return 0
                }, Unmanaged.passUnretained(names).toOpaque()), "cannot list the attributes of \(describe(on))")
            }
            return names.list.sorted()
        }
    }

    /// Whether the group (or `on`) has an attribute called `name`.
    public func hasAttribute(_ name: String, on: String? = nil) -> Bool {
        (try? withObject(on) { H5Aexists($0, name) > 0 }) ?? false
    }

    /// Reads a single-valued numeric attribute (any integer or float stored type) as Double.
    public func doubleAttribute(_ name: String, on: String? = nil) throws -> Double {
        try single(doubleArrayAttribute(name, on: on), name, on)
    }

    /// Reads a single-valued integer attribute as Int64 (floating-point attributes are refused).
    public func intAttribute(_ name: String, on: String? = nil) throws -> Int64 {
        try single(intArrayAttribute(name, on: on), name, on)
    }

    /// Reads a single boolean attribute: a boolean enum (as h5py writes it) or an integer (≠ 0 is true).
    public func boolAttribute(_ name: String, on: String? = nil) throws -> Bool {
        try withAttribute(name, on: on) { attribute, type, extent in
            guard extent.count == 1 else {
                throw HDF5Error("\(describe(attribute: name, on: on)) holds \(extent.count) values, expected exactly one", hdf5Stack: false)
            }
            switch H5Tget_class(type) {
            case H5T_ENUM where H5Tget_size(type) == 1:
                var byte: Int8 = 0
                try check(H5Aread(attribute, type, &byte), "cannot read \(describe(attribute: name, on: on))")
                return byte != 0
            case H5T_INTEGER:
                var value: Int64 = 0
                try check(H5Aread(attribute, overopt_H5T_NATIVE_INT64(), &value), "cannot read \(describe(attribute: name, on: on))")
                return value != 0
            default:
                throw HDF5Error("\(describe(attribute: name, on: on)) holds \(typeDescription(type)) values, expected a boolean", hdf5Stack: false)
            }
        }
    }

    /// Reads a single string attribute, variable- or fixed-length.
    public func stringAttribute(_ name: String, on: String? = nil) throws -> String {
        try single(stringArrayAttribute(name, on: on), name, on)
    }

    /// Reads a numeric attribute of any shape (any integer or float stored type), flattened, as Doubles.
    public func doubleArrayAttribute(_ name: String, on: String? = nil) throws -> [Double] {
        try readNumbers(name, on: on, zero: 0.0, memoryType: overopt_H5T_NATIVE_DOUBLE(), expected: "numbers", accepts: isNumeric)
    }

    /// Reads an integer attribute of any shape, flattened, as Int64s.
    public func intArrayAttribute(_ name: String, on: String? = nil) throws -> [Int64] {
        try readNumbers(name, on: on, zero: Int64(0), memoryType: overopt_H5T_NATIVE_INT64(), expected: "integers") {
            H5Tget_class($0) == H5T_INTEGER
        }
    }

    /// Reads a string attribute of any shape, flattened, variable- or fixed-length.
    public func stringArrayAttribute(_ name: String, on: String? = nil) throws -> [String] {
        try withAttribute(name, on: on) { attribute, type, extent in
            guard H5Tget_class(type) == H5T_STRING else {
                throw HDF5Error("\(describe(attribute: name, on: on)) holds \(typeDescription(type)) values, expected strings", hdf5Stack: false)
            }
            return try readStringValues(fileType: type, count: extent.count, what: describe(attribute: name, on: on)) {
                H5Aread(attribute, $0, $1)
            }
        }
    }

    /// The shape ([] for a scalar) and stored element type ("float64", "int64", "string", …) of an attribute.
    public func attributeInfo(_ name: String, on: String? = nil) throws -> (shape: [Int], typeDescription: String) {
        try withAttribute(name, on: on) { _, type, extent in (extent.shape, typeDescription(type)) }
    }

    // MARK: - Internals

    /// "attribute 'x' on '/a/b' in 'file.h5'", for error messages.
    func describe(attribute name: String, on: String?) -> String { "attribute '\(name)' on \(describe(on))" }

    /// Calls `body` with the identifier of this group (`on` nil) or of the object `on`.
    private func withObject<T>(_ on: String?, _ body: (hid_t) throws -> T) throws -> T {
        try serialized {
            let loc = try location()
            guard let on else { return try body(loc) }
            guard contains(on) else { throw HDF5Error("no object \(describe(on))", hdf5Stack: false) }
            let object = try check(H5Oopen(loc, on, P_DEFAULT), "cannot open \(describe(on))")
            defer { H5Oclose(object) }
            return try body(object)
        }
    }

    private func setNumbers<T>(_ name: String, _ values: [T], shape: [Int], type: NumericType, on: String?) throws {
        try serialized {
            try createAttribute(name, on: on, shape: shape, fileType: type.file) { attribute in
                try values.withUnsafeBytes {
                    try check(H5Awrite(attribute, type.memory, $0.baseAddress), "cannot write \(describe(attribute: name, on: on))")
                }
            }
        }
    }

    /// Creates attribute `name` (replacing an existing one) and fills it with `fill` unless it is empty.
    private func createAttribute(_ name: String, on: String?, shape: [Int], fileType: hid_t,
                                 fill: (hid_t) throws -> Void) throws {
        try withObject(on) { object in
            if H5Aexists(object, name) > 0 {
                try check(H5Adelete(object, name), "cannot replace \(describe(attribute: name, on: on))")
            }
            let space = try makeDataspace(shape)
            defer { H5Sclose(space) }
            let attribute = try check(H5Acreate2(object, name, fileType, space, P_DEFAULT, P_DEFAULT),
                                      "cannot create \(describe(attribute: name, on: on))")
            defer { H5Aclose(attribute) }
            if shape.reduce(1, *) > 0 { try fill(attribute) }
        }
    }

    /// Calls `body` with an open attribute, its stored type, shape and element count.
    private func withAttribute<T>(_ name: String, on: String?,
                                  _ body: (hid_t, hid_t, (shape: [Int], count: Int)) throws -> T) throws -> T {
        try withObject(on) { object in
            guard H5Aexists(object, name) > 0 else { throw HDF5Error("no \(describe(attribute: name, on: on))", hdf5Stack: false) }
            let attribute = try check(H5Aopen(object, name, P_DEFAULT), "cannot open \(describe(attribute: name, on: on))")
            defer { H5Aclose(attribute) }
            let type = try check(H5Aget_type(attribute), "cannot read the type of \(describe(attribute: name, on: on))")
            defer { H5Tclose(type) }
            let space = try check(H5Aget_space(attribute), "cannot read the shape of \(describe(attribute: name, on: on))")
            defer { H5Sclose(space) }
            return try body(attribute, type, try extent(of: space))
        }
    }

    private func readNumbers<T>(_ name: String, on: String?, zero: T, memoryType: hid_t, expected: String,
                                accepts: (hid_t) -> Bool) throws -> [T] {
        try withAttribute(name, on: on) { attribute, type, extent in
            guard accepts(type) else {
                throw HDF5Error("\(describe(attribute: name, on: on)) holds \(typeDescription(type)) values, expected \(expected)", hdf5Stack: false)
            }
            var values = [T](repeating: zero, count: extent.count)
            if extent.count > 0 {
                try check(values.withUnsafeMutableBytes { H5Aread(attribute, memoryType, $0.baseAddress) },
                          "cannot read \(describe(attribute: name, on: on)) as \(expected)")
            }
            return values
        }
    }

    private func single<T>(_ values: [T], _ name: String, _ on: String?) throws -> T {
        guard values.count == 1 else {
            throw HDF5Error("\(describe(attribute: name, on: on)) holds \(values.count) values, expected exactly one", hdf5Stack: false)
        }
        return values[0]
    }
}
