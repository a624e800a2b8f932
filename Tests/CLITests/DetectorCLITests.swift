// InfoRM and the over-optimization detectors through the command line: a tiny run with an
// `inform` and an `ensemble` proxy writes the encoder's checkpoint and each proxy's
// detectors under /ppo/<variant>/detectors; a rerun loads every unit from the stage cache
// to the same datasets, `--load-proxy` of the inform proxy gives its PPO run bit for bit,
// and 2 threads give the datasets of 1.
import Foundation
import Testing
import TestSupport
import OverOptHDF5

@Suite("InfoRM and detectors through overopt run", .serialized) struct DetectorCLITests {
    @Test func informAndEnsembleRunWithDetectorsCacheAndLoad() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let args = tinyRunArguments + ["--set", "proxies=[\"inform\",\"ensemble\"]", "--set", "stages=[\"ppo\"]",
                                       "--set", "ppo.steps=3", "--set", "ppo.eval_every=1", "--set", "detectors.slope_window=2"]
        let first = try runProcess(binary, ["run", "--out", folder.file("a"), "--cache", folder.file("cache")] + args
                                   + ["--set", "save_checkpoints=true"])
        #expect(first.status == 0, "stderr: \(first.stderr)")
        let a = try resultFile(in: folder.file("a"))
        let f = try H5File.open(a)
        let rm = try f.root.group("rm/inform")
        #expect(try rm.stringAttribute("objective") == "inform")
        #expect(try rm.intAttribute("inform_latent_dim") == 16)
        #expect(f.root.contains("rm/inform/checkpoint/members/0/params/rh_mu_w"))
        #expect(f.root.contains("rm/inform/checkpoint/members/0/params/rh_logvar_w"))
        #expect(!(try f.root.group("rm/ensemble")).hasAttribute("inform_latent_dim"))
        #expect(try f.root.group("ppo/inform/detectors").children().sorted() == ["latent_outlier_rate", "proxy_slope"])
        #expect(try f.root.group("ppo/ensemble/detectors").children().sorted() == ["ensemble_disagreement", "proxy_slope"])
        let steps = try f.root.group("ppo/inform").readInt64s("step").values
        let outliers = try f.root.group("ppo/inform/detectors/latent_outlier_rate")
        #expect(try outliers.readDoubles("statistic").values.count == steps.count)
        #expect(try outliers.doubleAttribute("distance_threshold") > 0)
        #expect(outliers.hasAttribute("auroc") && outliers.hasAttribute("gold_lost") && outliers.hasAttribute("threshold"))
        f.close()

        // The same run again: every unit from the cache, the same datasets.
        let second = try runProcess(binary, ["run", "--out", folder.file("b"), "--cache", folder.file("cache")] + args
                                    + ["--set", "save_checkpoints=true"])
        #expect(second.status == 0, "stderr: \(second.stderr)")
        #expect(!second.stderr.contains("ppo eval step"), "a PPO run was recomputed:\n\(second.stderr)")
        #expect(try differingDatasets(a, try resultFile(in: folder.file("b"))) == [])

        // The inform proxy loaded from the first file (a fresh cache): its PPO run, detectors
        // included, is the same bit for bit.
        let third = try runProcess(binary, ["run", "--out", folder.file("c"), "--cache", folder.file("cache2"),
                                            "--load-proxy", "inform=\(a)"] + args + ["--set", "proxies=[\"inform\"]"])
        #expect(third.status == 0, "stderr: \(third.stderr)")
        #expect(!third.stderr.contains("rm inform: 1 member(s)"))
        let x = try datasetValues(a), y = try datasetValues(try resultFile(in: folder.file("c")))
        let keys = x.keys.filter { $0.hasPrefix("/ppo/inform/") }
        #expect(keys.contains("/ppo/inform/detectors/latent_outlier_rate/statistic"))
        for key in keys { #expect(x[key] == y[key], "\(key) differs") }

        // At 2 threads (a fresh cache; the default batches split over two replicas) the
        // same datasets, detectors and InfoRM's sampled latents included.
        let fourth = try runProcess(binary, ["run", "--out", folder.file("d"), "--cache", folder.file("cache3")]
                                    + Array(tinyRunArguments.dropLast(2)) + Array(args.dropFirst(tinyRunArguments.count))
                                    + ["--set", "save_checkpoints=true", "--threads", "2"])
        #expect(fourth.status == 0, "stderr: \(fourth.stderr)")
        #expect(try differingDatasets(a, try resultFile(in: folder.file("d"))) == [])
    }
}
