// A cache entry changed on disk after it was written is detected by its checksum, reported
// in one line, removed and rebuilt: the run ends with the numbers of a clean run.
import Foundation
import Testing
import TestSupport
import OverOptHDF5

@Suite("corrupt cache entries", .serialized) struct CorruptCacheCLITests {
    /// A run of the base policy, the data and one proxy (a few seconds).
    let small = tinyRunArguments + ["--set", "stages=[]", "--set", "proxies=[\"bt\"]"]

    /// The byte range of the largest dataset's values in `path` (contiguous storage).
    func largestDataRegion(_ path: String) throws -> Range<Int> {
        let script = """
            import h5py, sys
            best = (0, 0)
            def visit(name, obj):
                global best
                if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None and obj.id.get_storage_size() > best[1]:
                    best = (obj.id.get_offset(), obj.id.get_storage_size())
            with h5py.File(sys.argv[1], 'r') as f:
                f.visititems(visit)
            print(best[0], best[1])
            """
        let parts = try runPython(script, [path]).split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        guard parts.count == 2, parts[1] > 8192 else { throw TestFailure("no large contiguous dataset in \(path): \(parts)") }
        return parts[0]..<(parts[0] + parts[1])
    }

    @Test(arguments: [UInt8(0), 0xFF])
    func aBasePolicyOverwrittenOnDiskIsDetectedAndRebuiltToTheSameNumbers(byte: UInt8) throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let cache = folder.file("cache")
        let clean = try runProcess(binary, ["run", "--out", folder.file("clean"), "--cache", cache] + small)
        #expect(clean.status == 0, "stderr: \(clean.stderr)")
        guard let entry = cacheEntries(cache, "base").first else { throw TestFailure("no base entry in \(cache)") }
        let path = cache + "/" + entry

        // 4 KB of `byte` in the middle of the policy's parameters.
        let region = try largestDataRegion(path)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: UInt64(region.lowerBound + region.count / 2 - 2048))
        handle.write(Data(repeating: byte, count: 4096))
        try handle.close()

        let rerun = try runProcess(binary, ["run", "--out", folder.file("rerun"), "--cache", cache] + small)
        #expect(rerun.status == 0, "stderr: \(rerun.stderr)")
        let reports = rerun.stderr.split(separator: "\n").filter { $0.contains("checksum") }
        #expect(reports.count == 1 && reports[0].contains(path) && reports[0].contains("removed it, rebuilding"), "\(rerun.stderr)")
        #expect(rerun.stderr.contains("base policy: held-out NLL"), "the base policy was not pretrained again:\n\(rerun.stderr)")
        #expect(!rerun.stderr.contains("learning_rate"))
        let differing = try differingDatasets(try resultFile(in: folder.file("clean")), try resultFile(in: folder.file("rerun")))
        #expect(differing == [], "datasets that differ from the clean run: \(differing)")

        // The rebuilt entry is whole again: a third run loads it.
        let third = try runProcess(binary, ["run", "--out", folder.file("third"), "--cache", cache] + small)
        #expect(third.status == 0 && third.stderr.contains("base: loaded from cache") && !third.stderr.contains("checksum"), "\(third.stderr)")
    }
}
