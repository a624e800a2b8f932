// InfoRM (Miao et al. 2024): the KL of the Gaussian latent to N(0, I) against hand values
// and finite differences; the whole `inform` objective (encoder, reparameterized sample,
// KL term) through the tiny model against finite differences; the variational head's lean
// scoring and latents against the training forward; checkpoints; config resolution.
import Foundation
import Testing
@testable import OverOpt
import OverOptEngine
import OverOptHDF5

/// An inform config with a small latent and a β large enough for the KL term to matter.
func tinyInformConfig(latent: Int = 3, beta: Double = 0.5) -> RewardModelConfig {
    var c = RewardModelConfig()
    c.objective = .inform
    c.informLatentDim = latent
    c.informBeta = beta
    return c
}

@Suite struct InfoRMObjectiveTests {
    @Test func klMatchesHandComputedValues() {
        // N(0, 1) is the prior itself.
        let zero = gaussianKLToStandardNormal(mean: [0, 0], logVariance: [0, 0])
        #expect(zero.kl == 0 && zero.dMean == [0, 0] && zero.dLogVariance == [0, 0])
        // μ = 1, σ² = e: ½(1 + e − 1 − 1) = (e − 1)/2; μ = −2, σ² = 1: ½·4 = 2.
        let k = gaussianKLToStandardNormal(mean: [1, -2], logVariance: [1, 0])
        #expect(abs(k.kl - ((M_E - 1) / 2 + 2)) < 1e-12)
        #expect(k.dMean == [1, -2])
        #expect(abs(k.dLogVariance[0] - (M_E - 1) / 2) < 1e-12 && k.dLogVariance[1] == 0)
    }

    @Test func klGradientsMatchFiniteDifferences() {
        var rng = RNG(seed: 2)
        let mu = (0..<5).map { _ in Double(rng.normal()) }, lv = (0..<5).map { _ in Double(rng.normal()) }
        let k = gaussianKLToStandardNormal(mean: mu, logVariance: lv)
        let h = 1e-6
        for d in 0..<5 {
            var up = mu, down = mu
            up[d] += h; down[d] -= h
            let fdMu = (gaussianKLToStandardNormal(mean: up, logVariance: lv).kl
                        - gaussianKLToStandardNormal(mean: down, logVariance: lv).kl) / (2 * h)
            var lup = lv, ldown = lv
            lup[d] += h; ldown[d] -= h
            let fdLv = (gaussianKLToStandardNormal(mean: mu, logVariance: lup).kl
                        - gaussianKLToStandardNormal(mean: mu, logVariance: ldown).kl) / (2 * h)
            #expect(abs(fdMu - k.dMean[d]) < 1e-6, "∂KL/∂μ_\(d)")
            #expect(abs(fdLv - k.dLogVariance[d]) < 1e-6, "∂KL/∂log σ²_\(d)")
        }
    }

    /// The whole step — encoder, reparameterized sample (the same ε in every evaluation),
    /// reward head, Bradley–Terry and β·KL — against finite differences through the model.
    @Test(arguments: [false, true])
    func informObjectiveGradient(training: Bool) {
        checkObjective(tinyInformConfig(), training: training, label: "inform (training \(training))")
    }

    /// The KL term alone: the engine's backward of dLatent against finite differences of
    /// Σ_b KL(q(z|h_b) ‖ N(0, I)) through the encoder and the trunk.
    @Test func klTermGradientThroughTheEncoder() {
        let m = makeProxyMember(base: tinyBase(), config: tinyInformConfig(), headRNG: RNG(seed: 3))
        let batch = TokenBatch(sequences: tinyPairs().chosen)
        let D = 3
        func kl() -> (value: Double, dMean: [Float], dLogVariance: [Float]) {
            m.forward(batch)
            _ = m.rewardForward()
            let (mu, lv) = m.lastLatents()
            var total = 0.0, dm: [Float] = [], dl: [Float] = []
            for b in 0..<batch.B {
                let k = gaussianKLToStandardNormal(mean: mu[(b * D)..<((b + 1) * D)].map(Double.init),
                                                   logVariance: lv[(b * D)..<((b + 1) * D)].map(Double.init))
                total += k.kl
                dm += k.dMean.map(Float.init); dl += k.dLogVariance.map(Float.init)
            }
            return (total, dm, dl)
        }
        let (e, name) = worstGradientError(m, loss: { kl().value }, backward: {
            let k = kl()
            m.backward(dRewards: nil, dLatent: (k.dMean, k.dLogVariance))
        })
        #expect(e < 3e-2, "KL term: gradient mismatch \(e) in \(name)")
        // The reward read-out gets no gradient from the KL term.
        m.zeroGrad()
        let k = kl()
        m.backward(dLatent: (k.dMean, k.dLogVariance))
        #expect(m.grads.array[m.layout["rh_w"]!.offset] == 0)
        #expect(m.grads.array[m.layout["rh_mu_w"]!.offset] != 0)
    }

    /// The step's loss is the Bradley–Terry loss plus β times the mean KL over the 2P
    /// sequences (recomputed here from the model's latents), and β = 0 leaves Bradley–Terry.
    @Test func lossIsBradleyTerryPlusBetaKL() {
        let cfg = tinyInformConfig(beta: 0.3)
        let m = makeProxyMember(base: tinyBase(), config: cfg, headRNG: RNG(seed: 3))
        let pairs = tinyPairs()
        var rng = RNG(seed: 1)
        let st = pairObjectiveStep(model: m, config: cfg, pairs: pairs, indices: [0, 1, 2], training: false, backward: false, rng: &rng)
        m.forward(TokenBatch(sequences: pairs.chosen + pairs.rejected))
        let r = m.rewardForward().map(Double.init)
        let (mu, lv) = m.lastLatents()
        var bt = 0.0, kl = 0.0
        for j in 0..<3 { bt += bradleyTerryLoss(chosen: r[j], rejected: r[3 + j]).loss / 3 }
        for b in 0..<6 {
            kl += gaussianKLToStandardNormal(mean: mu[(b * 3)..<((b + 1) * 3)].map(Double.init),
                                             logVariance: lv[(b * 3)..<((b + 1) * 3)].map(Double.init)).kl / 6
        }
        #expect(abs(st.rewardLoss - bt) < 1e-5 && abs(st.regularizerLoss - kl) < 1e-5)
        #expect(abs(st.loss - (bt + 0.3 * kl)) < 1e-5)
        #expect(kl > 0.1)
    }
}

@Suite(.serialized) struct InfoRMHeadTests {
    /// Scoring reads the latent mean: the lean forward's scores equal the training forward's
    /// without noise (to rounding) and w·μ + b of the lean latents; training draws z around μ,
    /// reproducibly for a seed.
    @Test func scoringReadsTheLatentMean() {
        let m = makeProxyMember(base: tinyBase(), config: tinyInformConfig(latent: 4), headRNG: RNG(seed: 3))
        var rng = RNG(seed: 8)
        let seqs = (0..<40).map { i in [Int32(1)] + (0..<(1 + i % 9)).map { _ in Int32(2 + rng.int(below: 11)) } }
        m.forward(TokenBatch(sequences: seqs))
        let reference = m.rewardForward()
        let lean = m.rewardScores(seqs)
        let worst = zip(lean, reference).map { abs($0 - $1) / (1 + abs($1)) }.max()!
        #expect(worst < 1e-5)
        let mu = m.rewardLatentMeans(seqs), w = m.tensor("rh_w"), b = m.tensor("rh_b")[0]
        for i in seqs.indices {
            let r = (0..<4).reduce(Double(b)) { $0 + Double(w[$1]) * Double(mu[i * 4 + $1]) }
            #expect(abs(r - Double(lean[i])) < 1e-4 * (1 + abs(r)))
        }
        #expect(zip(mu, m.lastLatents().mean).allSatisfy { abs($0 - $1) < 1e-4 * (1 + abs($1)) })
        var r1 = RNG(seed: 5), r2 = RNG(seed: 5)
        m.forward(TokenBatch(sequences: seqs))
        let noisy1 = m.rewardForward(training: true, rng: &r1)
        let noisy2 = m.rewardForward(training: true, rng: &r2)
        #expect(noisy1 == noisy2)
        #expect(zip(noisy1, reference).contains { abs($0 - $1) > 1e-3 })
    }

    /// A saved inform proxy (every encoder tensor) loads bit for bit and scores the same.
    @Test func checkpointKeepsTheEncoder() throws {
        let m = makeProxyMember(base: tinyBase(), config: tinyInformConfig(latent: 4), headRNG: RNG(seed: 3))
        let path = NSTemporaryDirectory() + "overopt-inform-\(UUID().uuidString).h5"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let f = try H5File.create(path)
        try ProxyRewardModel(name: "inform", members: [m]).save(to: f.root.createGroup("checkpoint"))
        f.close()
        let g = try H5File.open(path)
        defer { g.close() }
        let loaded = try ProxyRewardModel.load(from: g.root.group("checkpoint"))
        #expect(loaded.latentDimension == 4)
        for name in ["rh_mu_w", "rh_mu_b", "rh_logvar_w", "rh_logvar_b", "rh_w", "rh_b"] {
            #expect(loaded.members[0].tensor(name) == m.tensor(name), "\(name)")
        }
        let seqs: [[Int32]] = [[1, 5, 2, 7], [1, 3, 3, 9, 10]]
        #expect(loaded.members[0].rewardScores(seqs) == m.rewardScores(seqs))
    }
}

@Suite struct InfoRMConfigTests {
    @Test func informVariantsResolveTheirKeysAndOthersDropThem() throws {
        let path = try tempConfig("""
            proxies = ["inform", "bt", "inform-wide"]
            [rm]
            inform_beta = 0.1
            [variants.inform-wide]
            objective = "inform"
            inform_latent_dim = 64
            """)
        let c = try ExperimentConfig.load(path: path)
        #expect(c.variants["inform"]?.objective == .inform)
        #expect(c.variants["inform"]?.informLatentDim == RewardModelConfig.defaultInformLatentDim)
        #expect(c.variants["inform"]?.informBeta == 0.1)
        #expect(c.variants["inform-wide"]?.informLatentDim == 64 && c.variants["inform-wide"]?.informBeta == 0.1)
        #expect(c.variants["inform"]?.headKind == .variational(latent: RewardModelConfig.defaultInformLatentDim))
        // bt does not carry InfoRM's keys, so its settings (and cache key) are those of a run without them.
        #expect(c.variants["bt"]?.informLatentDim == nil && c.variants["bt"]?.informBeta == nil)
        #expect(c.variants["bt"] == (try ExperimentConfig.load(path: nil, overrides: ["proxies=[\"bt\"]"])).variants["bt"])
    }

    @Test func badValuesNameTheKey() throws {
        let e1 = configError { _ = try ExperimentConfig.load(path: nil, overrides: ["proxies=[\"inform\"]", "rm.inform_latent_dim=0"]) }
        #expect(e1?.contains("rm.inform_latent_dim") == true)
        let e2 = configError { _ = try ExperimentConfig.load(path: nil, overrides: ["proxies=[\"inform\"]", "rm.inform_beta=-1"]) }
        #expect(e2?.contains("rm.inform_beta") == true)
        let path = try tempConfig("""
            proxies = ["ib"]
            [variants.ib]
            objective = "inform"
            inform_latent_dim = 5000
            """)
        let e3 = configError { _ = try ExperimentConfig.load(path: path) }
        #expect(e3?.contains("variants.ib.inform_latent_dim") == true)
    }
}

/// `--load-proxy` reads only the `variants` of a file's config, so a file written before
/// `[detectors]` (or any other later section) existed still names its proxy's settings.
@Test func aLoadedProxysSettingsNeedOnlyTheVariants() throws {
    let path = NSTemporaryDirectory() + "overopt-loaded-\(UUID().uuidString).h5"
    defer { try? FileManager.default.removeItem(atPath: path) }
    let f = try H5File.create(path)
    defer { f.close() }
    let rm = String(decoding: try JSONEncoder().encode(tinyInformConfig()), as: UTF8.self)
    try f.root.setAttribute("config", #"{"name": "old", "seed": 0, "variants": {"inform": \#(rm)}}"#)
    #expect(try loadedProxyConfig(f.root, name: "inform", path: path) == tinyInformConfig())
    #expect(throws: ExperimentError.self) { _ = try loadedProxyConfig(f.root, name: "bt", path: path) }
}
