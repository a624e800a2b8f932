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
            from a collect summary: the mean across seeds with a shaded ± sem band, one row per group.
            """)

    @Argument(help: "A run file or a collect summary.")
    var file: String

    @Option(name: .shortAndLong, help: "The SVG file to write.")
    var output = "figure.svg"

    func run() throws {
        let fig: Figure
        do { fig = try figure(file: file) } catch {
            FileHandle.standardError.write(Data("Error: cannot read \(file): \(error)\n".utf8))
            throw ExitCode.failure
        }
        guard !fig.rows.isEmpty else {
            FileHandle.standardError.write(Data("Error: \(file) has no best-of-n or PPO curves\n".utf8))
            throw ExitCode.failure
        }
        try renderSVG(fig).write(toFile: output, atomically: true, encoding: .utf8)
        print("wrote \(output) (\(fig.rows.joined().count) panel(s), \(fig.variants.count) variant(s))")
    }
}
