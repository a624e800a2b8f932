// SVGPlotTests.swift — the figure of a run file and of a collect summary is well-formed
// XML with one path per variant and curve in each panel, shifted to start at 0.

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
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
