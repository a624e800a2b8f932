// DataParallel.swift — one training step's batch split over replicas that share the
// parameters.
//
// At the batch sizes of reward-model and pretraining steps, two halves of a batch run at
// the same time on two replicas, each with single-threaded matrix products, beat one pass
// with two BLAS threads on 2 cores (small preset, 64 sequences × 45 tokens: 15.3 ms per
// half against 20.1 ms for the whole). The caller splits the batch the same way whatever
// the thread count and normalizes each part's loss by the whole batch; the replicas'
// gradients are added in part order, so results do not depend on the thread count.

extension Transformer {
    /// Two replicas of this model for `runOnReplicas`, or none for models with LoRA
    /// adapters (which then train in one pass).
    public func makeReplicas() -> [Transformer] {
        lora == nil ? [Transformer(replicaOf: self), Transformer(replicaOf: self)] : []
    }

    /// Forward passes over `count` items (e.g. batches of sequences to score) spread over
    /// this model's two replicas, each item on whichever replica's thread is free: `item`
    /// runs the pass on the model it is given and returns what it read out. Results come
    /// back in item order and do not depend on which replica ran an item. Without replicas
    /// (LoRA) or at one engine thread, every item runs on this model in turn.
    public func forwardOnReplicas<R>(count: Int, _ item: (Transformer, Int) -> R) -> [R] {
        if lora != nil || engineThreadCount() < 2 || count < 2 || insideParallelPart {
            return (0..<count).map { item(self, $0) }
        }
        if scoringReplicas == nil { scoringReplicas = makeReplicas() }
        let replicas = scoringReplicas!
        for r in replicas { r.frozen = frozen }
        var results = [R?](repeating: nil, count: count)
        let next = NextIndex()
        results.withUnsafeMutableBufferPointer { out in
            let shared = UncheckedSendable(out)
            withSingleThreadedBLAS {
                parallelFor(replicas.count, parts: replicas.count) { part, _ in
                    while let i = next.take(below: count) { shared.value[i] = item(replicas[part], i) }
                }
            }
        }
        return results.map { $0! }
    }

    /// Runs `part(replica, index)` for every replica at the same time (one engine thread
    /// each, single-threaded matrix products; in turn at one thread), each on zeroed
    /// gradients, then adds the replicas' gradients to this model's in index order.
    /// Returns the parts' results in index order.
    public func runOnReplicas<R>(_ replicas: [Transformer], _ part: (Transformer, Int) -> R) -> [R] {
        var results = [R?](repeating: nil, count: replicas.count)
        for r in replicas { r.frozen = frozen }
        results.withUnsafeMutableBufferPointer { out in
            let shared = UncheckedSendable(out)
            withSingleThreadedBLAS {
                parallelForEachDynamic(replicas.count) { i in
                    replicas[i].zeroGrad()
                    shared.value[i] = part(replicas[i], i)
                }
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
        let count = max(1, parts.reduce(0) { $0 + $1.mask.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } })
        var rngs = parts.indices.map { rng.split(UInt64($0)) }
        _ = rng.next()
        let losses = rngs.withUnsafeMutableBufferPointer { rb in
            let shared = UncheckedSendable(rb)
            return runOnReplicas(replicas) { r, i -> Double in
                let (batch, mask) = parts[i]
                let lp = r.tokenLogProbs(batch, mask: mask, training: training, rng: &shared.value[i])
                var loss: Double = 0
                for j in 0..<lp.logp.count where mask[j] != 0 { loss -= Double(lp.logp[j] * mask[j]) }
                let scale = -1 / Float(count)
                r.backwardTokenLogProbs(dlogp: mask.map { $0 * scale })
                return loss
            }
        }
        return Float(losses.reduce(0, +) / Double(count))
    }
}
