import CHDF5

extension H5Group {
    /// Copies the object `name` of `source` (a group with everything below it, or a dataset;
    /// attributes included) to `destination` under this group, creating the destination's
    /// parent groups. `source` may be in another file; objects that references inside the
    /// copied tree point to are copied along with it.
    public func copy(_ name: String, from source: H5Group, to destination: String) throws {
        try serialized {
            guard source.contains(name) else { throw HDF5Error("no object \(source.describe(name)) to copy", hdf5Stack: false) }
            let parts = destination.split(separator: "/").map(String.init)
            guard let last = parts.last else { throw HDF5Error("cannot copy to an empty name in \(describe())", hdf5Stack: false) }
            let parent = parts.count > 1 ? try createGroup(parts.dropLast().joined(separator: "/")) : self
            if parent.contains(last) { throw HDF5Error("cannot copy onto the existing object \(parent.describe(last))", hdf5Stack: false) }
            let plist = try check(H5Pcreate(overopt_H5P_OBJECT_COPY()), "cannot create an object-copy property list")
            defer { H5Pclose(plist) }
            try check(H5Pset_copy_object(plist, UInt32(H5O_COPY_EXPAND_REFERENCE_FLAG)), "cannot set object-copy flags")
            try check(H5Ocopy(try source.location(), name, try parent.location(), last, plist, overopt_H5P_DEFAULT()),
                      "cannot copy \(source.describe(name)) to \(parent.describe(last))")
        }
    }
}
