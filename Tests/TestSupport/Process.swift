// Files, processes and tools the tests share: temporary folders, running the built `overopt`
// binary and Debian's Python with h5py.
import Foundation

/// The package's root folder (this file is Tests/TestSupport/Process.swift).
public let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Thrown when a tool a test needs is missing; the test fails with the reason (it is not skipped).
public struct Unavailable: Error, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// A fresh folder under the system temporary folder, removed when the value is deinitialized.
public final class TemporaryFolder {
    public let path: String

    public init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("overopt-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// The path of `name` inside the folder.
    public func file(_ name: String) -> String { path + "/" + name }

    /// The names of the entries in the folder, hidden ones included, sorted.
    public func contents() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: path).sorted() }
}

/// The result of running a program.
public struct ProcessResult {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs `executable` with `arguments` and waits for it; throws only if it cannot be started.
public func runProcess(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
    // Output goes to files rather than pipes, so a large output can never block the child.
    let folder = try TemporaryFolder()
    let outPath = folder.file("stdout"), errPath = folder.file("stderr")
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = FileHandle(forWritingAtPath: outPath)
    process.standardError = FileHandle(forWritingAtPath: errPath)
    try process.run()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus,
                         stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
}

/// The built `overopt` executable: next to the test bundle (any build folder), else `.build/debug/overopt`.
public func overoptBinary() throws -> String {
    let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let candidates = [testBinary.deletingLastPathComponent().appendingPathComponent("overopt").path,
                      packageRoot.appendingPathComponent(".build/debug/overopt").path]
    guard let found = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) else {
        throw Unavailable("the overopt binary was not found at \(candidates); build it first with `swift build`")
    }
    return found
}

/// Debian's Python with h5py; the pyenv python3 that may come first on PATH lacks it.
public let systemPython = "/usr/bin/python3"

/// Runs a Python script with h5py under `/usr/bin/python3` and returns its standard output;
/// throws `Unavailable` with the reason (and the fix) if that is impossible.
public func runPython(_ script: String, _ arguments: [String] = []) throws -> String {
    guard FileManager.default.isExecutableFile(atPath: systemPython) else {
        throw Unavailable("\(systemPython) is missing: install python3-h5py (apt-get install -y python3-h5py); the interop tests need it")
    }
    let result = try runProcess(systemPython, ["-c", script] + arguments)
    if result.status != 0 {
        if result.stderr.contains("No module named 'h5py'") {
            throw Unavailable("h5py is not importable by \(systemPython): install python3-h5py (apt-get install -y python3-h5py)")
        }
        throw Unavailable("python failed (status \(result.status)):\n\(result.stderr)")
    }
    return result.stdout
}
