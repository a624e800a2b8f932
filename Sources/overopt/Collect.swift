import ArgumentParser
import Foundation
import OverOpt
import OverOptHDF5

/// `overopt collect DIR -o summary.h5`: mean, std and sem across seeds, with Gao et al.'s fits.
struct Collect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarize a folder of run files: mean, std and sem across seeds, with Gao et al.'s fits.",
        discussion: """
            Runs whose stored config is identical except for the seed form a group. Best-of-n \
            curves are averaged on their n grid; PPO curves are interpolated onto a common KL \
            grid from 0 to the smallest largest KL across seeds. Each variant's shifted gold \
            and proxy means are fitted with d(α − βd) (best-of-n) or d(α − β log d) (PPO), \
            d = sqrt(KL). The schema is in README.md and Sources/OverOpt/Experiments/Collect.swift.
            """)

    @Argument(help: "A folder of result files (*.h5, e.g. a sweep's output).")
    var directory: String

    @Option(name: .shortAndLong, help: "The summary file to write.")
    var output = "summary.h5"

    @Option(help: "Points of the common PPO KL grid.")
    var klPoints = 50

    @Flag(help: "Print only the final line.")
    var quiet = false

    func validate() throws {
        if klPoints < 2 || klPoints > 100_000 { throw ValidationError("--kl-points must be in 2 … 100000 (got \(klPoints)).") }
    }

    func run() throws {
        let log = ProgressLog(quiet: quiet)
        let outputFolder = (output as NSString).deletingLastPathComponent
        removeAbandonedTemporaries(in: outputFolder.isEmpty ? "." : outputFolder)
        // A CollectError (no runs, runs that do not fit together) is bad input; a summary that
        // cannot be written, a failure of the work.
        let r = try collectResults(directory: directory, outputPath: output, klPoints: klPoints, log: log.callAsFunction)
        for line in r.scalingLines { print(line) }
        for line in r.detectorLines { print(line) }
        print("collected \(r.runs) run(s) into \(r.groups.count) group(s) → \(output)" + (r.skipped.isEmpty ? "" : "; skipped \(r.skipped.count) file(s)"))
    }
}
