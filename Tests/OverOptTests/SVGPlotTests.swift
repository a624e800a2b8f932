// SVGPlotTests.swift — the figure of a run file and of a collect summary is well-formed
// XML with one path per variant and curve in each panel, shifted to start at 0.

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import OverOptHDF5
@testable import OverOpt

/// Parses `svg` as XML and returns every element named `path`.
private func paths(in svg: String) throws -> [XMLElement] {
    let doc = try XMLDocument(xmlString: svg)
    #expect(doc.rootElement()?.name == "svg")
    func walk(_ e: XMLElement) -> [XMLElement] {
        (e.localName == "path" ? [e] : []) + (e.children ?? []).compactMap { $0 as? XMLElement }.flatMap(walk)
    }
    return doc.rootElement().map(walk) ?? []
}

/// An attribute's value (through `attributes`: on Linux `attribute(forName:)` misses plain
/// attributes of elements in a default namespace).
private func attribute(_ e: XMLElement, _ name: String) -> String? {
    e.attributes?.first { $0.name == name }?.stringValue
}

@Test func runFigureHasOnePathPerVariantAndCurve() throws {
    let dir = try temporaryFolder("plot")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try writeToyRun("\(dir)/r.h5", seed: 3, goldAtN: [0.5, 1, 0.8], ppoGold: [2, 3, 1], variants: ["bt", "grm-sft & <x>"])
    let fig = try figure(file: "\(dir)/r.h5")
    #expect(fig.rows.count == 1 && fig.rows[0].map(\.title) == ["Best-of-n", "PPO"])
    // Shifted so that the initial policy is 0.
    #expect(fig.rows[0].allSatisfy { $0.series.allSatisfy { $0.y.first == 0 } })
    let svg = renderSVG(fig)
    let all = try paths(in: svg)
    let curves = all.filter { attribute($0, "class") == "curve" }
    #expect(curves.count == 2 * 2 * 2)   // panels × variants × {gold, proxy}
    #expect(all.filter { attribute($0, "class") == "band" }.isEmpty)
    for v in ["bt", "grm-sft & <x>"] {
        for c in ["gold", "proxy"] {
            #expect(curves.filter { attribute($0, "data-variant") == v && attribute($0, "data-curve") == c }.count == 2)
        }
    }
    #expect(curves.filter { attribute($0, "stroke-dasharray") != nil }.allSatisfy { attribute($0, "data-curve") == "proxy" })
}

@Test func summaryFigureHasBandsAndARowPerGroup() throws {
    let dir = try temporaryFolder("plot-summary")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try writeToyRun("\(dir)/a0.h5", seed: 0, goldAtN: [0, 1, 2])
    try writeToyRun("\(dir)/a1.h5", seed: 1, goldAtN: [0, 2, 1])
    try writeToyRun("\(dir)/b0.h5", seed: 0, noise: 0.25, goldAtN: [0, 1, 1])
    try writeToyRun("\(dir)/b1.h5", seed: 1, noise: 0.25, goldAtN: [0, 1, 3])
    _ = try collectResults(directory: dir, outputPath: "\(dir)/s.h5", klPoints: 5)
    let fig = try figure(file: "\(dir)/s.h5")
    #expect(fig.rows.count == 2)
    let all = try paths(in: renderSVG(fig))
    #expect(all.filter { attribute($0, "class") == "curve" }.count == 2 * 2 * 2)   // groups × panels × curves
    #expect(all.filter { attribute($0, "class") == "band" }.count == 2 * 2 * 2)
}

@Test func niceTicksAreRoundAndCoverTheRange() {
    #expect(niceTicks(lo: 0, hi: 4.6) == [0, 1, 2, 3, 4])
    let t = niceTicks(lo: -0.3, hi: 0.9)
    #expect(t.count == 6 && zip(t, [-0.2, 0, 0.2, 0.4, 0.6, 0.8]).allSatisfy { abs($0 - $1) < 1e-12 })
}

@Test func optionsChooseVariantsTakeTheSquareRootOfKLAndDrawFits() throws {
    let dir = try temporaryFolder("plot-options")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try writeToyRun("\(dir)/r.h5", seed: 3, goldAtN: [0.5, 1, 0.8], ppoKL: [0, 1, 4], ppoGold: [2, 3, 1],
                    variants: ["bt", "grm-sft"])
    let plain = try figure(file: "\(dir)/r.h5")
    let fig = try figure(file: "\(dir)/r.h5", options: FigureOptions(variants: ["grm-sft"], sqrtKL: true, fits: true,
                                                                      title: "Figure 2"))
    #expect(fig.title == "Figure 2")
    #expect(fig.variants == ["grm-sft"])
    for (p, q) in zip(fig.rows[0], plain.rows[0]) {
        let gold = try #require(p.series.first { $0.curve == "gold" })
        let reference = try #require(q.series.first { $0.curve == "gold" && $0.variant == "grm-sft" })
        #expect(zip(gold.x, reference.x).allSatisfy { abs($0 - $1.squareRoot()) < 1e-12 })
        #expect(p.xLabel.contains("√KL"))
        #expect(Set(p.series.map(\.curve)) == ["gold", "proxy", "gold_fit", "proxy_fit"])
        // The fit passes through the origin and ends where the curve's KL ends.
        let fit = try #require(p.series.first { $0.curve == "gold_fit" })
        #expect(fit.y.first == 0 && abs(fit.x.last! - gold.x.last!) < 1e-12)
    }
    let svg = renderSVG(fig)
    #expect(try paths(in: svg).filter { attribute($0, "class") == "fit" }.count == 4)
    #expect(svg.contains("Gao et al. fit"))
    #expect(throws: PlotError.self) { try figure(file: "\(dir)/r.h5", options: FigureOptions(variants: ["nope"])) }
}

@Test func summaryRowsAreLabelledByTheConfigKeysThatDiffer() throws {
    #expect(groupLabels(names: ["a", "b"], configs: [#"{"data": {"label_noise": 0}, "seed": 1}"#,
                                                     #"{"data": {"label_noise": 0.25}, "seed": 2}"#])
            == ["label_noise = 0", "label_noise = 0.25"])
    #expect(groupLabels(names: ["x"], configs: [#"{"data": {"label_noise": 0}}"#]) == ["x"])
    // A variant's resolved settings follow from the run's keys: only the run's key labels the row.
    let sizes = ["xl", "tiny", "large", "small"].map {
        #"{"base": {"preset": "small"}, "rm": {"base": "\#($0)"}, "variants": {"bt": {"base": "\#($0)"}}}"#
    }
    #expect(groupLabels(names: ["a", "b", "c", "d"], configs: sizes)
            == ["rm.base = xl", "rm.base = tiny", "rm.base = large", "rm.base = small"])
    #expect(groupLabels(names: ["a", "b"], configs: [#"{"variants": {"bt": {"margin": 1}}}"#, #"{"variants": {"bt": {"margin": 2}}}"#])
            == ["margin = 1", "margin = 2"])
    #expect(groupLabels(names: ["a", "b"], configs: [#"{"proxies": ["bt"], "ppo": {"tempered": true}}"#,
                                                     #"{"proxies": ["bt", "grm-sft"], "ppo": {"tempered": false}}"#])
            == ["tempered = true, proxies = [bt]", "tempered = false, proxies = [bt, grm-sft]"])
    // Rows in the order of the values: along the preset ladder, numerically, then by the next key.
    #expect(naturalGroupOrder(configs: sizes) == [1, 3, 2, 0])
    let pairs = [8000, 500, 4000, 1000].map { #"{"data": {"train_pairs": \#($0)}}"# }
    #expect(naturalGroupOrder(configs: pairs) == [1, 3, 2, 0])
    let two = [(0.25, 2), (0, 2), (0.25, 1), (0, 1)].map { #"{"data": {"label_noise": \#($0.0)}, "seed_like": \#($0.1)}"# }
    #expect(naturalGroupOrder(configs: two) == [3, 1, 2, 0])
    let dir = try temporaryFolder("plot-labels")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try writeToyRun("\(dir)/a0.h5", seed: 0, goldAtN: [0, 1, 2])
    try writeToyRun("\(dir)/b0.h5", seed: 0, noise: 0.25, goldAtN: [0, 1, 1])
    _ = try collectResults(directory: dir, outputPath: "\(dir)/s.h5", klPoints: 5)
    let titles = try figure(file: "\(dir)/s.h5").rows.joined().map(\.title)
    #expect(Set(titles) == ["Best-of-n · label_noise = 0", "PPO · label_noise = 0", "Best-of-n · label_noise = 0.25",
                            "PPO · label_noise = 0.25"], "\(titles)")
}

@Test func aRewardModelOnlySummaryGivesAccuracyAgainstTrainingPairs() throws {
    let dir = try temporaryFolder("plot-accuracy")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for (i, (pairs, seed, acc)) in [(1500, 0, 0.6), (1500, 1, 0.62), (12000, 0, 0.8), (12000, 1, 0.84)].enumerated() {
        try writeAtomically(to: "\(dir)/r\(i).h5") { f in
            try f.root.setAttribute("config", #"{"data" : {"train_pairs" : \#(pairs)}, "name" : "size", "seed" : \#(seed)}"#)
            try f.root.setAttribute("seed", Int64(seed))
            try f.root.setAttribute("name", "size")
            let rm = try f.root.createGroup("rm/bt")
            try rm.write("id_accuracy", [acc], shape: [])
            try rm.write("ood_accuracy_mean", [acc - 0.05], shape: [])
            try f.root.setAttribute("complete", true)
        }
    }
    _ = try collectResults(directory: dir, outputPath: "\(dir)/s.h5")
    let fig = try figure(file: "\(dir)/s.h5")
    let panel = try #require(fig.rows.first?.first)
    #expect(panel.xLabel == "data.train_pairs")
    let id = try #require(panel.series.first { $0.curve == "id" })
    #expect(id.x == [1500, 12000] && abs(id.y[0] - 0.61) < 1e-12 && abs(id.y[1] - 0.82) < 1e-12)
    #expect(abs(id.band![1] - 0.02) < 1e-12)   // sem of 0.80, 0.84
    #expect(panel.series.contains { $0.curve == "ood" })
    #expect(renderSVG(fig).contains("OOD accuracy"))
}

@Test func theLegendIsWideEnoughForItsLongestLabel() throws {
    let dir = try temporaryFolder("plot-legend")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let long = "a-rather-long-variant-name-of-forty-chars"
    try writeToyRun("\(dir)/r.h5", seed: 3, goldAtN: [0.5, 1, 0.8], ppoGold: [2, 3, 1], variants: ["bt", long])
    let fig = try figure(file: "\(dir)/r.h5")
    let doc = try XMLDocument(xmlString: renderSVG(fig))
    let width = try #require(doc.rootElement().flatMap { attribute($0, "width") }.flatMap { Double($0) })
    // Two panels of 440 px, then the legend: a 36-px line sample and the label at ≈ 7 px a
    // character must end inside the figure.
    #expect(width >= 2 * 440 + 36 + 7 * Double(long.count))
    let short = try figure(file: "\(dir)/r.h5", options: FigureOptions(variants: ["bt"]))
    #expect(try XMLDocument(xmlString: renderSVG(short)).rootElement().flatMap { attribute($0, "width") } == "\(2 * 440 + 170)")
}
