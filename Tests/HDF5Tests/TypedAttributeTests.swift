// Booleans, string arrays and dimension scales: written by the layer, read back by the layer
// and by h5py (as numpy.bool_, a list of str, and named dimensions).
import Foundation
import Testing
import TestSupport
import OverOptHDF5

@Suite("Typed attributes and dimension scales") struct TypedAttributeTests {
    /// A file with a boolean, a string array, an integer and a float attribute, and a curve on
    /// dimension scale `n`.
    private func writeFile(_ path: String) throws {
        let file = try H5File.create(path)
        defer { file.close() }
        let root = file.root
        try root.setAttribute("complete", true)
        try root.setAttribute("tempered", false)
        try root.setAttribute("proxies", ["bt", "grm-sft", "ünï"])
        try root.setAttribute("steps", AttributeValue.int(60))
        try root.setAttribute("temperature", AttributeValue.float(0.7))
        let g = try root.createGroup("bon/bt")
        try g.write("n", [1, 2, 4] as [Int64])
        try g.write("gold", [0.0, 0.5, 0.75])
        try g.write("grid", [0.0, 1, 2, 3, 4, 5], shape: [2, 3])
        try g.makeDimensionScale("n")
        try g.attachDimensionScale("n", to: ["gold"])
        try g.attachDimensionScale("n", to: ["grid"], axis: 1)
        try g.setAttribute("units", "reward", on: "gold")
    }

    @Test func theLayerReadsThemBack() throws {
        let folder = try TemporaryFolder()
        try writeFile(folder.file("t.h5"))
        let file = try H5File.open(folder.file("t.h5"))
        defer { file.close() }
        let root = file.root
        #expect(try root.boolAttribute("complete") == true)
        #expect(try root.boolAttribute("tempered") == false)
        #expect(try root.stringArrayAttribute("proxies") == ["bt", "grm-sft", "ünï"])
        #expect(try root.intAttribute("steps") == 60 && root.doubleAttribute("temperature") == 0.7)
        #expect(try root.attributeInfo("complete").typeDescription == "enum")
        // Integers still read as booleans (schema-1 files store complete = 1).
        #expect(try root.boolAttribute("steps") == true)
        #expect(throws: HDF5Error.self) { try root.boolAttribute("temperature") }
        let g = try root.group("bon/bt")
        #expect(try g.dimensionNames(of: "gold") == ["n"])
        #expect(try g.dimensionNames(of: "grid") == [nil, "n"])
        #expect(try g.stringAttribute("units", on: "gold") == "reward")
    }

    @Test func h5pyReadsThemAsNumPyTypesAndNamedDimensions() throws {
        let folder = try TemporaryFolder()
        try writeFile(folder.file("t.h5"))
        let out = try runPython(#"""
            import h5py, sys, numpy as np
            with h5py.File(sys.argv[1], "r") as f:
                a = f.attrs
                print(type(a["complete"]).__name__, bool(a["complete"]), bool(a["tempered"]))
                print(list(a["proxies"]), a["steps"].dtype, a["temperature"])
                gold = f["bon/bt/gold"]
                print([s.name for s in gold.dims[0].values()], h5py.h5ds.is_scale(f["bon/bt/n"].id))
            """#, [folder.file("t.h5")])
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(out)")
        #expect(lines.first == "bool_ True False")
        #expect(lines.dropFirst().first == "['bt', 'grm-sft', 'ünï'] int64 0.7")
        #expect(lines.last == "['/bon/bt/n'] True")
    }
}
