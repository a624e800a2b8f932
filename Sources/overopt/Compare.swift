import ArgumentParser
import Foundation
import OverOpt
import OverOptHDF5

/// `overopt compare DIR --baseline bt`: each variant against the baseline, paired by seed.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare variants with a baseline across seeds: paired differences, intervals, p-values.",
        discussion: """
            Runs are grouped as collect groups them (config minus seed). Within a group each \
            variant is compared with the baseline through per-seed differences (variant − \
            baseline; the variants of a seed share its base policy, data and best-of-n \
            samples): accuracies, best-of-n gold at each n, PPO gold at matched KL, and the \
            gold peak, the KL of the peak, the drop from the peak and the area under gold. \
            Each row gives the mean difference, its 95% t and bootstrap intervals, the wins \
            out of the seeds, and a sign-flip permutation p-value, Holm-corrected over the \
            variants. Metric names: Sources/OverOpt/Experiments/Compare.swift and README.md.
            """)

    @Argument(help: "Folders of run files (*.h5 directly inside) or run files.")
    var paths: [String]

    @Option(help: "The variant every other one is compared with.")
    var baseline = "bt"

    @Option(help: ArgumentHelp("Variants to compare (comma-separated; default: all others).", valueName: "names"))
    var variants: String?

    @Option(help: ArgumentHelp("KL points for PPO gold at matched KL (comma-separated).", valueName: "points"))
    var kl = "1,2,5,10"

    @Option(help: ArgumentHelp("Keep metrics whose names start with one of these (comma-separated), e.g. rm/,bon/gold@.", valueName: "prefixes"))
    var metric: String?

    @Flag(help: "Print Markdown tables.")
    var markdown = false

    @Flag(help: "Print one JSON document.")
    var json = false

    @Option(name: .shortAndLong, help: "Also write the comparison to this HDF5 file (group /compare).")
    var output: String?

    func validate() throws {
        if markdown && json { throw ValidationError("--markdown and --json exclude each other.") }
        guard !paths.isEmpty else { throw ValidationError("give a folder of run files or run files.") }
        for p in kl.split(separator: ",") {
            guard let v = Double(p.trimmingCharacters(in: .whitespaces)), v.isFinite, v > 0 else {
                throw ValidationError("--kl takes positive numbers separated by commas (got '\(kl)').")
            }
        }
    }

    func run() throws {
        let list = { (s: String?) in s?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        let options = CompareOptions(baseline: baseline, variants: list(variants),
                                     klPoints: kl.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces))! },
                                     metrics: list(metric))
        let groups: [GroupComparison] = try readingInput {
            let (runs, skipped) = try readComparedRuns(paths)
            for s in skipped { FileHandle.standardError.write(Data("skipping \(s.path): \(s.reason)\n".utf8)) }
            return try compareRuns(runs, options: options)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            print(String(decoding: try encoder.encode(groups), as: UTF8.self))
        } else {
            print(comparisonTable(groups, markdown: markdown))
        }
        if let output {
            try writingOutput("cannot write '\(output)'") {
                try writeAtomically(to: output) { file in
                    try file.root.setAttribute("kind", "comparison")
                    try file.root.setAttribute("overopt_version", overOptVersion)
                    try writeComparison(groups, to: file.root.createGroup("compare"))
                }
            }
        }
    }
}
