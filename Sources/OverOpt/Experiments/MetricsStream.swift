// MetricsStream.swift — a run's metrics as JSON Lines, written as they are produced.
//
// Next to each result file `<name>.h5`, a run appends to `<name>.metrics.jsonl` one JSON
// object per line: every logged step or evaluation of every stage, flushed line by line
// (one write(2) per line, appended), so `tail -f`, pandas (`read_json(path, lines=True)`)
// or a plotting loop can follow a live run. Every object has
//   "stage"    base, rm, bon, ppo, ppo-eval, or run (start and end of a run)
//   "variant"  the proxy (absent for base and run)
//   "step"     the stage's step (rm: optimizer step; bon: n; ppo: PPO iteration)
//   "time"     Unix time in seconds; "elapsed": seconds since this process started the run
// and the stage's metric values as numbers (NaN and infinities as null). A finished unit of
// work loaded from the cache (a resumed run) logs one `"event": "cached"` object instead of
// its steps; a resumed run appends to the same file after a `"stage": "run", "event":
// "start"` object.
import Foundation
import OverOptEngine

/// A step's metrics handed to a stage's observer: (step, [(name, value)]).
public typealias StepMetrics = (_ step: Int, _ values: [(String, Double)]) -> Void

/// An append-only JSON Lines file (or nothing, for `path` nil).
public final class MetricsStream: @unchecked Sendable {
    public let path: String?
    private let descriptor: Int32
    private let start = monotonicSeconds()
    private let lock = NSLock()

    /// Opens (creating or appending to) `path`; nil discards every record.
    public init(path: String?) throws {
        self.path = path
        guard let path else { descriptor = -1; return }
        descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw ExperimentError("cannot open the metrics stream \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// `<result without .h5>.metrics.jsonl`.
    public static func path(forResult result: String) -> String {
        (result.hasSuffix(".h5") ? String(result.dropLast(3)) : result) + ".metrics.jsonl"
    }

    /// Appends one object: stage, variant, step, time, elapsed, then `fields` (strings) and `values`.
    public func emit(stage: String, variant: String? = nil, step: Int? = nil,
                     _ values: [(String, Double)] = [], fields: [(String, String)] = []) {
        guard descriptor >= 0 else { return }
        var parts = ["\"stage\":\(jsonString(stage))"]
        if let variant { parts.append("\"variant\":\(jsonString(variant))") }
        if let step { parts.append("\"step\":\(step)") }
        parts.append("\"time\":\(jsonNumber((Date().timeIntervalSince1970 * 1000).rounded() / 1000))")
        parts.append("\"elapsed\":\(jsonNumber(((monotonicSeconds() - start) * 1000).rounded() / 1000))")
        for (k, v) in fields { parts.append("\(jsonString(k)):\(jsonString(v))") }
        for (k, v) in values { parts.append("\(jsonString(k)):\(jsonNumber(v))") }
        let line = Array(("{" + parts.joined(separator: ",") + "}\n").utf8)
        lock.withLock {
            line.withUnsafeBytes { buf in
                var off = 0
                while off < buf.count {
                    let n = write(descriptor, buf.baseAddress! + off, buf.count - off)
                    if n < 0 { if errno == EINTR { continue } else { return } }   // a full disk must not stop the run
                    off += n
                }
            }
        }
    }

    /// An observer that emits each step of `stage` (for one `variant`).
    public func observer(stage: String, variant: String? = nil) -> StepMetrics {
        { step, values in self.emit(stage: stage, variant: variant, step: step, values) }
    }
}

/// A JSON number; NaN and infinities (which JSON lacks) as null.
func jsonNumber(_ x: Double) -> String {
    guard x.isFinite else { return "null" }
    if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) }
    return "\(x)"
}

/// A JSON string literal, which is also a TOML basic string (both escape \", \\, \n, \r,
/// \t and other control characters as \uXXXX; DEL is escaped too, as TOML requires).
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 || u.value == 0x7f { out += String(format: "\\u%04X", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}
