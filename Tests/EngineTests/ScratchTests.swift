// The per-thread scratch stack (Scratch.swift): nested allocations that outgrow its block
// are distinct, aligned and hold what was written, and the stack settles on one block.
import Testing
@testable import OverOptEngine

@Suite struct ScratchTests {
    @Test func nestedAllocationsAreDistinctAlignedAndSettleOnOneBlock() {
        let stack = ScratchStack()
        for round in 0..<3 {
            // 40 000, 100 000 and 300 000 floats: the second and third outgrow the first block.
            let sizes = [40_000, 100_000, 300_000]
            var pointers: [FPtr] = []
            for (i, n) in sizes.enumerated() {
                let p = stack.push(n)
                #expect(Int(bitPattern: p) % 64 == 0, "allocation \(i) is 64-byte aligned")
                p.update(repeating: Float(i + 1), count: n)
                pointers.append(p)
            }
            for (i, n) in sizes.enumerated() {
                #expect(pointers[i][0] == Float(i + 1) && pointers[i][n - 1] == Float(i + 1), "round \(round): allocation \(i) kept its values")
            }
            for n in sizes.reversed() { stack.pop(n) }
            // After the first round everything fits the one consolidated block.
            #expect(stack.blockCount == 1, "round \(round): \(stack.blockCount) blocks")
        }
        var total = 0
        withScratch(1000) { a in
            withScratch(10) { b in total = b - a }
        }
        #expect(total >= 1000, "a nested allocation starts after the outer one")
    }
}
