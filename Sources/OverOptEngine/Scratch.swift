// Scratch.swift — per-thread memory for the temporaries of one kernel call.
//
// The training step's products pack a weight or transpose an operand on every call (a few
// hundred kilobytes to a few megabytes). Allocating those each time costs more than the
// packing itself: large blocks come from fresh pages the kernel must zero, and a
// zero-initialized buffer is written once more before use. `withScratch` instead hands out
// memory from a per-thread stack that grows to the largest demand and is then reused.
// Its contents are unspecified; the caller writes every element it reads.
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// A thread's scratch stack: blocks of floats handed out in stack order. When every
/// allocation is released and the stack had to grow into more than one block, the blocks
/// are replaced by one block as large as all of them, so that a steady workload settles on
/// one allocation.
final class ScratchStack {
    private var blocks: [(ptr: FPtr, capacity: Int)] = []
    private var used: [Int] = []        // floats in use per block

    /// The number of blocks (one once a workload has settled).
    var blockCount: Int { blocks.count }

    deinit { for b in blocks { free(b.ptr) } }

    func push(_ count: Int) -> FPtr {
        let n = (count + 15) / 16 * 16   // 64-byte steps keep every allocation aligned
        if let last = blocks.indices.last, blocks[last].capacity - used[last] >= n {
            defer { used[last] += n }
            return blocks[last].ptr + used[last]
        }
        let capacity = max(n, 2 * (blocks.last?.capacity ?? 0), 1 << 16)
        blocks.append((allocateFloats(capacity), capacity))
        used.append(n)
        return blocks[blocks.count - 1].ptr
    }

    func pop(_ count: Int) {
        let n = (count + 15) / 16 * 16
        guard n > 0 else { return }
        var last = blocks.count - 1
        while used[last] == 0 { last -= 1 }   // empty blocks above the top allocation
        used[last] -= n
        if used.allSatisfy({ $0 == 0 }) && blocks.count > 1 {
            let total = blocks.reduce(0) { $0 + $1.capacity }
            for b in blocks { free(b.ptr) }
            blocks = [(allocateFloats(total), total)]
            used = [0]
        }
    }
}

private let scratchKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { p in if let p { Unmanaged<ScratchStack>.fromOpaque(p).release() } }
    return key
}()

/// Calls `body` with `count` floats of this thread's scratch memory (contents unspecified),
/// valid until `body` returns. Calls nest.
func withScratch<R>(_ count: Int, _ body: (FPtr) throws -> R) rethrows -> R {
    let stack: ScratchStack
    if let p = pthread_getspecific(scratchKey) {
        stack = Unmanaged<ScratchStack>.fromOpaque(p).takeUnretainedValue()
    } else {
        stack = ScratchStack()
        pthread_setspecific(scratchKey, Unmanaged.passRetained(stack).toOpaque())
    }
    let p = stack.push(count)
    defer { stack.pop(count) }
    return try body(p)
}
