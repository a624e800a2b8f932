import ArgumentParser
import Foundation
import OverOpt
import OverOptHDF5

/// `overopt inspect FILE.h5`: prints a file's groups, datasets and attributes as an indented tree.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print an HDF5 file's groups, datasets and attributes as a tree.",
        discussion: """
            Groups end in "/", datasets show their type and shape, attributes start with "@". \
            Long values are shortened with "…". With --samples, prints the sample texts a run \
            recorded instead (best-of-n picks at several n, PPO samples by step) with their scores.
            """
    )

    @Argument(help: "The HDF5 file to inspect.")
    var file: String

    @Flag(help: "Also print the values of datasets (all of a small one, the first few of a large one).")
    var values = false

    @Flag(help: "Print the run's recorded sample texts with their proxy and gold scores.")
    var samples = false

    @Option(help: "With --samples: only this proxy variant.")
    var variant: String?

    func run() throws {
        if samples {
            print(try readingInput { try describeSamples(file: file, variant: variant) })
            return
        }
        let h5 = try readingInput { try H5File.open(file) }
        defer { h5.close() }
        var lines = [file, "/"]
        describe(group: h5.root, depth: 1, into: &lines)
        print(lines.joined(separator: "\n"))
    }

    /// Appends the group's attributes, then its children (groups recursively), indented by `depth`.
    private func describe(group: H5Group, depth: Int, into lines: inout [String]) {
        let indent = String(repeating: "  ", count: depth)
        describeAttributes(of: group, on: nil, indent: indent, into: &lines)
        let children: [String]
        do { children = try group.children() } catch {
            lines.append(indent + "(cannot list: \(firstLine(error)))")
            return
        }
        for name in children {
            if group.isGroup(name) {
                lines.append(indent + name + "/")
                do { describe(group: try group.group(name), depth: depth + 1, into: &lines) } catch {
                    lines.append(indent + "  (cannot open: \(firstLine(error)))")
                }
            } else if let info = try? group.datasetInfo(name) {
                var line = indent + name + "  " + info.typeDescription + " " + shapeText(info.shape)
                if let dims = try? group.dimensionNames(of: name), dims.contains(where: { $0 != nil }) {
                    line += " (" + dims.map { $0 ?? "–" }.joined(separator: ", ") + ")"
                }
                if values { line += "  = " + datasetValues(group, name, info) }
                lines.append(line)
                describeAttributes(of: group, on: name, indent: indent + "  ", into: &lines)
            } else {
                lines.append(indent + name + "  (not a group or dataset, or an unresolvable link)")
            }
        }
    }

    /// Attributes HDF5's dimension-scale API maintains; the dimensions show on the dataset's line instead.
    private static let dimensionScaleAttributes: Set<String> = ["DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME"]

    private func describeAttributes(of group: H5Group, on object: String?, indent: String, into lines: inout [String]) {
        for name in (try? group.attributeNames(on: object)) ?? [] where object == nil || !Self.dimensionScaleAttributes.contains(name) {
            lines.append(indent + "@" + name + " = " + attributeValue(group, name, on: object))
        }
    }

    private func attributeValue(_ group: H5Group, _ name: String, on object: String?) -> String {
        do {
            let info = try group.attributeInfo(name, on: object)
            let scalar = info.shape.isEmpty || info.shape == [1]
            switch info.typeDescription {
            case "string":
                let strings = try group.stringArrayAttribute(name, on: object)
                return scalar ? quoted(strings[0]) : list(strings.map(quoted))
            case let type where type.hasPrefix("int") || type.hasPrefix("uint"):
                let numbers = try group.intArrayAttribute(name, on: object)
                return scalar ? "\(numbers[0])" : list(numbers.map { "\($0)" })
            case let type where type.hasPrefix("float"):
                let numbers = try group.doubleArrayAttribute(name, on: object)
                return scalar ? "\(numbers[0])" : list(numbers.map { "\($0)" })
            case "enum" where scalar:
                if let flag = try? group.boolAttribute(name, on: object) { return flag ? "true" : "false" }
                return "(enum scalar)"
            default:
                return "(\(info.typeDescription) \(shapeText(info.shape)))"
            }
        } catch {
            return "(unreadable: \(firstLine(error)))"
        }
    }

    private func datasetValues(_ group: H5Group, _ name: String, _ info: (shape: [Int], typeDescription: String)) -> String {
        let type = info.typeDescription
        let items: [String]
        do {
            if type == "string" {
                items = try group.readStrings(name).map(quoted)
            } else if type.hasPrefix("int") || type.hasPrefix("uint") {
                items = try group.readInt64s(name).values.map { "\($0)" }
            } else if type == "float32" {
                items = try group.readFloats(name).values.map { "\($0)" }
            } else if type.hasPrefix("float") {
                items = try group.readDoubles(name).values.map { "\($0)" }
            } else {
                return "(values of type \(type) not shown)"
            }
        } catch {
            return "(unreadable: \(firstLine(error)))"
        }
        if info.shape.isEmpty, let only = items.first { return only }
        if info.shape.count > 1, items.count <= 20 { return nested(items[...], shape: info.shape[...]) }
        return list(items)
    }

    /// "[a, b, c]" for up to 20 items; the first 10 then "… (N values)" for more.
    private func list(_ items: [String]) -> String {
        let shown = items.count <= 20 ? items : Array(items.prefix(10)) + ["… (\(items.count) values)"]
        return "[" + shown.joined(separator: ", ") + "]"
    }

    /// Row-major items as nested lists: "[[1, 2], [3, 4]]".
    private func nested(_ items: ArraySlice<String>, shape: ArraySlice<Int>) -> String {
        guard let first = shape.first, shape.count > 1 else { return "[" + items.joined(separator: ", ") + "]" }
        let stride = shape.dropFirst().reduce(1, *)
        let rows = (0..<first).map { row in
            nested(items[(items.startIndex + row * stride)..<(items.startIndex + (row + 1) * stride)], shape: shape.dropFirst())
        }
        return "[" + rows.joined(separator: ", ") + "]"
    }

    private func shapeText(_ shape: [Int]) -> String {
        shape.isEmpty ? "scalar" : "[" + shape.map(String.init).joined(separator: ", ") + "]"
    }

    /// A string in double quotes with escapes, cut to 80 characters.
    private func quoted(_ text: String) -> String {
        var escaped = text.replacingOccurrences(of: "\\", with: "\\\\")
            .replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
            .replacingOccurrences(of: "\t", with: "\\t")
        if escaped.count > 80 { escaped = String(escaped.prefix(79)) + "…" }
        return "\"" + escaped + "\""
    }

    private func firstLine(_ error: Error) -> String {
        String(describing: error).split(separator: "\n").first.map(String.init) ?? ""
    }
}
