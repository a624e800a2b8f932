// Reward-model objectives as pure functions: values on hand-computed examples and
// gradients against central finite differences; the config's validation messages.
import Testing
import OverOpt
import OverOptEngine

/// Central-difference derivatives of f at (c, r) with respect to c and to r.
func finiteDifference(_ f: (Double, Double) -> Double, _ c: Double, _ r: Double, h: Double = 1e-5) -> (Double, Double) {
    ((f(c + h, r) - f(c - h, r)) / (2 * h), (f(c, r + h) - f(c, r - h)) / (2 * h))
}

@Suite struct RewardModelObjectiveTests {
    // σ(1) = 0.7310585786300049, σ(−1) = 0.2689414213699951, log σ(1) = −0.3132616875182228.
    @Test func bradleyTerryMatchesHandComputedValues() {
        let l = bradleyTerryLoss(chosen: 1, rejected: 0)
        #expect(abs(l.loss - 0.3132616875182228) < 1e-12)            // log(1 + e⁻¹)
        #expect(abs(l.dChosen - -0.2689414213699951) < 1e-12)        // −σ(−1)
        #expect(abs(l.dRejected - 0.2689414213699951) < 1e-12)
        #expect(abs(bradleyTerryLoss(chosen: 3, rejected: 3).loss - 0.6931471805599453) < 1e-12)  // log 2
    }

    @Test func marginShiftsTheArgument() {
        let l = marginLoss(chosen: 1, rejected: 0, margin: 1)         // −log σ(0) = log 2
        #expect(abs(l.loss - 0.6931471805599453) < 1e-12)
        #expect(abs(l.dChosen - -0.5) < 1e-12 && abs(l.dRejected - 0.5) < 1e-12)
        #expect(marginLoss(chosen: 1, rejected: 0, margin: 0) == bradleyTerryLoss(chosen: 1, rejected: 0))
    }

    @Test func labelSmoothingMixesBothOrders() {
        // 0.9·log(1+e⁻¹) + 0.1·log(1+e) = 0.41326168751822284; d = −0.9σ(−1) + 0.1σ(1).
        let l = labelSmoothingLoss(chosen: 1, rejected: 0, epsilon: 0.1)
        #expect(abs(l.loss - 0.41326168751822284) < 1e-12)
        #expect(abs(l.dChosen - -0.16894142136999513) < 1e-12)
        #expect(labelSmoothingLoss(chosen: 1, rejected: 0, epsilon: 0) == bradleyTerryLoss(chosen: 1, rejected: 0))
    }

    @Test func regularizersMatchHandComputedValues() {
        // SFT: −log σ(0.1·(−10)) = log(1+e) = 1.3132616875182228; d = −0.1·σ(1).
        let s = sftRegularizer(chosenLogProb: -10, beta: 0.1)
        #expect(abs(s.loss - 1.3132616875182228) < 1e-12)
        #expect(abs(s.dChosen - -0.07310585786300049) < 1e-12 && s.dRejected == 0)
        // Per-token NLL: 12 nats over 4 tokens.
        let n = sftNLL(chosenLogProb: -12, tokens: 4)
        #expect(n.loss == 3 && n.dChosen == -0.25 && n.dRejected == 0)
        // DPO: z = 0.1·((−10 − −12) − (−11 − −11)) = 0.2; −log σ(0.2) = 0.5981388693815918.
        let d = dpoRegularizer(chosenLogProb: -10, rejectedLogProb: -12, referenceChosenLogProb: -11,
                               referenceRejectedLogProb: -11, beta: 0.1)
        #expect(abs(d.loss - 0.5981388693815918) < 1e-12)
        #expect(abs(d.dChosen - -0.04501660026875222) < 1e-12 && abs(d.dRejected - 0.04501660026875222) < 1e-12)
        // The reference moves the argument: a reference that already prefers y_c by 2 nats cancels it.
        let d0 = dpoRegularizer(chosenLogProb: -10, rejectedLogProb: -12, referenceChosenLogProb: -20,
                                referenceRejectedLogProb: -22, beta: 0.1)
        #expect(abs(d0.loss - 0.6931471805599453) < 1e-12)
        #expect(dpoNoRefRegularizer(chosenLogProb: -10, rejectedLogProb: -12, beta: 0.1) == d)
        #expect(abs(grmCombined(reward: 1, regularizer: 3, alpha: 0.25) - 1.5) < 1e-15)
    }

    @Test func gradientsMatchFiniteDifferences() {
        let cases: [(String, (Double, Double) -> PairLoss)] = [
            ("bt", { bradleyTerryLoss(chosen: $0, rejected: $1) }),
            ("margin", { marginLoss(chosen: $0, rejected: $1, margin: 0.7) }),
            ("label-smoothing", { labelSmoothingLoss(chosen: $0, rejected: $1, epsilon: 0.1) }),
            ("sft", { c, _ in sftRegularizer(chosenLogProb: c, beta: 0.1) }),
            ("sft-nll", { c, _ in sftNLL(chosenLogProb: c, tokens: 7) }),
            ("dpo", { dpoRegularizer(chosenLogProb: $0, rejectedLogProb: $1, referenceChosenLogProb: -9,
                                     referenceRejectedLogProb: -14, beta: 0.3) }),
            ("dpo-noref", { dpoNoRefRegularizer(chosenLogProb: $0, rejectedLogProb: $1, beta: 0.3) }),
        ]
        for (name, f) in cases {
            for (c, r) in [(0.3, -1.2), (-4.0, 2.5), (-25.0, -18.0), (40.0, -3.0)] {
                let a = f(c, r)
                let (fc, fr) = finiteDifference({ f($0, $1).loss }, c, r)
                #expect(abs(a.dChosen - fc) < 1e-6 && abs(a.dRejected - fr) < 1e-6,
                        "\(name) at (\(c), \(r)): analytic (\(a.dChosen), \(a.dRejected)) vs numeric (\(fc), \(fr))")
            }
        }
    }

    @Test func aFlippedLabelFlipsTheGradient() {
        // Label noise swaps chosen and rejected: the reward gradient changes sign and
        // L(flipped) − L(clean) = Δr for Bradley–Terry (−log σ(−Δ) + log σ(Δ) = Δ).
        let clean = bradleyTerryLoss(chosen: 0.8, rejected: -0.4)
        let flipped = bradleyTerryLoss(chosen: -0.4, rejected: 0.8)
        #expect(clean.dChosen < 0 && flipped.dRejected > 0)   // the same response is pushed the other way
        #expect(abs(flipped.loss - clean.loss - 1.2) < 1e-12)
    }

    @Test func validationNamesTheKey() {
        func message(_ edit: (inout RewardModelConfig) -> Void) -> String {
            var c = RewardModelConfig()
            edit(&c)
            do { try c.validate(); return "" } catch { return "\(error)" }
        }
        #expect(message { _ in } == "")
        #expect(message { $0.alpha = 1.5 }.contains("rm.alpha"))
        #expect(message { $0.smoothing = 0.5 }.contains("rm.smoothing"))
        #expect(message { $0.loraRank = 0 }.contains("rm.lora_rank"))
        #expect(message { $0.batchSize = 0 }.contains("rm.batch_size"))
        #expect(message { $0.objective = .frozen; $0.finetune = .lora }.contains("rm.finetune"))
    }

    @Test func configKeysAreSnakeCaseWithDefaults() throws {
        let tree = try encodeTree(RewardModelConfig())
        for key in ["objective", "regularizer", "alpha", "beta", "margin_scale", "smoothing", "head", "head_hidden",
                    "head_dropout", "ensemble_size", "combiner", "uwo_lambda", "finetune", "lora_rank", "lora_alpha",
                    "lora_dropout", "epochs", "batch_size", "learning_rate", "warmup_fraction", "max_grad_norm",
                    "weight_decay", "eval_batch_size"] {
            #expect(tree[key] != nil, "missing key \(key)")
        }
        #expect(tree.count == 23)
        var user = tree
        user["objective"] = "label-smoothing"; user["regularizer"] = "dpo-noref"
        let c = try decodeTree(RewardModelConfig.self, from: user, source: "test")
        #expect(c.objective == .labelSmoothing && c.regularizer == .dpoNoRef)
    }

    @Test func ensembleCombinersByHand() {
        // Scores 1, 2, 6: mean 3, min 1, population variance 14/3, uwo(λ = 0.5) = 3 − 7/3.
        #expect(combineEnsemble([1, 2, 6], combiner: .mean, uwoLambda: 0.5) == 3)
        #expect(combineEnsemble([1, 2, 6], combiner: .min, uwoLambda: 0.5) == 1)
        #expect(abs(combineEnsemble([1, 2, 6], combiner: .uwo, uwoLambda: 0.5) - (3 - 7.0 / 3)) < 1e-12)
        #expect(combineEnsemble([4], combiner: .uwo, uwoLambda: 2) == 4)
    }
}
