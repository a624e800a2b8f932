// ConfigLoader.swift — TOML config files and `--set` overrides into typed configs.
//
// A config file is read with TOMLKit and bridged to a JSON-like tree. `--set a.b=value`
// overrides are applied to that tree, every key is checked against the keys the defaults
// have (so a typo names the key, the file and the valid keys beside it), the tree is
// merged over the defaults (so a file only lists what it changes) and decoded into the
// Codable config. Type errors name the key and the expected type.
import Foundation
import TOMLKit

/// A JSON-like tree: [String: Any], [Any], String, NSNumber, Bool.
public typealias ConfigTree = [String: Any]

/// Parses TOML text into a tree; `source` names the file in errors.
public func parseTOML(_ text: String, source: String) throws -> ConfigTree {
    if let line = tableHeaderWithoutKey(text) {
        throw ConfigError.file(path: source, "not valid TOML: a table header needs a key after '[' at line \(line)")
    }
    let table: TOMLTable
    do {
        table = try TOMLTable(string: text)
    } catch let e as TOMLParseError {
        throw ConfigError.file(path: source, "not valid TOML: \(e.description) at line \(e.source.begin.line), column \(e.source.begin.column)")
    }
    return try configTree(table, source: source, prefix: "")
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
/// infinities are refused naming the key), booleans, strings, arrays and tables.
func configTree(_ table: TOMLTable, source: String, prefix: String) throws -> ConfigTree {
    var tree: ConfigTree = [:]
    for key in table.keys {
        let full = prefix.isEmpty ? key : "\(prefix).\(key)"
        tree[key] = try configValue(table[key]!, key: full, source: source)
    }
    return tree
}

func configValue(_ value: TOMLValueConvertible, key: String, source: String) throws -> Any {
    switch value.type {
    case .table: return try configTree(value.table!, source: source, prefix: key)
    case .array: return try value.array!.enumerated().map { try configValue($0.element, key: "\(key)[\($0.offset)]", source: source) }
    case .int: return value.int!
    case .double:
        let x = value.double!
        guard x.isFinite else { throw ConfigError.invalid(key: key, "must be a finite number (got \(x)) in \(source)") }
        return x
    case .bool: return value.bool!
    case .string: return value.string!
    case .date, .time, .dateTime: throw ConfigError.wrongType(key: key, source: source, expected: "a number, string, boolean or list, not a date")
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

/// Checks that every key of `user` exists in `defaults` (recursively). Tables listed in
/// `freeTables` may hold any key, each checked against `freeTableSchema` when given.
public func checkKeys(_ user: ConfigTree, against defaults: ConfigTree, source: String, prefix: String = "",
                      freeTables: [String: ConfigTree] = [:]) throws {
    for (key, value) in user {
        let full = prefix.isEmpty ? key : "\(prefix).\(key)"
        if let schema = freeTables[full] {
            guard let entries = value as? ConfigTree else {
                throw ConfigError.wrongType(key: full, source: source, expected: "a table of named tables")
            }
            for (name, entry) in entries {
                guard let t = entry as? ConfigTree else {
                    throw ConfigError.wrongType(key: "\(full).\(name)", source: source, expected: "a table")
                }
                try checkKeys(t, against: schema, source: source, prefix: "\(full).\(name)")
            }
            continue
        }
        guard let d = defaults[key] else {
            throw ConfigError.unknownKey(key: full, source: source, valid: Array(defaults.keys))
        }
        if let dt = d as? ConfigTree {
            guard let ut = value as? ConfigTree else {
                throw ConfigError.wrongType(key: full, source: source, expected: "a table [\(full)]")
            }
            try checkKeys(ut, against: dt, source: source, prefix: full, freeTables: freeTables)
        }
    }
}

/// The leaf of `user` (a key path and its value) that makes `decode` fail when it alone is
/// merged over `defaults`, with what the key expects — for errors that the decoder reports
/// without a key (a float or a negative number for an unsigned integer key). Nil when no
/// single leaf fails.
public func culpritLeaf(_ user: ConfigTree, defaults: ConfigTree, decode: (ConfigTree) throws -> Void) -> (key: String, expected: String)? {
    for (key, value) in flattenTable(user) where !(value is ConfigTree) {
        var tree = defaults
        setValue(value, at: key.split(separator: ".").map(String.init)[...], in: &tree)
        guard (try? decode(tree)) == nil else { continue }
        let shown = value is String ? "\"\(value)\"" : "\(value)"
        if let x = (value as? NSNumber)?.doubleValue, !(value is String) {
            var rounded = defaults
            setValue(abs(x.rounded()), at: key.split(separator: ".").map(String.init)[...], in: &rounded)
            if (try? decode(rounded)) != nil {
                return (key, x < 0 ? "an integer ≥ 0 (got \(shown))" : "an integer (got \(shown))")
            }
        }
        return (key, "a value of this key's type (got \(shown))")
    }
    return nil
}

/// `user` merged over `base`, recursively for tables.
public func deepMerge(_ base: ConfigTree, _ user: ConfigTree) -> ConfigTree {
    var out = base
    for (k, v) in user {
        if let b = base[k] as? ConfigTree, let u = v as? ConfigTree { out[k] = deepMerge(b, u) } else { out[k] = v }
    }
    return out
}

/// The JSON tree of an encodable value.
public func encodeTree<T: Encodable>(_ value: T) throws -> ConfigTree {
    let data = try JSONEncoder().encode(value)
    return try JSONSerialization.jsonObject(with: data) as? ConfigTree ?? [:]
}

/// Decodes a tree into `T`, turning decoding errors into `ConfigError`s naming the key.
public func decodeTree<T: Decodable>(_ type: T.Type, from tree: ConfigTree, source: String) throws -> T {
    let data = try JSONSerialization.data(withJSONObject: tree)
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let DecodingError.typeMismatch(expected, ctx) {
        throw ConfigError.wrongType(key: keyPath(ctx.codingPath), source: source, expected: typeName(expected))
    } catch let DecodingError.dataCorrupted(ctx) {
        let message = ctx.debugDescription
        // "Cannot initialize PromptSplit from invalid String value bogus": name the valid values.
        if let name = configEnumValues.keys.first(where: { message.hasPrefix("Cannot initialize \($0) from") }) {
            let got = message.components(separatedBy: "invalid String value ").last ?? ""
            throw ConfigError.invalid(key: keyPath(ctx.codingPath), "must be one of \(configEnumValues[name]!.joined(separator: ", ")) (got \"\(got)\")")
        }
        throw ConfigError.invalid(key: keyPath(ctx.codingPath), message)
    } catch let DecodingError.valueNotFound(expected, ctx) {
        throw ConfigError.wrongType(key: keyPath(ctx.codingPath), source: source, expected: typeName(expected))
    } catch let DecodingError.keyNotFound(key, ctx) {
        throw ConfigError.invalid(key: keyPath(ctx.codingPath + [key]), "missing")
    }
}

func keyPath(_ path: [CodingKey]) -> String {
    path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
}

func typeName(_ t: Any.Type) -> String {
    switch t {
    case is Int.Type, is Int64.Type, is UInt64.Type: return "an integer"
    case is Double.Type, is Float.Type: return "a number"
    case is Bool.Type: return "true or false"
    case is String.Type: return "a string"
    default: return "\(t)"
    }
}

/// The valid values of the config's enumerations, for error messages.
let configEnumValues: [String: [String]] = [
    "PromptSplit": PromptSplit.allCases.map(\.rawValue),
    "RewardObjective": RewardObjective.allCases.map(\.rawValue),
    "GRMRegularizer": GRMRegularizer.allCases.map(\.rawValue),
    "RewardHeadChoice": RewardHeadChoice.allCases.map(\.rawValue),
    "FinetuneMode": FinetuneMode.allCases.map(\.rawValue),
    "EnsembleCombiner": EnsembleCombiner.allCases.map(\.rawValue),
    "WriterStyle": WriterStyle.allCases.map(\.rawValue),
    "Perturbation": Perturbation.allCases.map(\.rawValue),
    "SelectionRule": SelectionRule.allCases.map(\.rawValue),
    "KLPenaltyEstimator": KLPenaltyEstimator.allCases.map(\.rawValue),
    "RewardShaping": RewardShaping.allCases.map(\.rawValue),
]
