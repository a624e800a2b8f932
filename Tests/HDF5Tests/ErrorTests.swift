import Foundation
import Testing
import TestSupport
import OverOptHDF5

@Suite("Errors and atomic writes") struct ErrorTests {
    @Test func openingAMissingFileNamesThePath() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("missing.h5")
        let error = #expect(throws: HDF5Error.self) { try H5File.open(path) }
        #expect(error?.message.contains("no such file: '\(path)'") == true)
    }

    @Test func openingANonHDF5FileNamesThePath() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("notes.h5")
        try "not HDF5 at all".write(toFile: path, atomically: true, encoding: .utf8)
        let error = #expect(throws: HDF5Error.self) { try H5File.open(path) }
        #expect(error?.message.contains("'\(path)' is not an HDF5 file") == true)
        let folderError = #expect(throws: HDF5Error.self) { try H5File.open(folder.path) }
        #expect(folderError?.message.contains("is a folder") == true)
    }

    @Test func hdf5ErrorsCarryTheLibraryStack() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("t.h5")
        _ = try H5File.create(path).root  // file object is dropped: closed
        let reader = try H5File.open(path)
        let error = #expect(throws: HDF5Error.self) { try reader.root.write("x", [1.0]) }
        // Our context first, then HDF5's own explanation of why a read-only file cannot be written.
        #expect(error?.message.hasPrefix("cannot create dataset '/x' in '\(path)'") == true)
        #expect(error?.message.contains("  HDF5: ") == true)
    }

    @Test func atomicWriteProducesOnlyTheFinalFile() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("result.h5")
        try writeAtomically(to: path) { file in
            try file.root.createGroup("rm").write("scores", [1.0, 2.0])
            try file.root.setAttribute("seed", Int64(7))
        }
        #expect(try folder.contents() == ["result.h5"])
        let file = try H5File.open(path)
        #expect(try file.root.group("rm").readDoubles("scores").values == [1.0, 2.0])
        #expect(try file.root.intAttribute("seed") == 7)
    }

    @Test func atomicWriteReplacesAnOlderFile() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("result.h5")
        try writeAtomically(to: path) { try $0.root.write("version", [Int64(1)]) }
        try writeAtomically(to: path) { try $0.root.write("version", [Int64(2)]) }
        #expect(try H5File.open(path).root.readInt64s("version").values == [2])
        #expect(try folder.contents() == ["result.h5"])
    }

    struct Interrupted: Error {}

    @Test func aBodyThatThrowsLeavesNoFileAndNoTemporaryFile() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("result.h5")
        var kept: H5Group?  // a group kept past the body must not keep the temporary file around
        #expect(throws: Interrupted.self) {
            try writeAtomically(to: path) { file in
                try file.root.write("half", [Float](repeating: 1, count: 10_000), compress: true)
                kept = file.root
                throw Interrupted()
            }
        }
        #expect(try folder.contents() == [])
        #expect(kept != nil)
    }

    @Test func aBodyThatThrowsLeavesAnOlderFileUntouched() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("result.h5")
        try writeAtomically(to: path) { try $0.root.write("version", [Int64(1)]) }
        #expect(throws: Interrupted.self) {
            try writeAtomically(to: path) { file in
                try file.root.write("version", [Int64(2)])
                throw Interrupted()
            }
        }
        #expect(try H5File.open(path).root.readInt64s("version").values == [1])
        #expect(try folder.contents() == ["result.h5"])
    }

    @Test func atomicWriteIntoAMissingFolderNamesIt() throws {
        let folder = try TemporaryFolder()
        let missing = folder.file("no/such/folder")
        var bodyRan = false
        let error = #expect(throws: HDF5Error.self) {
            try writeAtomically(to: missing + "/result.h5") { _ in bodyRan = true }
        }
        #expect(error?.message.contains("folder '\(missing)' does not exist") == true)
        #expect(!bodyRan)
    }

    @Test func atomicWriteIntoAReadOnlyFolderNamesIt() throws {
        // Root may write into any chmod-ed folder, so as root use /sys, which even root cannot create
        // files in (sysfs refuses, or it is mounted read-only). Otherwise use a folder with mode 0555.
        let folder = try TemporaryFolder()
        let readOnly: String
        if geteuid() == 0 {
            readOnly = "/sys"
        } else {
            readOnly = folder.file("locked")
            try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o555])
        }
        var bodyRan = false
        let error = #expect(throws: HDF5Error.self) {
            try writeAtomically(to: readOnly + "/result.h5") { _ in bodyRan = true }
        }
        #expect(error?.message.contains("folder '\(readOnly)' is not writable") == true)
        #expect(!bodyRan)
        #expect(!FileManager.default.fileExists(atPath: readOnly + "/result.h5"))
    }
}
