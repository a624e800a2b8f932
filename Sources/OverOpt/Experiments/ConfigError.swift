// ConfigError.swift — the error a user sees for a bad config: every problem found, each
// naming the key, the value given and what was expected.

/// A configuration's problems, reported before any work starts: all of them at once.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// The file (or "the built-in quick-start config", "--set"); nil when unknown (a section
    /// validated on its own).
    public var source: String?
    public var problems: [ConfigProblem]

    public init(source: String?, problems: [ConfigProblem]) {
        self.source = source
        self.problems = problems
    }

    /// A value out of range or otherwise invalid: the key and what is wrong.
    public static func invalid(key: String, _ message: String, source: String? = nil) -> ConfigError {
        ConfigError(source: source, problems: [ConfigProblem(key: key, expected: message)])
    }

    /// A key that does not exist, with the valid keys beside it (or the one it resembles).
    public static func unknownKey(key: String, source: String, valid: [String]) -> ConfigError {
        let last = String(key.split(separator: ".").last ?? Substring(key))
        return ConfigError(source: source, problems: [ConfigProblem(kind: .unknownKey, key: key, expected: "a valid key",
                                                                    suggestion: unknownKeySuggestion(last, valid: valid))])
    }

    /// A value of the wrong type: the key and what it takes.
    public static func wrongType(key: String, source: String, expected: String, value: String? = nil) -> ConfigError {
        ConfigError(source: source, problems: [ConfigProblem(key: key, value: value, expected: expected)])
    }

    /// A file that cannot be read or parsed.
    public static func file(path: String, _ message: String) -> ConfigError {
        ConfigError(source: path, problems: [ConfigProblem(kind: .file, key: "", expected: message)])
    }

    /// One line (the command line prints it after "Error: "): a single problem as it is,
    /// several as "N problems in <file>: …; …". Control characters of the values it quotes
    /// (a newline in a string) are written as escapes.
    public var description: String {
        let text: String
        if problems.count == 1 {
            text = problems[0].text(source: source)
        } else {
            text = "\(problems.count) problems" + (source.map { " in \($0)" } ?? "") + ": "
                + problems.map { $0.text(source: nil) }.joined(separator: "; ")
        }
        return String(String.UnicodeScalarView(text.unicodeScalars.flatMap { scalar -> [Unicode.Scalar] in
            scalar.properties.generalCategory == .control ? Array(scalar.escaped(asASCII: true).unicodeScalars) : [scalar]
        }))
    }
}
