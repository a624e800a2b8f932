import ArgumentParser
import Foundation
import OverOpt

/// `overopt plot FILE.h5 -o fig.svg`: the paper-style over-optimization figure.
struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw gold (solid) and proxy (dashed) against KL as a self-contained SVG.",
        discussion: """
            One colour per proxy variant; a panel for best-of-n and one for PPO; scores shifted \
            so the initial policy (n = 1, step 0) is 0. From a run file: that seed's curves; \
            from a collect summary: the mean across seeds with a shaded ± sem band, one row per \
            group, labelled by the config keys that differ between the groups. A summary of \
            reward models only (Fig. 1 style) gives ID and OOD accuracy against the config key \
            that differs between its groups (e.g. data.train_pairs). Writes SVG only; \
            experiments/plot.py writes PNG and PDF with the same options.
            """)

    @Argument(help: "A run file or a collect summary.")
    var file: String

    @Option(name: .shortAndLong, help: "The SVG file to write (must end in .svg).")
    var output = "figure.svg"

    @Option(help: "Only these proxy variants, comma-separated, in this order (e.g. bt,grm-sft).")
    var variants: String?

    @Flag(name: .customLong("sqrt-kl"), help: "Plot against √KL, as Gao et al. do, instead of KL.")
    var sqrtKL = false

    @Flag(help: "Overlay Gao et al.'s fits (thin dotted): d(α − βd) for best-of-n, d(α − β log d) for PPO, d = √KL.")
    var fits = false

    @Option(help: "The figure's title (default: the file name).")
    var title: String?

    @Flag(help: "From a summary's /scaling: gold α and β of Gao et al.'s fits against the swept key (log axis for rm.base and data.train_pairs), with bootstrap intervals.")
    var scaling = false

    func run() throws {
        guard (output as NSString).pathExtension.lowercased() == "svg" else {
            throw BadInput("cannot write \(output): overopt plot writes SVG only; name the output *.svg (experiments/plot.py writes PNG and PDF)")
        }
        let list = variants?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let options = FigureOptions(variants: list, sqrtKL: sqrtKL, fits: fits, title: title, scaling: scaling)
        let fig = try readingInput("cannot read \(file)") { try figure(file: file, options: options) }
        guard !fig.rows.isEmpty else { throw BadInput("\(file) has no best-of-n or PPO curves") }
        try writingOutput { try writeFileAtomically(renderSVG(fig), to: output) }
        print("wrote \(output) (\(fig.rows.joined().count) panel(s), \(fig.variants.count) variant(s))")
    }
}

/// Writes `text` to `path` through a temporary file in the same folder and a rename, so an
/// interrupted write leaves no partial file. Errors name the path and the system's reason.
func writeFileAtomically(_ text: String, to path: String) throws {
    struct WriteError: Error, CustomStringConvertible { let description: String }
    let folder = (path as NSString).deletingLastPathComponent
    var isFolder: ObjCBool = false
    if !folder.isEmpty, !FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) || !isFolder.boolValue {
        throw WriteError(description: "cannot write \(path): no folder \(folder)")
    }
    let temporary = (folder.isEmpty ? "" : folder + "/") + ".\((path as NSString).lastPathComponent).tmp-\(getpid())"
    guard let handle = fopen(temporary, "w") else {
        throw WriteError(description: "cannot write \(path): \(String(cString: strerror(errno)))")
    }
    let bytes = Array(text.utf8)
    let written = fwrite(bytes, 1, bytes.count, handle)
    let closed = fclose(handle)
    guard written == bytes.count, closed == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        throw WriteError(description: "cannot write \(path): \(reason)")
    }
    guard rename(temporary, path) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        throw WriteError(description: "cannot write \(path): \(reason)")
    }
}
