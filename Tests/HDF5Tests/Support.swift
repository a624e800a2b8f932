import Foundation
import Testing

/// A fresh folder under the system temporary folder, removed when the value is deinitialized.
final class TemporaryFolder {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("overopt-hdf5-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// The path of `name` inside the folder.
    func file(_ name: String) -> String { path + "/" + name }

    /// The names of the entries in the folder, hidden ones included, sorted.
    func contents() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: path).sorted() }
}

/// The result of running a program.
struct ProcessResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs `executable` with `arguments` and waits for it; throws only if it cannot be started.
func runProcess(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
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

/// Debian's Python with h5py; the pyenv python3 that may come first on PATH lacks it.
let systemPython = "/usr/bin/python3"

/// Runs a Python script with h5py under `/usr/bin/python3`; records a clear failure if that is impossible.
func runPython(_ script: String, _ arguments: [String] = []) throws -> String {
    guard FileManager.default.isExecutableFile(atPath: systemPython) else {
        Issue.record("\(systemPython) is missing: install python3-h5py (apt-get install -y python3-h5py); the interop tests need it")
        throw Unavailable()
    }
    let result = try runProcess(systemPython, ["-c", script] + arguments)
    if result.status != 0 {
        if result.stderr.contains("No module named 'h5py'") {
            Issue.record("h5py is not importable by \(systemPython): install python3-h5py (apt-get install -y python3-h5py)")
        } else {
            Issue.record("python failed (status \(result.status)):\n\(result.stderr)")
        }
        throw Unavailable()
    }
    return result.stdout
}

/// Thrown after recording why a needed tool is unavailable (the test fails, it is not skipped).
struct Unavailable: Error {}
