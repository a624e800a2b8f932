import Foundation
import Testing
import TestSupport
@testable import OverOptHDF5

/// Shapes of rank 1–3 (and the matching element count) used by the numeric round trips.
private let shapes: [[Int]] = [[7], [3, 5], [2, 3, 4]]

/// Writes with `write`, closes, reopens read-only and returns what `read` sees.
private func roundTrip<T>(_ write: (H5Group) throws -> Void, _ read: (H5Group) throws -> T) throws -> T {
    let folder = try TemporaryFolder()
    let path = folder.file("t.h5")
    do {
        let file = try H5File.create(path)
        try write(file.root)
        file.close()
    }
    let file = try H5File.open(path)
    return try read(file.root)
}

@Suite("Round trips") struct RoundTripTests {
    @Test(arguments: shapes, [false, true])
    func floats(shape: [Int], compress: Bool) throws {
        let count = shape.reduce(1, *)
        var values = (0..<count).map { Float($0) * 0.1 - 1 }
        values[0] = -0.0
        values[1] = .greatestFiniteMagnitude
        values[2] = .leastNonzeroMagnitude
        values[3] = -.infinity
        values[4] = .nan
        let read = try roundTrip({ try $0.write("x", values, shape: shape, compress: compress) }, { try $0.readFloats("x") })
        #expect(read.shape == shape)
        #expect(read.values.map(\.bitPattern) == values.map(\.bitPattern))
    }

    @Test(arguments: shapes, [false, true])
    func doubles(shape: [Int], compress: Bool) throws {
        let count = shape.reduce(1, *)
        var values = (0..<count).map { Double($0) / 3 - 2 }
        values[0] = -0.0
        values[1] = .greatestFiniteMagnitude
        values[2] = .leastNonzeroMagnitude
        values[3] = .infinity
        values[4] = .nan
        let read = try roundTrip({ try $0.write("x", values, shape: shape, compress: compress) }, { try $0.readDoubles("x") })
        #expect(read.shape == shape)
        #expect(read.values.map(\.bitPattern) == values.map(\.bitPattern))
    }

    @Test(arguments: shapes, [false, true])
    func int64s(shape: [Int], compress: Bool) throws {
        let count = shape.reduce(1, *)
        var values = (0..<count).map { Int64($0) * 1_000_003 - 5 }
        values[0] = .min
        values[1] = .max
        let read = try roundTrip({ try $0.write("x", values, shape: shape, compress: compress) }, { try $0.readInt64s("x") })
        #expect(read.shape == shape)
        #expect(read.values == values)
    }

    @Test func largeCompressedDatasetIsChunkedAndReadBack() throws {
        let values = (0..<300_000).map { Double($0 % 1000) }
        let read = try roundTrip({ try $0.write("big", values, shape: [600, 500], compress: true) }, { try $0.readDoubles("big") })
        #expect(read.shape == [600, 500])
        #expect(read.values == values)
        #expect(chunkShape([600, 500], elementSize: 8).reduce(8, *) <= 1 << 18)
        #expect(chunkShape([3, 5], elementSize: 4) == [3, 5])
    }

    @Test func scalarAndEmptyDatasets() throws {
        let (scalar, empty, empty2D, emptyStrings) = try roundTrip({ group in
            try group.write("scalar", [2.5], shape: [])
            try group.write("empty", [Float](), compress: true)
            try group.write("empty2D", [Int64](), shape: [0, 3])
            try group.write("none", strings: [])
        }, { group in
            (try group.readDoubles("scalar"), try group.readFloats("empty"), try group.readInt64s("empty2D"), try group.readStrings("none"))
        })
        #expect(scalar.values == [2.5] && scalar.shape == [])
        #expect(empty.values.isEmpty && empty.shape == [0])
        #expect(empty2D.values.isEmpty && empty2D.shape == [0, 3])
        #expect(emptyStrings.isEmpty)
    }

    @Test func stringsIncludingNonASCIIAndEmpty() throws {
        let strings = ["plain", "", "héllo wörld", "日本語", "emoji 🎲", "tab\tand\nnewline", String(repeating: "long ", count: 2000)]
        let read = try roundTrip({ try $0.write("texts", strings: strings) }, { (try $0.readStrings("texts"), try $0.datasetInfo("texts")) })
        #expect(read.0 == strings)
        #expect(read.1.shape == [strings.count] && read.1.typeDescription == "string")
    }

    @Test func datasetInfoNamesTheStoredType() throws {
        let infos = try roundTrip({ group in
            try group.write("f", [Float(1)], shape: [1, 1])
            try group.write("d", [1.0, 2.0])
            try group.write("i", [Int64(1)])
        }, { group in
            try ["f", "d", "i"].map { try group.datasetInfo($0) }
        })
        #expect(infos.map(\.typeDescription) == ["float32", "float64", "int64"])
        #expect(infos.map(\.shape) == [[1, 1], [2], [1]])
    }

    @Test func numericConversionsAndRefusals() throws {
        try roundTrip({ group in
            try group.write("ints", [Int64(3), -4])
            try group.write("doubles", [0.5, 1.5])
            try group.write("texts", strings: ["a"])
        }, { (group: H5Group) throws in
            #expect(try group.readDoubles("ints").values == [3, -4])
            #expect(try group.readFloats("doubles").values == [0.5, 1.5])
            #expect(throws: HDF5Error.self) { try group.readInt64s("doubles") }
            #expect(throws: HDF5Error.self) { try group.readDoubles("texts") }
            #expect(throws: HDF5Error.self) { try group.readStrings("ints") }
        })
    }

    @Test func shapeMustMatchTheValueCount() throws {
        let folder = try TemporaryFolder()
        let file = try H5File.create(folder.file("t.h5"))
        let error = #expect(throws: HDF5Error.self) { try file.root.write("x", [1.0, 2.0, 3.0], shape: [2, 2]) }
        #expect(error?.message.contains("shape [2, 2] holds 4 values but 3 were given") == true)
        #expect(error?.message.contains("'/x'") == true)
        #expect(throws: HDF5Error.self) { try file.root.write("y", [Float(1)], shape: [-1]) }
        #expect(!file.root.contains("x") && !file.root.contains("y"))
    }

    @Test func replacingADatasetChangesItsTypeAndShape() throws {
        let read = try roundTrip({ group in
            try group.write("x", [1.0, 2.0, 3.0, 4.0], shape: [2, 2])
            try group.write("x", [Int64(7), 8, 9])
            try group.write("s", strings: ["old"])
            try group.write("s", strings: ["new", "newer"])
        }, { group in (try group.readInt64s("x"), try group.readStrings("s"), try group.children()) })
        #expect(read.0.values == [7, 8, 9] && read.0.shape == [3])
        #expect(read.1 == ["new", "newer"])
        #expect(read.2 == ["s", "x"])
    }

    @Test func nestedGroups() throws {
        let folder = try TemporaryFolder()
        let file = try H5File.create(folder.file("t.h5"))
        let root = file.root
        let c = try root.createGroup("a/b/c")
        #expect(c.path == "/a/b/c")
        #expect(try root.createGroup("a/b").path == "/a/b")
        #expect(try root.group("a").createGroup("b/c").path == "/a/b/c")  // existing: returned, not recreated
        try c.write("data", [1.0])
        try root.write("a/z/deep", [Int64(5)])  // intermediate groups of a dataset name are created
        try root.createGroup("a/y")
        #expect(try root.group("a").children() == ["b", "y", "z"])
        #expect(root.contains("a/b/c/data") && !root.contains("a/b/nope") && !root.contains("nope/deeper"))
        #expect(root.isGroup("a/b") && !root.isGroup("a/b/c/data") && !root.isGroup("missing"))
        #expect(try root.group("a/b").group("c").readDoubles("data").values == [1.0])
        #expect(try root.group("/a/z").readInt64s("deep").values == [5])

        let missing = #expect(throws: HDF5Error.self) { try root.group("a/nope") }
        #expect(missing?.message.contains("'/a/nope'") == true)
        #expect(missing?.message.contains(folder.file("t.h5")) == true)
        let notGroup = #expect(throws: HDF5Error.self) { try root.group("a/b/c/data") }
        #expect(notGroup?.message.contains("is a dataset, not a group") == true)
        #expect(throws: HDF5Error.self) { try root.createGroup("a/b/c/data/sub") }
        let replaceGroup = #expect(throws: HDF5Error.self) { try root.write("a/b", [1.0]) }
        #expect(replaceGroup?.message.contains("a group of that name exists") == true)
        #expect(root.isGroup("a/b"))
    }

    @Test func attributesOfEveryKindOnGroupsAndDatasets() throws {
        for on in [nil, "data"] as [String?] {
            let (names, values) = try roundTrip({ group in
                try group.write("data", [Float(1)])
                try group.setAttribute("double", 0.1, on: on)
                try group.setAttribute("int", Int64.min, on: on)
                try group.setAttribute("string", "ünïcödé ✓", on: on)
                try group.setAttribute("emptyString", "", on: on)
                try group.setAttribute("doubles", [1.5, -2.25, .infinity], on: on)
                try group.setAttribute("ints", [Int64.max, 0, -1], on: on)
                try group.setAttribute("noDoubles", [Double](), on: on)
            }, { group in
                (try group.attributeNames(on: on),
                 (try group.doubleAttribute("double", on: on), try group.intAttribute("int", on: on),
                  try group.stringAttribute("string", on: on), try group.stringAttribute("emptyString", on: on),
                  try group.doubleArrayAttribute("doubles", on: on), try group.intArrayAttribute("ints", on: on),
                  try group.doubleArrayAttribute("noDoubles", on: on), try group.doubleAttribute("int", on: on),
                  try group.attributeInfo("doubles", on: on), group.hasAttribute("int", on: on), group.hasAttribute("nope", on: on)))
            })
            #expect(names == ["double", "doubles", "emptyString", "int", "ints", "noDoubles", "string"])
            #expect(values.0 == 0.1)
            #expect(values.1 == .min)
            #expect(values.2 == "ünïcödé ✓")
            #expect(values.3 == "")
            #expect(values.4 == [1.5, -2.25, .infinity])
            #expect(values.5 == [.max, 0, -1])
            #expect(values.6 == [])
            #expect(values.7 == Double(Int64.min))  // ints read as doubles
            #expect(values.8.shape == [3] && values.8.typeDescription == "float64")
            #expect(values.9 && !values.10)
        }
    }

    @Test func replacingAnAttributeAndReadingTheWrongKind() throws {
        let folder = try TemporaryFolder()
        let file = try H5File.create(folder.file("t.h5"))
        let root = file.root
        try root.write("data", [1.0])
        try root.setAttribute("a", 1.5, on: "data")
        try root.setAttribute("a", "now a string", on: "data")
        #expect(try root.stringAttribute("a", on: "data") == "now a string")
        #expect(try root.attributeNames(on: "data") == ["a"])
        try root.setAttribute("n", 2.5)
        try root.setAttribute("list", [1.0, 2.0])
        let wrong = #expect(throws: HDF5Error.self) { try root.intAttribute("n") }
        #expect(wrong?.message.contains("holds float64 values, expected integers") == true)
        #expect(throws: HDF5Error.self) { try root.stringAttribute("n") }
        #expect(throws: HDF5Error.self) { try root.doubleAttribute("a", on: "data") }
        let many = #expect(throws: HDF5Error.self) { try root.doubleAttribute("list") }
        #expect(many?.message.contains("holds 2 values, expected exactly one") == true)
        let missing = #expect(throws: HDF5Error.self) { try root.doubleAttribute("nope", on: "data") }
        #expect(missing?.message.contains("attribute 'nope' on '/data'") == true)
        #expect(throws: HDF5Error.self) { try root.setAttribute("x", 1.0, on: "missing") }
        #expect(!root.hasAttribute("x", on: "missing"))
    }

    @Test func filesReopenReadOnlyAndWritable() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("t.h5")
        let created = try H5File.create(path)
        try created.root.write("x", [1.0])
        try created.flush()
        created.close()
        created.close()  // idempotent
        let closedError = #expect(throws: HDF5Error.self) { try created.root.readDoubles("x") }
        #expect(closedError?.message.contains("is closed") == true)

        let readOnly = try H5File.open(path)
        #expect(readOnly.path == path)
        #expect(throws: HDF5Error.self) { try readOnly.root.write("y", [2.0]) }
        readOnly.close()

        let writable = try H5File.open(path, writable: true)
        try writable.root.write("y", [2.0])
        writable.close()
        #expect(try H5File.open(path).root.children() == ["x", "y"])
    }

    @Test func aGroupKeepsItsFileOpen() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("t.h5")
        try H5File.create(path).root.write("x", [Int64(42)])  // file object dropped right away
        let group = try H5File.open(path).root
        #expect(try group.readInt64s("x").values == [42])
    }
}
