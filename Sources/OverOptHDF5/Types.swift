import CHDF5
import Foundation

// Helpers shared by datasets and attributes: dataspaces, type names, string encoding.

/// The element types the layer writes: memory type and the (little-endian) type stored in the file.
struct NumericType {
    let memory: hid_t
    let file: hid_t
    static var float32: NumericType { NumericType(memory: overopt_H5T_NATIVE_FLOAT(), file: overopt_H5T_IEEE_F32LE()) }
    static var float64: NumericType { NumericType(memory: overopt_H5T_NATIVE_DOUBLE(), file: overopt_H5T_IEEE_F64LE()) }
    static var int64: NumericType { NumericType(memory: overopt_H5T_NATIVE_INT64(), file: overopt_H5T_STD_I64LE()) }
}

/// Checks `shape` against `count` values; nil means 1-D. Throws naming `what` on a mismatch.
func resolvedShape(_ shape: [Int]?, count: Int, what: @autoclosure () -> String) throws -> [Int] {
    guard let shape else { return [count] }
    if shape.count > 32 || shape.contains(where: { $0 < 0 }) {
        throw HDF5Error("invalid shape \(shape) for \(what())", hdf5Stack: false)
    }
    let product = shape.reduce(1, *)
    if product != count {
        throw HDF5Error("shape \(shape) holds \(product) values but \(count) were given for \(what())", hdf5Stack: false)
    }
    return shape
}

/// A dataspace of the given shape ([] = scalar). The caller closes it.
func makeDataspace(_ shape: [Int]) throws -> hid_t {
    let space = shape.isEmpty
        ? H5Screate(H5S_SCALAR)
        : H5Screate_simple(Int32(shape.count), shape.map { hsize_t($0) }, nil)
    return try check(space, "cannot create a dataspace of shape \(shape)")
}

/// The shape and element count of a dataspace (scalar: [] and 1; null: [] and 0).
func extent(of space: hid_t) throws -> (shape: [Int], count: Int) {
    let rank = try check(H5Sget_simple_extent_ndims(space), "cannot read a dataspace rank")
    var dims = [hsize_t](repeating: 0, count: Int(rank))
    if rank > 0 { try check(H5Sget_simple_extent_dims(space, &dims, nil), "cannot read a dataspace shape") }
    let count = try check(H5Sget_simple_extent_npoints(space), "cannot count dataspace elements")
    return (dims.map { Int($0) }, Int(count))
}

/// A short name for a stored type: "float32", "float64", "int64", "uint8", "string", "enum", …
func typeDescription(_ type: hid_t) -> String {
    let bits = H5Tget_size(type) * 8
    switch H5Tget_class(type) {
    case H5T_FLOAT: return "float\(bits)"
    case H5T_INTEGER: return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + "\(bits)"
    case H5T_STRING: return "string"
    case H5T_COMPOUND: return "compound"
    case H5T_ENUM: return "enum"
    case H5T_ARRAY: return "array"
    case H5T_VLEN: return "vlen"
    case H5T_OPAQUE: return "opaque"
    case H5T_BITFIELD: return "bitfield"
    case H5T_REFERENCE: return "reference"
    default: return "unknown"
    }
}

/// Whether a stored type converts to a number (integer or floating point).
func isNumeric(_ type: hid_t) -> Bool {
    let typeClass = H5Tget_class(type)
    return typeClass == H5T_INTEGER || typeClass == H5T_FLOAT
}

/// The variable-length UTF-8 string type the layer writes. The caller closes it.
func variableStringType() throws -> hid_t {
    let type = try check(H5Tcopy(overopt_H5T_C_S1()), "cannot copy the string type")
    if H5Tset_size(type, overopt_H5T_VARIABLE()) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0 {
        H5Tclose(type)
        throw HDF5Error("cannot make a variable-length UTF-8 string type")
    }
    return type
}

/// The boolean type h5py and NumPy use: an int8 enum with FALSE = 0 and TRUE = 1. The caller closes it.
func booleanType() throws -> hid_t {
    let type = try check(H5Tenum_create(overopt_H5T_NATIVE_INT8()), "cannot create the boolean type")
    var no: Int8 = 0, yes: Int8 = 1
    if H5Tenum_insert(type, "FALSE", &no) < 0 || H5Tenum_insert(type, "TRUE", &yes) < 0 {
        H5Tclose(type)
        throw HDF5Error("cannot create the boolean type")
    }
    return type
}

/// Calls `body` with an array of C-string pointers for `strings` (text after an embedded NUL is lost).
func withCStrings<T>(_ strings: [String], _ body: (UnsafeRawPointer?) throws -> T) rethrows -> T {
    let pointers = strings.map { strdup($0) }
    defer { pointers.forEach { free($0) } }
    return try pointers.withUnsafeBufferPointer { try body(UnsafeRawPointer($0.baseAddress)) }
}

/// Reads `count` strings of stored type `fileType`, variable- or fixed-length, with `read(memoryType, buffer)`.
func readStringValues(fileType: hid_t, count: Int, what: String,
                      read: (hid_t, UnsafeMutableRawPointer) -> herr_t) throws -> [String] {
    guard count > 0 else { return [] }
    let memoryType = try check(H5Tcopy(fileType), "cannot copy the string type of \(what)")
    defer { H5Tclose(memoryType) }
    if H5Tis_variable_str(fileType) > 0 {
        var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
        try check(pointers.withUnsafeMutableBytes { read(memoryType, $0.baseAddress!) }, "cannot read \(what)")
        defer { pointers.forEach { if let p = $0 { H5free_memory(p) } } }
        return pointers.map { $0.map { String(cString: $0) } ?? "" }
    }
    // Fixed length: `size` bytes per string, padded with NULs (or spaces for SPACEPAD).
    let size = H5Tget_size(fileType)
    var bytes = [UInt8](repeating: 0, count: count * size)
    try check(bytes.withUnsafeMutableBytes { read(memoryType, $0.baseAddress!) }, "cannot read \(what)")
    let spacePadded = H5Tget_strpad(fileType) == H5T_STR_SPACEPAD
    return (0..<count).map { index in
        var text = bytes[index * size ..< (index + 1) * size].prefix { $0 != 0 }
        if spacePadded { while text.last == 0x20 { text.removeLast() } }
        return String(decoding: text, as: UTF8.self)
    }
}
