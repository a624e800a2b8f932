import Foundation
import Testing
import TestSupport
import OverOptHDF5

/// Python that prints every object of an HDF5 file as JSON, with exact values: floats as hex
/// (`float.hex()`), integers as decimal strings, strings decoded from UTF-8.
private let dumpScript = #"""
import h5py, json, sys
import numpy as np

def values(v):
    a = np.asarray(v)
    if a.dtype.kind == 'f': return [float(x).hex() for x in a.ravel()]
    if a.dtype.kind in 'iu': return [str(int(x)) for x in a.ravel()]
    return [x.decode('utf-8') if isinstance(x, bytes) else str(x) for x in a.ravel()]

def dtype(d):
    s = h5py.check_string_dtype(d)
    return 'string/' + s.encoding if s else str(d)

def attrs(obj):
    out = {}
    for k in obj.attrs:
        v = obj.attrs[k]
        out[k] = {'dtype': dtype(obj.attrs.get_id(k).dtype), 'shape': list(np.shape(v)), 'values': values(v)}
    return out

out = {}
def visit(name, obj):
    entry = {'attrs': attrs(obj)}
    if isinstance(obj, h5py.Dataset):
        entry.update(dtype=dtype(obj.dtype), shape=list(obj.shape), values=values(obj[()]),
                     compression=obj.compression, chunks=list(obj.chunks) if obj.chunks else None)
    else:
        entry['kind'] = 'group'
    out['/' + name if name else '/'] = entry

with h5py.File(sys.argv[1], 'r') as f:
    visit('', f)
    f.visititems(visit)
print(json.dumps(out))
"""#

/// Python that writes a file the way users of h5py do, including both kinds of strings.
private let writeScript = #"""
import h5py, sys
import numpy as np
with h5py.File(sys.argv[1], 'w') as f:
    f.attrs['title'] = 'h5py wrote this: ünïcode'
    f.attrs['fixed_title'] = np.bytes_(b'fixed ascii')
    f.attrs['seed'] = np.int64(-9007199254740993)
    f.attrs['small_int'] = np.int32(12)
    f.attrs['lr'] = 0.1
    f.attrs['betas'] = np.array([0.9, 0.999])
    f.attrs['labels'] = ['x', 'y']
    g = f.create_group('rm/bt/seed0')
    g['gold'] = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7
    g['gold'].attrs['units'] = 'nats'
    g['gold'].attrs['n'] = np.int64(24)
    g['ids'] = np.array([-1, 0, 2**62], dtype=np.int64)
    g['f32'] = np.array([0.1, 0.2], dtype=np.float32)
    g['i32'] = np.array([1, -2, 3], dtype=np.int32)
    g['fixed'] = np.array([b'abc', b'', b'defgh'], dtype='S5')
    g.create_dataset('vlen', data=['one', 'ünï', ''], dtype=h5py.string_dtype())
    g.create_dataset('vlen_ascii', data=[b'a', b'bc'], dtype=h5py.string_dtype('ascii'))
    g.create_dataset('packed', data=np.arange(10000, dtype=np.float64), compression='gzip', chunks=(1000,))
"""#

@Suite("Interop with h5dump and h5py") struct InteropTests {
    /// Writes a file with every kind of object the layer supports.
    private func writeSample(_ path: String) throws {
        try writeAtomically(to: path) { file in
            let root = file.root
            try root.setAttribute("title", "OverOpt sample ✓")
            try root.setAttribute("seed", Int64(-9_007_199_254_740_993))
            try root.setAttribute("lr", 0.1)
            try root.setAttribute("betas", [0.9, 0.999])
            try root.setAttribute("sizes", [Int64(1), 2, 3])
            let group = try root.createGroup("rm/bt")
            try group.write("rewards", [Float(0.1), -1.5, 3.25, 1e-30], shape: [2, 2])
            try group.write("gold", (0..<24).map { Double($0) / 7 }, shape: [2, 3, 4], compress: true)
            try group.write("steps", [Int64.min, 0, Int64.max])
            try group.write("samples", strings: ["the cat sat", "héllo", ""])
            try group.setAttribute("units", "nats", on: "gold")
            try group.setAttribute("count", Int64(24), on: "gold")
            try group.setAttribute("scale", [0.5, 2.0], on: "gold")
        }
    }

    @Test func h5dumpReadsALayerFile() throws {
        let h5dump = "/usr/bin/h5dump"
        guard FileManager.default.isExecutableFile(atPath: h5dump) else {
            Issue.record("\(h5dump) is missing: install hdf5-tools (apt-get install -y hdf5-tools)")
            return
        }
        let folder = try TemporaryFolder()
        let path = folder.file("sample.h5")
        try writeSample(path)
        let result = try runProcess(h5dump, [path])
        #expect(result.status == 0, "h5dump failed: \(result.stderr)")
        for expected in ["GROUP \"rm\"", "GROUP \"bt\"", "DATASET \"rewards\"", "H5T_IEEE_F32LE", "H5T_IEEE_F64LE",
                         "H5T_STD_I64LE", "ATTRIBUTE \"seed\"", "-9007199254740993", "9223372036854775807",
                         "-9223372036854775808", "\"the cat sat\"", "H5T_CSET_UTF8", "(0,0): 0.1, -1.5,", "(1,0): 3.25, 1e-30", "(0): 0.9, 0.999", "0.142857", "\"nats\"",
                         "DATASPACE  SIMPLE { ( 2, 3, 4 ) / ( 2, 3, 4 ) }"] {
            #expect(result.stdout.contains(expected), "h5dump output lacks \(expected)")
        }
    }

    @Test func h5pyReadsALayerFileExactly() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("sample.h5")
        try writeSample(path)
        let json = try runPython(dumpScript, [path])
        let dump = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: [String: Any]])

        #expect(Set(dump.keys) == ["/", "/rm", "/rm/bt", "/rm/bt/rewards", "/rm/bt/gold", "/rm/bt/steps", "/rm/bt/samples"])
        func attribute(_ object: String, _ name: String) -> [String: Any]? {
            (dump[object]?["attrs"] as? [String: Any])?[name] as? [String: Any]
        }
        func values(_ entry: [String: Any]?) -> [String] { entry?["values"] as? [String] ?? [] }
        // Python's float.hex() strings parse back exactly (Double(String) accepts hexadecimal floats).
        func numbers(_ entry: [String: Any]?) -> [Double] { values(entry).map { Double($0) ?? .nan } }

        // Root attributes.
        #expect(values(attribute("/", "title")) == ["OverOpt sample ✓"])
        #expect(attribute("/", "title")?["dtype"] as? String == "string/utf-8")
        #expect(values(attribute("/", "seed")) == ["-9007199254740993"])
        #expect(attribute("/", "seed")?["dtype"] as? String == "int64")
        #expect(numbers(attribute("/", "lr")) == [0.1])
        #expect(numbers(attribute("/", "betas")) == [0.9, 0.999])
        #expect(attribute("/", "betas")?["shape"] as? [Int] == [2])
        #expect(values(attribute("/", "sizes")) == ["1", "2", "3"])

        // Datasets: type, shape and every value.
        let rewards = dump["/rm/bt/rewards"]
        #expect(rewards?["dtype"] as? String == "float32")
        #expect(rewards?["shape"] as? [Int] == [2, 2])
        #expect(numbers(rewards) == [Float(0.1), -1.5, 3.25, 1e-30].map { Double($0) })
        let gold = dump["/rm/bt/gold"]
        #expect(gold?["dtype"] as? String == "float64")
        #expect(gold?["shape"] as? [Int] == [2, 3, 4])
        #expect(gold?["compression"] as? String == "gzip")
        #expect(numbers(gold) == (0..<24).map { Double($0) / 7 })
        #expect(dump["/rm/bt/steps"]?["dtype"] as? String == "int64")
        #expect(values(dump["/rm/bt/steps"]) == ["\(Int64.min)", "0", "\(Int64.max)"])
        #expect(dump["/rm/bt/samples"]?["dtype"] as? String == "string/utf-8")
        #expect(values(dump["/rm/bt/samples"]) == ["the cat sat", "héllo", ""])

        // Dataset attributes.
        #expect(values(attribute("/rm/bt/gold", "units")) == ["nats"])
        #expect(values(attribute("/rm/bt/gold", "count")) == ["24"])
        #expect(numbers(attribute("/rm/bt/gold", "scale")) == [0.5, 2.0])
        #expect(dump["/rm/bt"]?["kind"] as? String == "group")
    }

    @Test func layerReadsAnH5pyFile() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("from-h5py.h5")
        _ = try runPython(writeScript, [path])
        let root = try H5File.open(path).root

        #expect(try root.children() == ["rm"])
        #expect(try root.attributeNames() == ["betas", "fixed_title", "labels", "lr", "seed", "small_int", "title"])
        #expect(try root.stringAttribute("title") == "h5py wrote this: ünïcode")
        #expect(try root.stringAttribute("fixed_title") == "fixed ascii")
        #expect(try root.intAttribute("seed") == -9_007_199_254_740_993)
        #expect(try root.intAttribute("small_int") == 12)
        #expect(try root.doubleAttribute("small_int") == 12)
        #expect(try root.doubleAttribute("lr") == 0.1)
        #expect(try root.doubleArrayAttribute("betas") == [0.9, 0.999])
        #expect(try root.stringArrayAttribute("labels") == ["x", "y"])

        let group = try root.group("rm/bt/seed0")
        #expect(group.path == "/rm/bt/seed0")
        #expect(try group.children() == ["f32", "fixed", "gold", "i32", "ids", "packed", "vlen", "vlen_ascii"])
        let gold = try group.readDoubles("gold")
        #expect(gold.shape == [2, 3, 4])
        #expect(gold.values == (0..<24).map { Double($0) / 7 })
        #expect(try group.stringAttribute("units", on: "gold") == "nats")
        #expect(try group.intAttribute("n", on: "gold") == 24)
        #expect(try group.readInt64s("ids").values == [-1, 0, 1 << 62])
        #expect(try group.readFloats("f32").values == [0.1, 0.2])
        #expect(try group.readDoubles("f32").values == [Double(Float(0.1)), Double(Float(0.2))])
        #expect(try group.readInt64s("i32").values == [1, -2, 3])
        #expect(try group.datasetInfo("i32").typeDescription == "int32")
        #expect(try group.readStrings("fixed") == ["abc", "", "defgh"])
        #expect(try group.readStrings("vlen") == ["one", "ünï", ""])
        #expect(try group.readStrings("vlen_ascii") == ["a", "bc"])
        #expect(try group.readDoubles("packed").values == (0..<10000).map(Double.init))
    }
}
