import CHDF5
public enum HDF5Placeholder { public static func version() -> String { var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0; H5get_libversion(&a, &b, &c); return "\(a).\(b).\(c)" } }
