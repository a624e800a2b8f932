// ConfigSchema.swift — every config key declared once, and what is derived from it.
//
// A config section (`[ppo]`, `[world.gold]`, …) is a struct conforming to `ConfigSection`:
// its `schema` lists one `ConfigKey` per key — TOML name, property (key path), one-line
// meaning and the rules its value must satisfy; the default is the property's initial
// value. From that list come:
//   • reading a parsed TOML table (`read`): unknown keys (with a did-you-mean), values of
//     the wrong type and values breaking a rule are all collected, not only the first;
//   • validation (`problems`, `validate()`), each problem naming key, value and expectation;
//   • Codable (the JSON of hashes, cache keys and the `config` attribute of run files);
//   • the HDF5 attributes of a stage's settings (`attributes`);
//   • README's configuration reference tables (`ConfigReference.swift`).
//
// JSON names are the TOML names, except in sections with `jsonCamelCase` (`[world]` and its
// tables), whose JSON keeps the camelCase names it has always had, so that the world's
// fingerprint, every cache key and every config hash stay as they were. There the
// camelCase spelling is also accepted in TOML, with a deprecation note.
import Foundation
import OverOptEngine
import OverOptHDF5

// MARK: - Values

/// A type a config key can hold.
public protocol ConfigValue: Codable, Sendable {
    /// The value of a parsed TOML leaf, or nil when it is not one of this type.
    static func fromConfig(_ value: Any) -> Self?
    /// What a key of this type takes, for messages and README ("an integer", "one of a, b").
    static var configTypeName: String { get }
    /// The value as a TOML literal (`0.7`, `"heldOut"`, `["bt", "grm-sft"]`).
    var tomlText: String { get }
    /// The value as an HDF5 attribute; nil for values not stored as one.
    var attributeValue: AttributeValue? { get }
}

/// A number with an order, for range rules.
public protocol ConfigNumber: ConfigValue, Comparable {
    /// Whether a value is finite (always true for integers).
    var isFiniteNumber: Bool { get }
}

/// A value of a parsed tree with JSONSerialization's NSNumbers (a JSON-encoded config) as
/// the Swift value they hold: Bool, Double or Int. Other values are returned as they are.
func nativeValue(_ value: Any) -> Any {
    guard type(of: value) is NSNumber.Type, let n = value as? NSNumber else { return value }
    let type = String(cString: n.objCType)
    if type == "c" || type == "B" { return n.boolValue }
    if type == "d" || type == "f" { return n.doubleValue }
    return Int(truncatingIfNeeded: n.int64Value)
}

extension Int: ConfigNumber {
    public static func fromConfig(_ value: Any) -> Int? {
        switch nativeValue(value) {
        case is Bool: return nil
        case let i as Int: return i
        case let u as UInt64: return Int(exactly: u)
        case let d as Double: return d.rounded() == d && abs(d) < 9.2e18 ? Int(d) : nil
        default: return nil
        }
    }
    public static var configTypeName: String { "an integer" }
    public var tomlText: String { "\(self)" }
    public var attributeValue: AttributeValue? { .int(self) }
    public var isFiniteNumber: Bool { true }
}

extension UInt64: ConfigNumber {
    public static func fromConfig(_ value: Any) -> UInt64? {
        switch nativeValue(value) {
        case is Bool: return nil
        case let u as UInt64: return u
        case let i as Int: return UInt64(exactly: i)
        case let d as Double: return d.rounded() == d && d >= 0 && d < 1.8e19 ? UInt64(d) : nil
        default: return nil
        }
    }
    public static var configTypeName: String { "an integer ≥ 0" }
    public var tomlText: String { "\(self)" }
    public var attributeValue: AttributeValue? { .int(Int(bitPattern: UInt(self))) }
    public var isFiniteNumber: Bool { true }
}

extension Double: ConfigNumber {
    public static func fromConfig(_ value: Any) -> Double? {
        switch nativeValue(value) {
        case is Bool: return nil
        case let d as Double: return d
        case let i as Int: return Double(i)
        default: return nil
        }
    }
    public static var configTypeName: String { "a number" }
    public var tomlText: String { numberText(self) }
    public var attributeValue: AttributeValue? { .float(self) }
    public var isFiniteNumber: Bool { isFinite }
}

extension Float: ConfigNumber {
    /// Through the shortest decimal form of the Double, as a decimal literal in the file would be.
    public static func fromConfig(_ value: Any) -> Float? { Double.fromConfig(value).flatMap { Float("\($0)") } }
    public static var configTypeName: String { "a number" }
    public var tomlText: String { numberText(Double("\(self)") ?? Double(self)) }
    public var attributeValue: AttributeValue? { .float(decimalDouble(self)) }
    public var isFiniteNumber: Bool { isFinite }
}

extension Bool: ConfigValue {
    public static func fromConfig(_ value: Any) -> Bool? { nativeValue(value) as? Bool }
    public static var configTypeName: String { "true or false" }
    public var tomlText: String { self ? "true" : "false" }
    public var attributeValue: AttributeValue? { .bool(self) }
}

extension String: ConfigValue {
    public static func fromConfig(_ value: Any) -> String? { value as? String }
    public static var configTypeName: String { "a string" }
    public var tomlText: String { jsonString(self) }
    public var attributeValue: AttributeValue? { .string(self) }
}

extension Array: ConfigValue where Element: ConfigValue {
    public static func fromConfig(_ value: Any) -> [Element]? {
        guard let list = value as? [Any] else { return nil }
        var out: [Element] = []
        for v in list {
            guard let e = Element.fromConfig(v) else { return nil }
            out.append(e)
        }
        return out
    }
    public static var configTypeName: String { "a list of " + pluralTypeName(Element.configTypeName) }
    public var tomlText: String { "[" + map(\.tomlText).joined(separator: ", ") + "]" }
    public var attributeValue: AttributeValue? {
        let strings = compactMap { (e: Element) -> String? in if case .string(let s) = e.attributeValue { s } else { nil } }
        return strings.count == count ? .strings(strings) : nil
    }
}

/// "an integer" → "integers", "one of a, b" → "values, each one of a, b".
func pluralTypeName(_ name: String) -> String {
    switch name {
    case "an integer": "integers"
    case "a number": "numbers"
    case "a string": "strings"
    case "true or false": "booleans"
    default: "values, each " + name
    }
}

/// A choice among named values (a String-backed enumeration).
public protocol ConfigChoice: ConfigValue, RawRepresentable<String>, CaseIterable {}

extension ConfigChoice {
    public static func fromConfig(_ value: Any) -> Self? { (value as? String).flatMap(Self.init(rawValue:)) }
    public static var configTypeName: String { "one of " + allCases.map(\.rawValue).joined(separator: ", ") }
    public var tomlText: String { jsonString(rawValue) }
    public var attributeValue: AttributeValue? { .string(rawValue) }
}

extension PromptSplit: ConfigChoice {}
extension RewardObjective: ConfigChoice {}
extension GRMRegularizer: ConfigChoice {}
extension RewardHeadChoice: ConfigChoice {}
extension FinetuneMode: ConfigChoice {}
extension EnsembleCombiner: ConfigChoice {}
extension SelectionRule: ConfigChoice {}
extension KLPenaltyEstimator: ConfigChoice {}
extension RewardShaping: ConfigChoice {}
extension DirectAlignmentLoss: ConfigChoice {}

/// A number as README and messages show it: integral values without ".0", exponents without
/// leading zeros (1e-5, not 1e-05).
func numberText(_ x: Double) -> String {
    if x.isNaN { return "nan" }
    if x.isInfinite { return x > 0 ? "inf" : "-inf" }
    if x.rounded() == x && abs(x) < 1e15 { return "\(Int(x))" }
    var s = "\(x)"
    if let e = s.firstIndex(of: "e") {
        var exponent = String(s[s.index(after: e)...])
        let sign = exponent.hasPrefix("-") ? "-" : ""
        exponent = String(exponent.drop { $0 == "-" || $0 == "+" || $0 == "0" })
        s = String(s[..<e]) + "e" + sign + exponent
    }
    return s
}

// MARK: - Rules

/// A condition on a key's value (and, for relations between keys, on its section).
public struct ConfigRule<Root, Value>: @unchecked Sendable {
    /// What the value must be, as README and messages show it ("≥ 1", "in (0, 1]").
    public let text: String
    /// The current value of other keys the rule refers to, appended in messages ("64").
    let detail: ((Root) -> String)?
    let holds: (Root, Value) -> Bool

    /// A rule named by `text` (e.g. "≤ prompts_per_step"); `detail` gives the values it
    /// depends on, shown in parentheses in messages.
    public static func check(_ text: String, detail: ((Root) -> String)? = nil, _ holds: @escaping (Root, Value) -> Bool) -> Self {
        Self(text: text, detail: detail, holds: holds)
    }

    func message(_ root: Root) -> String { detail.map { "\(text) (\($0(root)))" } ?? text }
}

extension ConfigRule where Value: ConfigNumber {
    public static func atLeast(_ x: Value) -> Self { .check("≥ \(x.tomlText)") { $1 >= x } }
    public static func above(_ x: Value) -> Self { .check("> \(x.tomlText)") { $1 > x } }
    public static func atMost(_ x: Value) -> Self { .check("≤ \(x.tomlText)") { $1 <= x } }
    /// lo ≤ value ≤ hi ("in 2...64" for integers, "in [0, 1]" for numbers).
    public static func within(_ lo: Value, _ hi: Value) -> Self {
        let text = Value.self == Int.self ? "in \(lo.tomlText)...\(hi.tomlText)" : "in [\(lo.tomlText), \(hi.tomlText)]"
        return .check(text) { $1 >= lo && $1 <= hi }
    }
    /// lo ≤ value < hi.
    public static func halfOpen(_ lo: Value, _ hi: Value) -> Self { .check("in [\(lo.tomlText), \(hi.tomlText))") { $1 >= lo && $1 < hi } }
    /// lo < value ≤ hi.
    public static func openClosed(_ lo: Value, _ hi: Value) -> Self { .check("in (\(lo.tomlText), \(hi.tomlText)]") { $1 > lo && $1 <= hi } }
    /// lo < value < hi.
    public static func open(_ lo: Value, _ hi: Value) -> Self { .check("in (\(lo.tomlText), \(hi.tomlText))") { $1 > lo && $1 < hi } }
}

extension ConfigRule where Value: Collection, Value.Element: Hashable {
    /// No element twice.
    public static var distinct: Self { .check("without repeats") { Set($1).count == $1.count } }
    /// At least one element.
    public static var nonEmpty: Self { .check("not empty") { !$1.isEmpty } }
}

// MARK: - Keys

/// One problem of a config: the key (full, e.g. "ppo.steps"), the value given, what was expected.
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable { case invalid, unknownKey, file }
    public var kind: Kind
    public var key: String
    /// The value as a TOML literal; nil when the problem is not about one value.
    public var value: String?
    /// What the key takes ("an integer ≥ 1"), or what is wrong (a file's problem).
    public var expected: String
    /// For unknown keys: "did you mean 'x'?" or the valid keys.
    public var suggestion: String?

    public init(kind: Kind = .invalid, key: String, value: String? = nil, expected: String, suggestion: String? = nil) {
        self.kind = kind; self.key = key; self.value = value; self.expected = expected; self.suggestion = suggestion
    }

    /// The problem in one line; `source` names the file (nil: said elsewhere).
    public func text(source: String?) -> String {
        let inSource = source.map { " in \($0)" } ?? ""
        switch kind {
        case .file:
            return source.map { "\($0): \(expected)" } ?? expected
        case .unknownKey:
            return "unknown key '\(key)'\(inSource)" + (suggestion.map { "; \($0)" } ?? "")
        case .invalid:
            let what = value.map { "expected \(expected) (got \($0))" } ?? expected
            return key.isEmpty ? "invalid value\(inSource): \(what)" : "invalid value for '\(key)'\(inSource): \(what)"
        }
    }

    public var description: String { text(source: nil) }
}

/// Collects what reading a config finds: problems and deprecated spellings.
public struct ConfigReport: Sendable {
    public var problems: [ConfigProblem] = []
    /// One line per deprecated key spelling used.
    public var deprecations: [String] = []
    public init() {}
}

/// One key of a section: everything about it, declared once.
public struct ConfigKey<Root>: @unchecked Sendable {
    /// The TOML name (snake_case).
    public let name: String
    /// The JSON name (`name`, or its camelCase form in `jsonCamelCase` sections).
    public let jsonName: String
    /// The meaning, one line (README's table).
    public let doc: String
    /// README's default column.
    public let defaultText: String
    /// README's valid column: the type and the rules.
    public let validText: String
    /// A nested section (`[world.gold]`): its keys, README rows and problems come from its own schema.
    public let nested: (any ConfigSection.Type)?
    /// Not part of README (a table read by the loader itself, e.g. `variants`).
    public internal(set) var hidden: Bool

    let read: (inout Root, Any, String, inout ConfigReport) -> Void
    let problems: (Root, String) -> [ConfigProblem]
    let encode: (Root, inout KeyedEncodingContainer<ConfigCodingKey>) throws -> Void
    let decode: (inout Root, KeyedDecodingContainer<ConfigCodingKey>) throws -> Void
    let attribute: (Root) -> AttributeValue?
}

/// A JSON key of a config section.
public struct ConfigCodingKey: CodingKey {
    public var stringValue: String
    public var intValue: Int? { nil }
    public init(_ s: String) { stringValue = s }
    public init(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}

/// "max_response_tokens" → "maxResponseTokens".
func camelCase(_ snake: String) -> String {
    let parts = snake.split(separator: "_")
    return parts.enumerated().map { $0.offset == 0 ? String($0.element) : $0.element.prefix(1).uppercased() + $0.element.dropFirst() }.joined()
}

extension ConfigKey where Root: ConfigSection {
    /// A key whose value is always set.
    public static func key<V: ConfigValue>(_ name: String, _ path: WritableKeyPath<Root, V>, _ doc: String,
                                           _ rules: ConfigRule<Root, V>..., default shown: String? = nil) -> Self {
        make(name, doc, shown ?? "`\(Root()[keyPath: path].tomlText)`", keyValidText(V.self, rules.map(\.text)), nested: nil,
             read: { raw in V.fromConfig(raw).map { v in .success { $0[keyPath: path] = v } } ?? .failure(V.configTypeName) },
             problems: { root, key in valueProblems(root, root[keyPath: path], key: key, rules: rules) },
             get: { $0[keyPath: path] }, set: { $0[keyPath: path] = $1 }, attribute: { $0[keyPath: path].attributeValue })
    }

    /// An optional key: absent (nil) unless set; its rules apply when it is set. `unset`
    /// says what absence means (README's default column).
    public static func key<V: ConfigValue>(_ name: String, _ path: WritableKeyPath<Root, V?>, _ doc: String,
                                           _ rules: ConfigRule<Root, V>..., unset: String) -> Self {
        make(name, doc, unset, keyValidText(V.self, rules.map(\.text)), nested: nil,
             read: { raw in V.fromConfig(raw).map { v in .success { $0[keyPath: path] = v } } ?? .failure(V.configTypeName) },
             problems: { root, key in root[keyPath: path].map { valueProblems(root, $0, key: key, rules: rules) } ?? [] },
             get: { $0[keyPath: path] }, set: { $0[keyPath: path] = $1 }, attribute: { $0[keyPath: path]?.attributeValue })
    }

    /// A nested section (`[world.gold]`).
    public static func section<S: ConfigSection>(_ name: String, _ path: WritableKeyPath<Root, S>, _ doc: String) -> Self {
        make(name, doc, "", "a table", nested: S.self,
             read: { _ in .failure("") },   // tables are read by `readTable` below
             problems: { root, key in S.problems(root[keyPath: path], prefix: key) },
             get: { $0[keyPath: path] }, set: { $0[keyPath: path] = $1 }, attribute: { _ in nil },
             readTable: { root, raw, key, report in
                 guard let table = raw as? ConfigTree else {
                     report.problems.append(ConfigProblem(key: key, value: tomlLiteral(raw), expected: "a table [\(key)]"))
                     return
                 }
                 S.read(table, prefix: key, into: &root[keyPath: path], report: &report)
             })
    }

    /// A value carried in JSON only, read from TOML by the loader itself (e.g. the resolved `variants`).
    public static func hidden<V: Codable>(_ name: String, _ path: WritableKeyPath<Root, V>) -> Self {
        var key = make(name, "", "", "", nested: nil, read: { _ in .failure("") }, problems: { _, _ in [] },
                       get: { $0[keyPath: path] }, set: { $0[keyPath: path] = $1 }, attribute: { _ in nil })
        key.hidden = true
        return key
    }

    /// What reading a TOML value gives: a setter, or what the key takes.
    enum Reading { case success((inout Root) -> Void), failure(String) }

    /// The key from its parts. JSON: the value under `jsonName` (or, when decoding, `name`);
    /// nil values are left out.
    private static func make<V: Codable>(
        _ name: String, _ doc: String, _ defaultText: String, _ validText: String, nested: (any ConfigSection.Type)?,
        read: @escaping (Any) -> Reading, problems: @escaping (Root, String) -> [ConfigProblem],
        get: @escaping (Root) -> V?, set: @escaping (inout Root, V) -> Void, attribute: @escaping (Root) -> AttributeValue?,
        readTable: ((inout Root, Any, String, inout ConfigReport) -> Void)? = nil
    ) -> Self {
        let jsonName = Root.jsonCamelCase ? camelCase(name) : name
        return Self(
            name: name, jsonName: jsonName, doc: doc, defaultText: defaultText, validText: validText, nested: nested, hidden: false,
            read: readTable ?? { root, raw, key, report in
                switch read(raw) {
                case .success(let apply): apply(&root)
                case .failure(let expected): report.problems.append(ConfigProblem(key: key, value: tomlLiteral(raw), expected: expected))
                }
            },
            problems: problems,
            encode: { root, c in try c.encodeIfPresent(get(root), forKey: ConfigCodingKey(jsonName)) },
            decode: { root, c in
                for k in jsonName == name ? [name] : [jsonName, name] {
                    if let v = try c.decodeIfPresent(V.self, forKey: ConfigCodingKey(k)) { set(&root, v); return }
                }
            },
            attribute: attribute)
    }
}

/// README's valid column of a key: its type ("integer", "list of strings"), then its rules.
func keyValidText<V: ConfigValue>(_ type: V.Type, _ rules: [String]) -> String {
    var name = V.configTypeName
    if name == "true or false" { name = "boolean" }
    for article in ["an ", "a "] where name.hasPrefix(article) { name = String(name.dropFirst(article.count)) }
    guard let first = rules.first else { return name }
    // "integer ≥ 1", "string, one of …", "one of a, b; …".
    let comparison = ["≥", "≤", ">", "<", "in "].contains { first.hasPrefix($0) }
    return name + (name.contains(",") ? "; " : comparison ? " " : ", ") + rules.joined(separator: ", ")
}

/// The problems of one value: non-finite numbers, then the rules it breaks.
func valueProblems<Root, V: ConfigValue>(_ root: Root, _ value: V, key: String, rules: [ConfigRule<Root, V>]) -> [ConfigProblem] {
    if let n = value as? any ConfigNumber, !n.isFiniteNumber {
        return [ConfigProblem(key: key, value: value.tomlText, expected: "a finite number")]
    }
    if let list = value as? [Double], list.contains(where: { !$0.isFinite }) {
        return [ConfigProblem(key: key, value: value.tomlText, expected: "finite numbers")]
    }
    return rules.filter { !$0.holds(root, value) }.map { ConfigProblem(key: key, value: value.tomlText, expected: $0.message(root)) }
}

// MARK: - Sections

/// A config section: a struct whose keys are its `schema`.
public protocol ConfigSection: Codable, Sendable {
    /// The defaults.
    init()
    /// The section's name in TOML and in messages ("ppo", "world.gold").
    static var section: String { get }
    /// Every key, in the order README and the HDF5 attributes list them.
    static var schema: [ConfigKey<Self>] { get }
    /// JSON uses the camelCase forms of the names (and TOML accepts them, deprecated).
    static var jsonCamelCase: Bool { get }
}

extension ConfigSection {
    public static var jsonCamelCase: Bool { false }

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: ConfigCodingKey.self)
        for key in Self.schema { try key.decode(&self, c) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ConfigCodingKey.self)
        for key in Self.schema { try key.encode(self, &c) }
    }

    /// Reads a parsed TOML table over `value`: every key of `table` is looked up (unknown
    /// keys are reported with a suggestion), converted (values of another type are reported)
    /// and set. `prefix` is the table's full name ("ppo", "variants.bt").
    public static func read(_ table: ConfigTree, prefix: String, into value: inout Self, report: inout ConfigReport) {
        let keys = schema.filter { !$0.hidden }
        for name in table.keys.sorted() {
            let full = prefix.isEmpty ? name : "\(prefix).\(name)"
            if let key = keys.first(where: { $0.name == name }) {
                key.read(&value, table[name]!, full, &report)
            } else if jsonCamelCase, let key = keys.first(where: { $0.jsonName == name && $0.jsonName != $0.name }) {
                let replacement = prefix.isEmpty ? key.name : "\(prefix).\(key.name)"
                report.deprecations.append("config key '\(full)' is deprecated; write '\(replacement)' (snake_case, like every other key)")
                key.read(&value, table[name]!, full, &report)
            } else {
                report.problems.append(ConfigProblem(kind: .unknownKey, key: full, expected: "a key of [\(prefix)]",
                                                     suggestion: unknownKeySuggestion(name, valid: keys.map(\.name))))
            }
        }
    }

    /// Every problem of `value`'s keys (and of its nested sections), in schema order.
    public static func problems(_ value: Self, prefix: String = Self.section) -> [ConfigProblem] {
        schema.flatMap { $0.problems(value, prefix.isEmpty ? $0.name : "\(prefix).\($0.name)") }
    }

    /// Throws a `ConfigError` listing every problem of this section's keys.
    public func validate() throws {
        let found = Self.problems(self)
        if !found.isEmpty { throw ConfigError(source: nil, problems: found) }
    }

    /// Every key's value as an HDF5 attribute (optional keys only when set), in schema order.
    public var attributes: [OptimizerSetting] {
        Self.schema.compactMap { key in key.attribute(self).map { OptimizerSetting(key.name, $0) } }
    }

    /// Writes `attributes` to `group`.
    public func writeAttributes(to group: H5Group) throws {
        for a in attributes { try group.setAttribute(a.key, a.value) }
    }
}

/// "did you mean 'train_pairs'?" when a valid key is a small edit away from `name`, else the
/// valid keys.
func unknownKeySuggestion(_ name: String, valid: [String]) -> String {
    let scored = valid.map { ($0, editDistance(name.lowercased(), $0.lowercased())) }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }
    if let best = scored.first, best.1 <= max(1, min(3, name.count / 3)) {
        return "did you mean '\(best.0)'?"
    }
    return "valid keys here: " + valid.sorted().joined(separator: ", ")
}

/// Edits (insertions, deletions, substitutions, swaps of neighbours) from `a` to `b`.
func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a), y = Array(b)
    if x.isEmpty || y.isEmpty { return max(x.count, y.count) }
    var d = [[Int]](repeating: [Int](repeating: 0, count: y.count + 1), count: x.count + 1)
    for i in 0...x.count { d[i][0] = i }
    for j in 0...y.count { d[0][j] = j }
    for i in 1...x.count {
        for j in 1...y.count {
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
        }
    }
    return d[x.count][y.count]
}
