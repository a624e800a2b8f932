// ConfigReference.swift — README's configuration reference tables, generated from the
// schemas (ConfigSchema.swift). README.md holds each table between the markers
// `<!-- config-table NAME -->` and `<!-- /config-table -->`; a test fails when a table there
// differs from `ConfigReference.table`, and rewrites README's tables when run with
// OVEROPT_UPDATE_README=1.

/// The configuration reference in Markdown.
public enum ConfigReference {
    /// Every table, by name ("top" for the top-level keys, else the section: "ppo",
    /// "world.gold"), in README's order.
    public static var tables: [(name: String, markdown: String)] {
        var out = [("top", markdown(ExperimentConfig.self))]
        for key in ExperimentConfig.schema {
            if let nested = key.nested { out += sectionTables(nested) }
        }
        return out
    }

    /// The table of one section and those of the sections nested in it.
    static func sectionTables(_ type: any ConfigSection.Type) -> [(name: String, markdown: String)] {
        func open<S: ConfigSection>(_ t: S.Type) -> [(name: String, markdown: String)] {
            [(S.section, markdown(S.self))] + S.schema.compactMap(\.nested).flatMap(sectionTables)
        }
        return open(type)
    }

    /// One section's keys: name, default, valid values, meaning. Nested sections and keys
    /// the loader reads itself are left out (they have tables of their own, or prose).
    public static func markdown<S: ConfigSection>(_ type: S.Type) -> String {
        var lines = ["| key | default | valid | meaning |", "|---|---|---|---|"]
        for key in S.schema where key.nested == nil && !key.hidden {
            lines.append("| `\(key.name)` | \(cell(key.defaultText)) | \(cell(key.validText)) | \(cell(key.doc)) |")
        }
        return lines.joined(separator: "\n")
    }

    /// Text for a table cell: `|` escaped.
    static func cell(_ text: String) -> String { text.replacingOccurrences(of: "|", with: "\\|") }

    /// `readme` with every marked table replaced by the generated one; also the names of
    /// generated tables README lacks.
    public static func updating(readme: String) -> (text: String, missing: [String]) {
        var text = readme
        var missing: [String] = []
        for (name, markdown) in tables {
            let open = "<!-- config-table \(name) -->\n", close = "<!-- /config-table -->"
            guard let start = text.range(of: open), let end = text.range(of: close, range: start.upperBound..<text.endIndex) else {
                missing.append(name)
                continue
            }
            text.replaceSubrange(start.upperBound..<end.lowerBound, with: markdown + "\n")
        }
        return (text, missing)
    }
}
