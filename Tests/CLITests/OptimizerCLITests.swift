// The policy optimizers through the command line: a tiny run with PPO, GRPO and RLOO writes
// /ppo, /grpo and /rloo groups with the same evaluation datasets (described alike), the
// summary table lists them, `collect` summarizes them; bad [grpo]/[rloo] keys are refused.
import Foundation
import Testing
import TestSupport
import OverOptHDF5

@Suite("policy optimizers through the CLI", .serialized) struct OptimizerCLITests {
    @Test func aTinyRunWritesGRPOAndRLOOGroupsLikePPOs() throws {
        let binary = try overoptBinary()
        let folder = try TemporaryFolder()
        let args = tinyRunArguments + ["--set", "proxies=[\"bt\"]", "--set", "stages=[\"ppo\",\"grpo\",\"rloo\",\"dpo\"]",
                                       "--set", "dpo.steps=2", "--set", "dpo.eval_every=2", "--set", "dpo.eval_prompts=8",
                                       "--set", "grpo.steps=2", "--set", "grpo.prompts_per_step=4", "--set", "grpo.minibatch_size=8",
                                       "--set", "grpo.eval_prompts=8", "--set", "grpo.epochs=1",
                                       "--set", "rloo.steps=2", "--set", "rloo.prompts_per_step=4", "--set", "rloo.minibatch_size=8",
                                       "--set", "rloo.eval_prompts=8"]
        let r = try runProcess(binary, ["run", "--out", folder.file("out"), "--cache", folder.file("cache")] + args)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect((r.stdout + r.stderr).contains("grpo bt: grpo step 2/2"), "\(r.stderr)")
        #expect(r.stdout.contains("│ GRPO KL") && r.stdout.contains("│ RLOO KL") && r.stdout.contains("dpo/dpo"), "\(r.stdout)")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.file("out")).filter { $0.hasSuffix(".h5") }
        try #require(files.count == 1)
        let file = try H5File.open(folder.file("out/" + files[0]))
        let ppo = try file.root.group("ppo/bt")
        let evaluation = ["step", "kl", "kl_k2", "kl_k3", "proxy", "gold", "gold_tone", "length", "entropy", "sample_text", "sample_gold"]
        for (stage, group) in [("grpo", "bt"), ("rloo", "bt"), ("dpo", "dpo")] {
            let g = try file.root.group("\(stage)/\(group)")
            for name in evaluation {
                #expect(g.contains(name), "/\(stage)/\(group)/\(name)")
                #expect(try g.stringAttribute("units", on: name) == ppo.stringAttribute("units", on: name), "\(stage) \(name)")
            }
            #expect(try g.readInt64s("step").values == [0, 2])
            #expect(try g.readDoubles("kl").values[0] == 0)
            // Evaluated with PPO's sampling stream: the same step-0 samples and scores.
            #expect(try g.readDoubles("gold").values[0] == ppo.readDoubles("gold").values[0], "\(stage)")
            #expect(try g.readStrings("sample_text")[0] == ppo.readStrings("sample_text")[0], "\(stage)")
            #expect(try g.stringAttribute("long_name", on: "gold").contains(stage.uppercased()))
            #expect(!g.contains("value_loss"))
        }
        file.close()
        // collect summarizes each optimizer on its own KL grid.
        let c = try runProcess(binary, ["collect", folder.file("out"), "-o", folder.file("summary.h5")])
        #expect(c.status == 0, "stderr: \(c.stderr)")
        let summary = try H5File.open(folder.file("summary.h5"))
        defer { summary.close() }
        let group = try summary.root.group("groups").children()[0]
        for path in ["ppo/bt", "grpo/bt", "rloo/bt", "dpo/dpo"] {
            #expect(summary.root.contains("groups/\(group)/\(path)/gold_shifted"), "summary \(path)")
        }
        // The report shows every optimizer's samples and compares at matched KL for each.
        let report = try runProcess(binary, ["report", folder.file("out"), "-o", folder.file("report.html"), "--baseline", "bt"])
        #expect(report.status == 0, "stderr: \(report.stderr)")
        let html = try String(contentsOfFile: folder.file("report.html"), encoding: .utf8)
        for label in ["<td>bt</td>", "<td>grpo bt</td>", "<td>rloo bt</td>", "<td>dpo dpo</td>"] {
            #expect(html.contains(label), "report samples: \(label)")
        }
        // A second run takes every optimizer unit from the cache.
        let again = try runProcess(binary, ["run", "--out", folder.file("out2"), "--cache", folder.file("cache")] + args)
        #expect(again.status == 0)
        let cached = try FileManager.default.contentsOfDirectory(atPath: folder.file("cache"))
        for stage in ["ppo", "grpo", "rloo", "dpo"] { #expect(cached.contains { $0.hasPrefix("\(stage)-") && $0.hasSuffix(".h5") }, "\(cached)") }
        #expect(!again.stderr.contains("grpo step 2/2") && !again.stdout.contains("grpo step 2/2"))
    }

    @Test func badOptimizerKeysAreRefusedNamingTheKey() throws {
        let binary = try overoptBinary()
        for (set, expected) in [("grpo.group_size=1", "grpo.group_size"), ("rloo.k=0", "rloo.k"),
                                ("grpo.kl_estimator=\"k5\"", "kl_estimator"), ("grpo.clip=0.1", "clip"),
                                ("dpo.loss=\"kto\"", "loss"), ("dpo.beta=0", "dpo.beta"), ("stages=[\"ppo\",\"dpo2\"]", "stages")] {
            let r = try runProcess(binary, ["run", "--set", set, "--out", "/tmp"])
            #expect(r.status != 0, "\(set)")
            #expect(r.stderr.contains(expected), "\(set): \(r.stderr)")
        }
    }
}
