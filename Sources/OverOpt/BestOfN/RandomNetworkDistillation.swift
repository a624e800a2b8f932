// RandomNetworkDistillation.swift — the prediction-error model of pessimistic best-of-n
// ("caution"; Yu, Wu and Block 2026), in the spirit of random network distillation (Burda
// et al. 2019, arXiv 1810.12894): a fixed, randomly initialized target network f maps a
// proxy hidden state to a vector, and a small predictor g is trained to reproduce f on
// base-policy responses. On responses like those (typical ones) g's error is small; on
// atypical responses — the ones a hacked proxy scores highest — it is large.
//
//     x    = (h − μ) / σ                          the proxy's last hidden state, standardized
//                                                 with the training set's mean and std
//     f(x) = tanh(A x)                            A: k×C, entries N(0, 1/C), fixed
//     g(x) = V₂ relu(V₁ x + b₁) + b₂              V₁: m×C, V₂: k×m (the trained predictor)
//     e(x) = (1/k) Σ_o (g_o(x) − f_o(x))²         the prediction error
//
// Training minimizes the mean of ½·e over the training states with Adam (exact gradients,
// `rndLossAndGradient`, checked against finite differences in the tests). Errors are
// reported relative to the mean training error, so the caution coefficient c is in proxy
// reward per unit of "typical" error. Pure math on plain arrays; the best-of-n stage
// gathers the hidden states and decides which samples train and which are scored.

import Foundation
import OverOptEngine

/// Sizes and training settings of the predictor (fixed: the rule's strength is `caution_coef`).
public struct RNDSettings: Sendable, Equatable {
    /// k: outputs of the target network.
    public var outputs = 16
    /// m: hidden units of the predictor.
    public var hidden = 32
    /// Passes over the training states.
    public var epochs = 12
    public var batchSize = 64
    public var learningRate = 3e-3
    /// At most this many training states (a deterministic subsample above it).
    public var maxTrainStates = 4096
    public init() {}
}

/// The predictor's parameters, flattened as [V₁ (m×C), b₁ (m), V₂ (k×m), b₂ (k)].
public struct RNDShapes: Sendable, Equatable {
    public let inputs: Int, hidden: Int, outputs: Int
    public var count: Int { hidden * inputs + hidden + outputs * hidden + outputs }
    var v1: Int { 0 }
    var b1: Int { hidden * inputs }
    var v2: Int { hidden * inputs + hidden }
    var b2: Int { hidden * inputs + hidden + outputs * hidden }
}

/// The target network's outputs f(x) = tanh(A x) for one standardized state.
public func rndTarget(_ x: ArraySlice<Double>, weights a: [Double], outputs k: Int) -> [Double] {
    let C = x.count
    var out = [Double](repeating: 0, count: k)
    for o in 0..<k {
        var s = 0.0
        var j = a.startIndex + o * C
        for xv in x { s += a[j] * xv; j += 1 }
        out[o] = tanh(s)
    }
    return out
}

/// The predictor's output g(x) and its hidden pre-activation for one state.
func rndPredict(_ x: ArraySlice<Double>, params p: [Double], shapes s: RNDShapes) -> (out: [Double], pre: [Double]) {
    let C = s.inputs
    var pre = [Double](repeating: 0, count: s.hidden)
    for u in 0..<s.hidden {
        var z = p[s.b1 + u]
        var j = s.v1 + u * C
        for xv in x { z += p[j] * xv; j += 1 }
        pre[u] = z
    }
    var out = [Double](repeating: 0, count: s.outputs)
    for o in 0..<s.outputs {
        var z = p[s.b2 + o]
        for u in 0..<s.hidden where pre[u] > 0 { z += p[s.v2 + o * s.hidden + u] * pre[u] }
        out[o] = z
    }
    return (out, pre)
}

/// The prediction error e(x) = (1/k) Σ_o (g_o − f_o)² of each state (rows of `states`, C wide).
public func rndErrors(states: [Double], targets: [[Double]], params: [Double], shapes: RNDShapes) -> [Double] {
    let C = shapes.inputs
    return targets.indices.map { i in
        let g = rndPredict(states[(i * C)..<((i + 1) * C)], params: params, shapes: shapes).out
        var e = 0.0
        for o in 0..<shapes.outputs { e += (g[o] - targets[i][o]) * (g[o] - targets[i][o]) }
        return e / Double(shapes.outputs)
    }
}

/// The training loss L = (1/|B|) Σ_{i∈B} ½·e(x_i) over the rows `rows` and its exact gradient
/// in the predictor's parameters (backpropagation through the two layers and the ReLU).
public func rndLossAndGradient(states: [Double], targets: [[Double]], rows: [Int], params p: [Double],
                               shapes s: RNDShapes) -> (loss: Double, gradient: [Double]) {
    let C = s.inputs, k = Double(s.outputs)
    var grad = [Double](repeating: 0, count: s.count)
    var loss = 0.0
    let scale = 1 / Double(rows.count)
    for i in rows {
        let x = states[(i * C)..<((i + 1) * C)]
        let (g, pre) = rndPredict(x, params: p, shapes: s)
        // L_i = ½ (1/k) Σ_o d_o², d = g − f; ∂L_i/∂g_o = d_o / k.
        var dg = [Double](repeating: 0, count: s.outputs)
        for o in 0..<s.outputs {
            let d = g[o] - targets[i][o]
            loss += 0.5 * d * d / k * scale
            dg[o] = d / k * scale
        }
        var dpre = [Double](repeating: 0, count: s.hidden)
        for o in 0..<s.outputs {
            grad[s.b2 + o] += dg[o]
            for u in 0..<s.hidden where pre[u] > 0 {
                grad[s.v2 + o * s.hidden + u] += dg[o] * pre[u]
                dpre[u] += dg[o] * p[s.v2 + o * s.hidden + u]
            }
        }
        for u in 0..<s.hidden where pre[u] > 0 {
            grad[s.b1 + u] += dpre[u]
            var j = s.v1 + u * C
            for xv in x { grad[j] += dpre[u] * xv; j += 1 }
        }
    }
    return (loss, grad)
}

/// A trained prediction-error model: standardization, target weights and predictor.
public struct RNDModel: Sendable {
    public let shapes: RNDShapes
    public let mean: [Double], std: [Double]
    public let targetWeights: [Double]
    public let params: [Double]
    /// Mean error on the training states (errors are reported relative to it).
    public let trainError: Double
    /// Training loss at the start and end (for the log).
    public let initialLoss: Double, finalLoss: Double

    /// Standardized copies of `states` (rows of C).
    func standardize(_ states: [Double]) -> [Double] {
        let C = shapes.inputs
        var x = states
        for i in 0..<(states.count / C) { for j in 0..<C { x[i * C + j] = (states[i * C + j] - mean[j]) / std[j] } }
        return x
    }

    /// Prediction error of each state (rows of C) divided by the mean training error.
    public func relativeErrors(_ states: [Double]) -> [Double] {
        let x = standardize(states)
        let C = shapes.inputs
        let targets = (0..<(states.count / C)).map { rndTarget(x[($0 * C)..<(($0 + 1) * C)], weights: targetWeights, outputs: shapes.outputs) }
        return rndErrors(states: x, targets: targets, params: params, shapes: shapes).map { $0 / trainError }
    }
}

/// Trains a predictor of a fresh random target on `states` (rows of C = `inputs` floats;
/// the hidden states of base-policy responses). Deterministic for `rng`.
public func trainRND(states raw: [Double], inputs C: Int, settings: RNDSettings = RNDSettings(), rng: inout RNG) -> RNDModel {
    precondition(C >= 1 && raw.count % C == 0 && raw.count >= 2 * C, "RND training needs at least two states of width \(C)")
    var all = Array(0..<(raw.count / C))
    if all.count > settings.maxTrainStates {
        rng.shuffle(&all)
        all = Array(all.prefix(settings.maxTrainStates)).sorted()
    }
    var states = [Double](); states.reserveCapacity(all.count * C)
    for i in all { states += raw[(i * C)..<((i + 1) * C)] }
    let R = all.count
    var mean = [Double](repeating: 0, count: C), std = [Double](repeating: 0, count: C)
    for i in 0..<R { for j in 0..<C { mean[j] += states[i * C + j] } }
    for j in 0..<C { mean[j] /= Double(R) }
    for i in 0..<R { for j in 0..<C { let d = states[i * C + j] - mean[j]; std[j] += d * d } }
    for j in 0..<C { std[j] = max((std[j] / Double(R)).squareRoot(), 1e-6) }
    for i in 0..<R { for j in 0..<C { states[i * C + j] = (states[i * C + j] - mean[j]) / std[j] } }

    let shapes = RNDShapes(inputs: C, hidden: settings.hidden, outputs: settings.outputs)
    var initRNG = rng.split("rnd-init")
    let a = (0..<(settings.outputs * C)).map { _ in Double(initRNG.normal()) / Double(C).squareRoot() }
    let targets = (0..<R).map { rndTarget(states[($0 * C)..<(($0 + 1) * C)], weights: a, outputs: settings.outputs) }
    var p = [Double](repeating: 0, count: shapes.count)
    for i in 0..<(shapes.hidden * C) { p[shapes.v1 + i] = Double(initRNG.normal()) / Double(C).squareRoot() }
    for i in 0..<(shapes.outputs * shapes.hidden) { p[shapes.v2 + i] = Double(initRNG.normal()) / Double(shapes.hidden).squareRoot() }
    // Adam (Kingma & Ba 2015) with bias correction, constant learning rate.
    var m1 = [Double](repeating: 0, count: shapes.count), m2 = m1
    let b1 = 0.9, b2 = 0.999, eps = 1e-8
    var t = 0.0
    let initialLoss = rndLossAndGradient(states: states, targets: targets, rows: Array(0..<R), params: p, shapes: shapes).loss
    var order = Array(0..<R)
    var orderRNG = rng.split("rnd-order")
    for _ in 0..<settings.epochs {
        orderRNG.shuffle(&order)
        for lo in stride(from: 0, to: R, by: settings.batchSize) {
            let rows = Array(order[lo..<min(R, lo + settings.batchSize)])
            let g = rndLossAndGradient(states: states, targets: targets, rows: rows, params: p, shapes: shapes).gradient
            t += 1
            let c1 = 1 - pow(b1, t), c2 = 1 - pow(b2, t)
            for j in p.indices {
                m1[j] = b1 * m1[j] + (1 - b1) * g[j]
                m2[j] = b2 * m2[j] + (1 - b2) * g[j] * g[j]
                p[j] -= settings.learningRate * (m1[j] / c1) / ((m2[j] / c2).squareRoot() + eps)
            }
        }
    }
    let errors = rndErrors(states: states, targets: targets, params: p, shapes: shapes)
    let trainError = max(errors.reduce(0, +) / Double(R), 1e-12)
    let finalLoss = rndLossAndGradient(states: states, targets: targets, rows: Array(0..<R), params: p, shapes: shapes).loss
    return RNDModel(shapes: shapes, mean: mean, std: std, targetWeights: a, params: p, trainError: trainError,
                    initialLoss: initialLoss, finalLoss: finalLoss)
}
