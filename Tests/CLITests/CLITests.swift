import Foundation
import Testing
import TestSupport
import OverOptHDF5

/// A small file written by h5py, as a user would make one.
private let h5pyFile = #"""
import h5py, sys
import numpy as np
with h5py.File(sys.argv[1], 'w') as f:
    f.attrs['experiment'] = 'quickstart'
    f.attrs['seed'] = np.int64(7)
    f.attrs['betas'] = np.array([0.9, 0.999])
    f.attrs['long'] = 'x' * 500
    g = f.create_group('rm/bt')
    g['scores'] = np.array([[1.5, 2.5], [3.5, 4.5]], dtype=np.float32)
    g['scores'].attrs['units'] = 'nats'
    g['steps'] = np.arange(100, dtype=np.int64)
    g.create_dataset('texts', data=['a cat', 'ünï'], dtype=h5py.string_dtype())
    g['fixed'] = np.array([b'ab', b'cd'], dtype='S2')
"""#

@Suite("overopt inspect") struct CLITests {
    @Test func printsTheTreeOfAnH5pyFile() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let path = folder.file("from-h5py.h5")
        _ = try runPython(h5pyFile, [path])

        let plain = try runProcess(binary, ["inspect", path])
        #expect(plain.status == 0, "stderr: \(plain.stderr)")
        let lines = plain.stdout.split(separator: "\n").map(String.init)
        for expected in ["/", "  @betas = [0.9, 0.999]", "  @experiment = \"quickstart\"", "  @seed = 7", "  rm/", "    bt/",
                         "      fixed  string [2]", "      scores  float32 [2, 2]", "        @units = \"nats\"",
                         "      steps  int64 [100]", "      texts  string [2]"] {
            #expect(lines.contains(expected), "missing line \(expected.debugDescription) in:\n\(plain.stdout)")
        }
        let long = try #require(lines.first { $0.hasPrefix("  @long = ") })
        #expect(long.count < 100 && long.hasSuffix("…\""))  // long values are shortened

        let withValues = try runProcess(binary, ["inspect", "--values", path])
        #expect(withValues.status == 0)
        for expected in ["      scores  float32 [2, 2]  = [[1.5, 2.5], [3.5, 4.5]]",
                         "      texts  string [2]  = [\"a cat\", \"ünï\"]",
                         "      fixed  string [2]  = [\"ab\", \"cd\"]",
                         "      steps  int64 [100]  = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, … (100 values)]"] {
            #expect(withValues.stdout.contains(expected), "missing \(expected.debugDescription) in:\n\(withValues.stdout)")
        }
    }

    @Test func aMissingFileExitsNonZeroNamingIt() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let path = folder.file("missing.h5")
        let result = try runProcess(binary, ["inspect", path])
        #expect(result.status != 0)
        #expect(result.stderr.contains(path) && result.stderr.contains("no such file"))
        #expect(result.stdout.isEmpty)
    }

    @Test func aNonHDF5FileExitsNonZeroNamingIt() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let path = folder.file("notes.txt")
        try "hello".write(toFile: path, atomically: true, encoding: .utf8)
        let result = try runProcess(binary, ["inspect", path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("'\(path)' is not an HDF5 file"))
    }

    @Test func plotWritesSVGOnlyAndNamesBadPaths() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let summary = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../results/fig2-bon-large-summary.h5").standardized.path
        let ok = try runProcess(binary, ["plot", summary, "--sqrt-kl", "--fits", "--variants", "grm-sft", "-o", folder.file("f.svg")])
        #expect(ok.status == 0, "stderr: \(ok.stderr)")
        let svg = try String(contentsOfFile: folder.file("f.svg"), encoding: .utf8)
        #expect(svg.contains("√KL") && svg.contains("class=\"fit\"") && !svg.contains("data-variant=\"bt\""))
        let cases: [([String], String)] = [
            (["plot", summary, "-o", folder.file("f.png")], "writes SVG only"),
            (["plot", summary, "-o", "/nonexistent/dir/f.svg"], "cannot write /nonexistent/dir/f.svg: no folder /nonexistent/dir"),
            (["plot", folder.file("missing.h5")], "missing.h5: no such file"),
            (["plot", summary, "--variants", "nope", "-o", folder.file("g.svg")], "no variant 'nope'"),
        ]
        for (args, message) in cases {
            let r = try runProcess(binary, args)
            #expect(r.status != 0, "\(args) exited 0")
            #expect(r.stderr.contains(message) && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
            #expect(!r.stderr.contains("NSCocoaErrorDomain"))
        }
        #expect(!FileManager.default.fileExists(atPath: folder.file("f.png")))
    }

    @Test func versionAndHelp() throws {
        let binary = try overoptBinary()
        #expect(try runProcess(binary, ["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0")
        let help = try runProcess(binary, ["--help"])
        #expect(help.status == 0 && help.stdout.contains("inspect"))
    }
}

@Suite("overopt compare") struct CompareCLITests {

    /// The committed Fig. 2 runs: paired rows with intervals, JSON that parses, an HDF5 copy,
    /// and one-line errors for a variant that is not there or a missing folder.
    @Test func comparesTheCommittedRuns() throws {
        let binary = try overoptBinary()
        let runs = packageRoot.appendingPathComponent("results/runs/fig2").path
        let table = try runProcess(binary, ["compare", runs, "--baseline", "bt", "--variants", "grm-sft", "--metric", "rm/id_accuracy,bon/gold@n=256"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("grm-sft against bt, paired over seeds 0, 1, 2"))
        #expect(table.stdout.contains("bon/gold@n=256") && table.stdout.contains("rm/id_accuracy") && table.stdout.contains("/3"))
        let folder = try TemporaryFolder()
        let json = try runProcess(binary, ["compare", runs, "--json", "-o", folder.file("c.h5")])
        #expect(json.status == 0, "\(json.stderr)")
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        #expect(parsed?.first?["baseline"] as? String == "bt")
        let file = try H5File.open(folder.file("c.h5"))
        defer { file.close() }
        let group = try file.root.group("compare")
        #expect(try group.children().count == 1)
        let bad = try runProcess(binary, ["compare", runs, "--baseline", "nope"])
        #expect(bad.status == 2 && bad.stderr.contains("no variant 'nope'"))
        let missing = try runProcess(binary, ["compare", folder.file("absent")])
        #expect(missing.status == 2 && missing.stderr.contains("no such file or folder"))
    }
}

@Suite("overopt report") struct ReportCLITests {

    /// A report of the committed Fig. 2 runs: one page with the mean figure, the comparison,
    /// a figure per seed and sample texts; where Chromium is installed, it renders the page
    /// to a PNG that is not blank.
    @Test func reportsTheCommittedRuns() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let page = folder.file("report.html")
        let r = try runProcess(binary, ["report", packageRoot.appendingPathComponent("results/runs/fig2").path, "-o", page])
        #expect(r.status == 0, "\(r.stderr)")
        let html = try String(contentsOfFile: page, encoding: .utf8)
        #expect(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</html>\n"))
        #expect(html.components(separatedBy: "<svg").count - 1 == 4, "the mean figure and one per seed")
        #expect(html.contains("paired by seed") && html.contains("rm/id_accuracy") && html.contains("bon/gold@n=256"))
        #expect(html.contains("ppo/gold@kl=5") && html.contains("What the optimized policies wrote"))
        #expect(!html.contains("<script") && !html.contains("src=\"http"), "the page stands alone")
        let missing = try runProcess(binary, ["report", folder.file("absent"), "-o", folder.file("x.html")])
        #expect(missing.status == 2 && missing.stderr.contains("no such file or folder"))
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: FileManager.default.isExecutableFile) else {
            print("Chromium is not installed: the report's rendering is not checked")
            return
        }
        let png = folder.file("report.png")
        let shot = try runProcess(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                             "--window-size=1200,1600", "--screenshot=\(png)", "file://\(page)"])
        #expect(shot.status == 0, "\(shot.stderr.suffix(500))")
        let size = (try FileManager.default.attributesOfItem(atPath: png)[.size] as? Int) ?? 0
        #expect(size > 50_000, "a rendered report is a large PNG; got \(size) bytes")
    }
}

@Suite("overopt inspect, damaged files") struct DamagedFileCLITests {

    /// Picks whose datasets disagree in length (once an out-of-bounds read) and sample steps
    /// that do not match the texts give a one-line error naming the group.
    @Test func inspectSamplesRefusesMismatchedDatasets() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let copy = folder.file("damaged.h5")
        try FileManager.default.copyItem(atPath: packageRoot.appendingPathComponent("results/runs/ablations/ablations-seed0-ca371f5c.h5").path,
                                         toPath: copy)
        _ = try runPython("""
            import sys, h5py
            with h5py.File(sys.argv[1], "r+") as f:
                g = f["bon/bt-mlp/picks"]
                del g["n"]
                g["n"] = [1, 4]
            """, [copy])
        let r = try runProcess(binary, ["inspect", copy, "--samples"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("/bon/bt-mlp/picks") && r.stderr.contains("damaged"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
    }
}

@Suite("OpenBLAS core set by the user") struct UserOpenBLASCoreCLITests {
    /// A sweep's environment written for another kind of node (OPENBLAS_CORETYPE=SkylakeX on a
    /// CPU without AVX-512) must not end in an illegal instruction: the core is replaced by
    /// one the CPU runs, with one warning line, and the result names it.
    @Test func aCoreThisCPUCannotRunIsReplacedNotExecuted() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) }
        guard let flags else {
            print("no /proc/cpuinfo flags here: the replacement of an unrunnable OPENBLAS_CORETYPE is not tested")
            return
        }
        let core: String
        if !flags.contains("avx512f") { core = "SkylakeX" }
        else if !flags.contains("avx512_bf16") { core = "Cooperlake" }
        else {
            print("this CPU runs every OpenBLAS core: the replacement of an unrunnable OPENBLAS_CORETYPE is not tested")
            return
        }
        let result = try runProcess("/usr/bin/env", ["OPENBLAS_CORETYPE=\(core)", try overoptBinary(), "bench", "--json", "--repeats", "1"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("warning: OPENBLAS_CORETYPE=\(core) names kernels this CPU") }.count == 1,
                "stderr: \(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let blasCore = report?["blas_core"] as? String ?? ""
        #expect(blasCore.hasSuffix("(chosen by overopt)") && !blasCore.hasPrefix(core), "blas_core: \(blasCore)")
    }
}
