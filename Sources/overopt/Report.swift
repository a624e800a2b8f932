import ArgumentParser
import Foundation
import OverOpt

/// `overopt report DIR -o report.html`: one self-contained page for a folder of run files.
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write one self-contained HTML page for a folder of run files.",
        discussion: """
            The page holds the mean figure of every group with Gao et al.'s fits, the paired \
            comparison of every variant with the baseline (as overopt compare prints it), one \
            small figure per seed, and PPO sample texts per variant at the lowest and the \
            highest KL with their gold and proxy scores. Figures are inline SVG; the page \
            needs no other file.
            """)

    @Argument(help: "A folder of run files (*.h5 directly inside, e.g. a sweep's output).")
    var directory: String

    @Option(name: .shortAndLong, help: "The HTML file to write.")
    var output = "report.html"

    @Option(help: "The variant every other one is compared with.")
    var baseline = "bt"

    @Option(help: ArgumentHelp("KL points for PPO gold at matched KL (comma-separated).", valueName: "points"))
    var kl = "1,2,5,10"

    @Option(help: "PPO sample texts per variant at each end of the run.")
    var samples = 3

    @Option(help: "The page's title (default: the folder's name).")
    var title: String?

    func validate() throws {
        for p in kl.split(separator: ",") {
            guard let v = Double(p.trimmingCharacters(in: .whitespaces)), v.isFinite, v > 0 else {
                throw ValidationError("--kl takes positive numbers separated by commas (got '\(kl)').")
            }
        }
        if samples < 0 || samples > 100 { throw ValidationError("--samples must be in 0 … 100 (got \(samples)).") }
    }

    func run() throws {
        let options = ReportOptions(baseline: baseline, klPoints: kl.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces))! },
                                    samplesPerEnd: samples, title: title)
        let page = try readingInput("cannot make a report of \(directory)") { try renderReport(directory: directory, options: options) }
        try writingOutput { try writeFileAtomically(page, to: output) }
        print("wrote \(output) (\(page.utf8.count / 1024) KiB)")
    }
}
