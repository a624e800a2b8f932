import CHDF5
import CReadGuard
import Foundation

/// An HDF5 failure: what we were doing (file, object, expectation), then HDF5's own error stack.
public struct HDF5Error: Error, CustomStringConvertible {
    /// The full text: our context on the first line, one line per HDF5 error-stack entry after it.
    public let message: String
    public var description: String { message }

    /// Makes an error from `context`, appending (and clearing) HDF5's current error stack.
    init(_ context: String, hdf5Stack: Bool = true) {
        let stack = hdf5Stack ? serialized(drainErrorStack) : []
        message = ([context] + stack.map { "  HDF5: " + $0 }).joined(separator: "\n")
    }
}

// MARK: - Thread safety

// The Debian HDF5 build is not thread-safe. The layer is meant to be used from one thread at a
// time; as a safety net (tests of several targets share one process and run in parallel) every
// call into HDF5 goes through this one recursive lock.
private let hdf5Lock = NSRecursiveLock()

// Before the first HDF5 call: no atexit handler and no automatic error printing to stderr
// (errors are reported as thrown values instead); see the shim.
private let errorPrintingSilenced: Void = overopt_H5_initialize()

/// Runs `body` holding the global HDF5 lock, with HDF5's error printing turned off, under
/// the read guard (see `installReadGuard`).
func serialized<T>(_ body: () throws -> T) rethrows -> T {
    hdf5Lock.lock()
    defer { hdf5Lock.unlock() }
    _ = errorPrintingSilenced
    overopt_read_guard_enter()
    defer { overopt_read_guard_leave() }
    return try body()
}

// MARK: - Corrupt input files

/// Makes a crash (segmentation fault, bus error) of the HDF5 library, or one of its calls
/// running longer than `watchdogSeconds`, while a file opened for reading is open, end the
/// process with one line naming that file and exit status 2 instead of a crash report or
/// a hang. HDF5 1.10 trusts a file's metadata, and some corrupt files make it follow wild
/// pointers or loop; nothing can be recovered then, but the user learns which file is bad.
/// For command-line tools: call once at start. Other faults keep their usual handling.
public func installReadGuard(watchdogSeconds: UInt32) {
    overopt_read_guard_install(watchdogSeconds)
}

/// The files being opened or open for reading, latest last (the guard names the latest),
/// each with a token; the next token.
nonisolated(unsafe) private var filesOpenForReading: [(token: Int, path: String)] = []
nonisolated(unsafe) private var nextReadingToken = 0

/// Records that `path` is being opened for reading; returns the token for `doneReading`.
/// Called under the lock.
func startReading(_ path: String) -> Int {
    nextReadingToken += 1
    filesOpenForReading.append((nextReadingToken, path))
    updateReadGuardMessage()
    return nextReadingToken
}

/// Records that the file of `token` is closed (or failed to open). Called under the lock.
func doneReading(_ token: Int) {
    filesOpenForReading.removeAll { $0.token == token }
    updateReadGuardMessage()
}

private func updateReadGuardMessage() {
    if let latest = filesOpenForReading.last {
        overopt_read_guard_set_message("Error: cannot read '\(latest.path)': the HDF5 library crashed or stopped making progress on its contents (the file is corrupt)\n")
    } else {
        overopt_read_guard_set_message(nil)
    }
}

/// Returns `result` unless it is negative (HDF5's failure convention), in which case it throws.
@discardableResult
func check<T: BinaryInteger>(_ result: T, _ context: @autoclosure () -> String) throws -> T {
    if result < 0 { throw HDF5Error(context()) }
    return result
}

// MARK: - Error stack

private final class LineCollector { var lines: [String] = [] }

/// Returns HDF5's current error stack, outermost call first, one line per entry, and clears it.
private func drainErrorStack() -> [String] {
    let collector = LineCollector()
    withExtendedLifetime(collector) {
        let data = Unmanaged.passUnretained(collector).toOpaque()
        H5Ewalk2(overopt_H5E_DEFAULT(), H5E_WALK_DOWNWARD, { _, entry, data in
            guard let entry, let data else { return 0 }
            let e = entry.pointee
            let function = e.func_name.map { String(cString: $0) } ?? "?"
            let text = e.desc.map { String(cString: $0) } ?? ""
            let minor = errorMessage(e.min_num)
            let line = minor.isEmpty || minor == text ? "\(function): \(text)" : "\(function): \(text) (\(minor))"
            Unmanaged<LineCollector>.fromOpaque(data).takeUnretainedValue().lines.append(line)
            return 0
        }, data)
    }
    H5Eclear2(overopt_H5E_DEFAULT())
    return collector.lines
}

/// The text HDF5 registers for an error major/minor number, e.g. "file does not exist".
private func errorMessage(_ id: hid_t) -> String {
    let length = H5Eget_msg(id, nil, nil, 0)
    guard length > 0 else { return "" }
    var buffer = [CChar](repeating: 0, count: length + 1)
    H5Eget_msg(id, nil, &buffer, buffer.count)
    return string(fromNulTerminated: buffer)
}
