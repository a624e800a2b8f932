// DataParallel.swift — one training step's batch split over replicas that share the
// parameters.
//
// At the batch sizes of reward-model and pretraining steps, two halves of a batch run at
// the same time on two replicas, each with single-threaded matrix products, beat one pass
// split over two threads on 2 cores (small preset, 64 sequences × 45 tokens: 15.3 ms per
// half against 20.1 ms for the whole). The caller splits the batch the same way whatever
// the thread count and normalizes each part's loss by the whole batch; the replicas'
// gradients are added in part order, so results do not depend on the thread count.

extension Transformer {
    /// This model's two replicas for `runOnReplicas` (made on first use and kept), or none
    /// for models with LoRA adapters (which then run in one pass).
    public var replicas: [Transformer] {
        if cachedReplicas == nil {
            cachedReplicas = lora == nil ? [Transformer(replicaOf: self), Transformer(replicaOf: self)] : []
        }
        return cachedReplicas!
    }

    /// The parts a data-parallel step runs: two fixed halves of `items` when there are two
    /// replicas and at least 8 items, else all of them in one part (run on the model itself).
    public static func dataParallelParts<T>(_ items: [T], replicas: [Transformer]) -> [[T]] {
        let n = items.count
        return replicas.count == 2 && n >= 8 ? [Array(items[..<(n / 2)]), Array(items[(n / 2)...])] : [items]
    }

    /// Runs `part(replica, index)` for every replica at the same time (one engine thread
    /// each, its products and loops serial on that thread; in turn at one thread), each on zeroed
    /// gradients, then adds the replicas' gradients to this model's in index order.
    /// Returns the parts' results in index order.
    public func runOnReplicas<R>(_ replicas: [Transformer], _ part: (Transformer, Int) -> R) -> [R] {
        var results = [R?](repeating: nil, count: replicas.count)
        for r in replicas { r.frozen = frozen }
        results.withUnsafeMutableBufferPointer { out in
            let shared = UncheckedSendable(out)
            parallelForEachDynamic(replicas.count) { i in
                replicas[i].zeroGrad()
                shared.value[i] = part(replicas[i], i)
            }
        }
        let g = grads.ptr
        for r in replicas {
            let rg = r.grads.ptr
            for i in 0..<parameterCount { g[i] += rg[i] }
        }
        return results.map { $0! }
    }

    /// The mean next-token NLL over the masked positions of several parts of one batch
    /// (each a batch and its mask), with its gradient, the parts run on `replicas`
    /// (as many as parts). Equals `languageModelLoss` of the whole batch up to rounding.
    @discardableResult
    public func languageModelLoss(parts: [(batch: TokenBatch, mask: [Float])], replicas: [Transformer],
                                  training: Bool = false, rng: inout RNG) -> Float {
        precondition(parts.count == replicas.count, "one replica per part")
        let count = parts.reduce(0) { $0 + maskedCount($1.mask) }
        var rngs = parts.indices.map { rng.split(UInt64($0)) }
        _ = rng.next()
        let losses = rngs.withUnsafeMutableBufferPointer { rb in
            let shared = UncheckedSendable(rb)
            return runOnReplicas(replicas) { r, i in
                r.summedNLL(parts[i].batch, mask: parts[i].mask, normalizer: count, backward: true,
                            training: training, rng: &shared.value[i])
            }
        }
        return Float(losses.reduce(0, +) / Double(max(1, count)))
    }
}
