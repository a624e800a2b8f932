// ConfigLoader.swift — TOML config files and `--set` overrides into typed configs.
//
// A config file is read with TOMLKit and bridged to a JSON-like tree. `--set a.b=value`
// overrides are applied to that tree, which each section's schema then reads over the
// defaults (ConfigSchema.swift): a file only lists what it changes, and every unknown key,
// value of the wrong type and value out of range is reported, naming key, value and file.
import Foundation
import TOMLKit

/// A JSON-like tree: [String: Any], [Any], String, NSNumber, Bool.
public typealias ConfigTree = [String: Any]

/// Parses TOML text into a tree; `source` names the file in errors. Throws every value that
/// is not a config value (NaN, infinities, dates) at once.
public func parseTOML(_ text: String, source: String) throws -> ConfigTree {
    var report = ConfigReport()
    let tree = try parseTOML(text, source: source, report: &report)
    if !report.problems.isEmpty { throw ConfigError(source: source, problems: report.problems) }
    return tree
}

/// Parses TOML text into a tree, leaving out (and adding to `report`) the values that are
/// not config values; throws when the text is not TOML.
func parseTOML(_ text: String, source: String, report: inout ConfigReport) throws -> ConfigTree {
    if let line = tableHeaderWithoutKey(text) {
        throw ConfigError.file(path: source, "not valid TOML: a table header needs a key after '[' at line \(line)")
    }
    let table: TOMLTable
    do {
        table = try TOMLTable(string: text)
    } catch let e as TOMLParseError {
        throw ConfigError.file(path: source, "not valid TOML: \(e.description) at line \(e.source.begin.line), column \(e.source.begin.column)")
    }
    return configTree(table, prefix: "", report: &report)
}

/// The line of the first table header (`[…]` or `[[…]]` starting a line outside any value)
/// whose key does not start with a bare-key character or a quote, e.g. `[.a]` or `[é]`;
/// nil if there is none. TOMLKit's parser stops the process with a failed assertion on
/// such a header instead of reporting it, so it is refused before the text reaches it.
func tableHeaderWithoutKey(_ text: String) -> Int? {
    let bytes = Array(text.utf8)
    func isBare(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b == 0x5f || b == 0x2d
    }
    var i = 0, line = 1, depth = 0, atLineStart = true
    func starts(_ s: String) -> Bool { bytes[i...].starts(with: s.utf8) }
    while i < bytes.count {
        let b = bytes[i]
        if b == 0x0a { line += 1; atLineStart = true; i += 1; continue }
        if b == 0x20 || b == 0x09 || b == 0x0d { i += 1; continue }
        if b == 0x23 {                                   // a comment, to the end of the line
            while i < bytes.count && bytes[i] != 0x0a { i += 1 }
            continue
        }
        if b == 0x22 || b == 0x27 {                      // a string, maybe multi-line
            let quote = b
            let triple = starts(quote == 0x22 ? "\"\"\"" : "'''")
            i += triple ? 3 : 1
            while i < bytes.count {
                if quote == 0x22 && bytes[i] == 0x5c { i += 2; continue }   // an escape
                if bytes[i] == 0x0a { if !triple { break }; line += 1 }
                if bytes[i] == quote && (!triple || starts(quote == 0x22 ? "\"\"\"" : "'''")) {
                    i += triple ? 3 : 1
                    break
                }
                i += 1
            }
            atLineStart = false
            continue
        }
        if b == 0x5b && depth == 0 && atLineStart {     // a table header
            i += 1
            if i < bytes.count && bytes[i] == 0x5b { i += 1 }
            while i < bytes.count && (bytes[i] == 0x20 || bytes[i] == 0x09) { i += 1 }
            guard i < bytes.count, isBare(bytes[i]) || bytes[i] == 0x22 || bytes[i] == 0x27 else { return line }
            while i < bytes.count && bytes[i] != 0x0a { i += 1 }
            continue
        }
        if b == 0x5b || b == 0x7b { depth += 1 }
        if (b == 0x5d || b == 0x7d) && depth > 0 { depth -= 1 }
        atLineStart = false
        i += 1
    }
    return nil
}

/// A TOML table as a tree: integers as Int, floats as Double (finite only: NaN and
/// infinities are left out and reported naming the key), booleans, strings, arrays and
/// tables (dates are left out and reported).
func configTree(_ table: TOMLTable, prefix: String, report: inout ConfigReport) -> ConfigTree {
    var tree: ConfigTree = [:]
    for key in table.keys {
        let full = prefix.isEmpty ? key : "\(prefix).\(key)"
        if let v = configValue(table[key]!, key: full, report: &report) { tree[key] = v }
    }
    return tree
}

func configValue(_ value: TOMLValueConvertible, key: String, report: inout ConfigReport) -> Any? {
    switch value.type {
    case .table: return configTree(value.table!, prefix: key, report: &report)
    case .array:
        let elements = value.array!.enumerated().map { configValue($0.element, key: "\(key)[\($0.offset)]", report: &report) }
        return elements.contains { $0 == nil } ? nil : elements.map { $0! }
    case .int: return value.int!
    case .double:
        let x = value.double!
        guard x.isFinite else {
            report.problems.append(ConfigProblem(key: key, value: numberText(x), expected: "a finite number"))
            return nil
        }
        return x
    case .bool: return value.bool!
    case .string: return value.string!
    case .date, .time, .dateTime:
        report.problems.append(ConfigProblem(key: key, value: "a date", expected: "a number, string, boolean or list, not a date"))
        return nil
    }
}

/// Parses the value of a `--set key=value` override as a TOML value (number, bool,
/// string, array); anything that is not valid TOML is taken as a plain string.
public func parseOverrideValue(_ text: String) -> Any {
    if let tree = try? parseTOML("v = \(text)", source: "--set"), let v = tree["v"] { return v }
    return text
}

/// Applies `key.path=value` overrides to a tree.
public func applyOverrides(_ overrides: [String], to tree: inout ConfigTree) throws {
    for o in overrides {
        guard let eq = o.firstIndex(of: "="), eq != o.startIndex else {
            throw ConfigError.invalid(key: o, "a --set override must look like key=value or section.key=value")
        }
        let path = o[..<eq].split(separator: ".").map(String.init)
        setValue(parseOverrideValue(String(o[o.index(after: eq)...])), at: path[...], in: &tree)
    }
}

func setValue(_ value: Any, at path: ArraySlice<String>, in tree: inout ConfigTree) {
    guard let first = path.first else { return }
    if path.count == 1 { tree[first] = value; return }
    var sub = tree[first] as? ConfigTree ?? [:]
    setValue(value, at: path.dropFirst(), in: &sub)
    tree[first] = sub
}

/// Deprecation notes already printed by `printDeprecationOnce`.
private final class PrintedNotes: @unchecked Sendable {
    let lock = NSLock()
    var notes: Set<String> = []
}
private let printedNotes = PrintedNotes()

/// Whether `note` is new to this process (and records it).
public func deprecationNoteIsNew(_ note: String) -> Bool {
    printedNotes.lock.lock()
    defer { printedNotes.lock.unlock() }
    return printedNotes.notes.insert(note).inserted
}

/// Prints a deprecation note to stderr, once per process (a sweep loads its base config for
/// every entry).
public func printDeprecationOnce(_ note: String) {
    if deprecationNoteIsNew(note) { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
}

/// The JSON tree of an encodable value.
public func encodeTree<T: Encodable>(_ value: T) throws -> ConfigTree {
    let data = try JSONEncoder().encode(value)
    return try JSONSerialization.jsonObject(with: data) as? ConfigTree ?? [:]
}

/// A section read from a tree over its defaults by its schema; throws a `ConfigError` listing
/// every problem (keys named `<section>.<key>`).
public func decodeTree<T: ConfigSection>(_ type: T.Type, from tree: ConfigTree, source: String) throws -> T {
    var value = T()
    var report = ConfigReport()
    T.read(tree, prefix: T.section, into: &value, report: &report)
    report.problems += T.problems(value)
    if !report.problems.isEmpty { throw ConfigError(source: source, problems: report.problems) }
    return value
}
