// Buffer.swift — flat, owned Float storage and a pointer alias used by every kernel.
//
// The engine works on flat buffers in the spirit of llm.c: one allocation for all
// parameters (with named views), one for their gradients and one per AdamW moment, all in
// the same layout, so that the optimizer is a single loop over memory.

#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// A mutable pointer to Float storage: what every kernel reads and writes.
public typealias FPtr = UnsafeMutablePointer<Float>

/// Float storage aligned to 64 bytes; buffers of 2 MB or more are aligned to 2 MB and
/// marked for transparent huge pages (fewer TLB misses in the matrix products' packing).
func allocateFloats(_ count: Int) -> FPtr {
    let bytes = count * MemoryLayout<Float>.stride
    let huge = 2 << 20
    var raw: UnsafeMutableRawPointer?
    if bytes >= huge {
        let rounded = (bytes + huge - 1) / huge * huge
        guard posix_memalign(&raw, huge, rounded) == 0, let p = raw else { fatalError("out of memory allocating \(bytes) bytes") }
        #if os(Linux)
        _ = madvise(p, rounded, MADV_HUGEPAGE)
        #endif
        return p.bindMemory(to: Float.self, capacity: count)
    }
    guard posix_memalign(&raw, 64, max(bytes, 64)) == 0, let p = raw else { fatalError("out of memory allocating \(bytes) bytes") }
    return p.bindMemory(to: Float.self, capacity: count)
}

/// An owned, zero-initialized, fixed-size Float buffer. Reference type: copying shares it.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let ptr: FPtr

    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer needs a non-negative count")
        self.count = count
        ptr = allocateFloats(max(count, 1))
        ptr.initialize(repeating: 0, count: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { ptr.update(from: base, count: values.count) }
        }
    }

    deinit { free(ptr) }

    /// Sets every element to zero.
    public func zero() { ptr.update(repeating: 0, count: count) }

    /// A copy of the contents as an array.
    public var array: [Float] { Array(UnsafeBufferPointer(start: ptr, count: count)) }

    /// A deep copy.
    public func copy() -> FloatBuffer {
        let b = FloatBuffer(count: count)
        b.ptr.update(from: ptr, count: count)
        return b
    }

    public subscript(i: Int) -> Float {
        get { ptr[i] }
        set { ptr[i] = newValue }
    }
}

/// Scratch storage that grows to the largest size requested and is reused across calls.
public final class Workspace: @unchecked Sendable {
    private var storage: [String: FloatBuffer] = [:]
    public init() {}

    /// A buffer of at least `count` floats named `name` (contents unspecified).
    public func get(_ name: String, _ count: Int) -> FPtr {
        if let b = storage[name], b.count >= count { return b.ptr }
        let b = FloatBuffer(count: count)
        storage[name] = b
        return b.ptr
    }

    /// Like `get`, but zero-filled over the first `count` elements.
    public func zeroed(_ name: String, _ count: Int) -> FPtr {
        let p = get(name, count)
        p.update(repeating: 0, count: count)
        return p
    }
}
