// ConfigError.swift — the errors a user sees for a bad config, each naming the key.

/// A configuration problem, reported before any work starts.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    /// A value out of range or otherwise invalid: key and what was expected.
    case invalid(key: String, String)
    /// A key that does not exist, with the file it came from and the valid keys beside it.
    case unknownKey(key: String, source: String, valid: [String])
    /// A value of the wrong type.
    case wrongType(key: String, source: String, expected: String)
    /// A file that cannot be read or parsed.
    case file(path: String, String)

    /// One line: control characters of the values it quotes (a newline in a string) are
    /// written as escapes.
    public var description: String {
        String(String.UnicodeScalarView(text.unicodeScalars.flatMap { scalar -> [Unicode.Scalar] in
            scalar.properties.generalCategory == .control ? Array(scalar.escaped(asASCII: true).unicodeScalars) : [scalar]
        }))
    }

    private var text: String {
        switch self {
        case .invalid(let key, let message):
            return "invalid value for '\(key)': \(message)"
        case .unknownKey(let key, let source, let valid):
            return "unknown key '\(key)' in \(source); valid keys here: \(valid.sorted().joined(separator: ", "))"
        case .wrongType(let key, let source, let expected):
            return "wrong type for '\(key)' in \(source): expected \(expected)"
        case .file(let path, let message):
            return "\(path): \(message)"
        }
    }
}
