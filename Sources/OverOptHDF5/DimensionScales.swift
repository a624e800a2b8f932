import CHDF5

/// Dimension scales (HDF5's high-level H5DS API), the convention netCDF-4 and xarray read as
/// named dimensions: a 1-D dataset such as `n` is made the scale of dimension "n" and
/// attached to an axis of the datasets indexed by it, so `xarray.open_dataset` names that
/// axis `n` and uses the dataset's values as its coordinate.
extension H5Group {
    /// Makes the 1-D dataset `name` a dimension scale named `dimension` (default: its own name).
    public func makeDimensionScale(_ name: String, dimension: String? = nil) throws {
        try serialized {
            let scale = try openDataset(name)
            defer { H5Dclose(scale) }
            if H5DSis_scale(scale) > 0 { return }
            try check(H5DSset_scale(scale, dimension ?? leafName(name)), "cannot make \(describe(name)) a dimension scale")
        }
    }

    /// Attaches the dimension scale `scale` to axis `axis` of each dataset in `datasets` (all in
    /// this group); the scale must already be one (`makeDimensionScale`) and match the axis' length.
    public func attachDimensionScale(_ scale: String, to datasets: [String], axis: Int = 0) throws {
        try serialized {
            let s = try openDataset(scale)
            defer { H5Dclose(s) }
            for name in datasets {
                let d = try openDataset(name)
                defer { H5Dclose(d) }
                try check(H5DSattach_scale(d, s, UInt32(axis)),
                          "cannot attach dimension scale \(describe(scale)) to axis \(axis) of \(describe(name))")
            }
        }
    }

    /// The dimension names of dataset `name`, one per axis: the name of the first dimension
    /// scale attached to that axis, or nil.
    public func dimensionNames(of name: String) throws -> [String?] {
        try serialized {
            let d = try openDataset(name)
            defer { H5Dclose(d) }
            let space = try check(H5Dget_space(d), "cannot read the shape of \(describe(name))")
            defer { H5Sclose(space) }
            let rank = try extent(of: space).shape.count
            return try (0..<rank).map { axis -> String? in
                guard H5DSget_num_scales(d, UInt32(axis)) > 0 else { return nil }
                final class Found { var name: String? }
                let found = Found()
                var index: Int32 = 0
                try withExtendedLifetime(found) {
                    try check(H5DSiterate_scales(d, UInt32(axis), &index, { _, _, scale, data in
                        var buffer = [CChar](repeating: 0, count: 256)
                        let length = H5DSget_scale_name(scale, &buffer, buffer.count)
                        if length > 0, let data {
                            Unmanaged<Found>.fromOpaque(data).takeUnretainedValue().name = string(fromNulTerminated: buffer)
                        }
                        return 1  // the first scale is enough
                    }, Unmanaged.passUnretained(found).toOpaque()), "cannot read the dimension scales of \(describe(name))")
                }
                return found.name
            }
        }
    }

    private func leafName(_ name: String) -> String { String(name.split(separator: "/").last ?? Substring(name)) }
}
