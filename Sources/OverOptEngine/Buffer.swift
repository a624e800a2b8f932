// Buffer.swift — flat, owned Float storage and a pointer alias used by every kernel.
//
// The engine works on flat buffers in the spirit of llm.c: one allocation for all
// parameters (with named views), one for their gradients and one per AdamW moment, all in
// the same layout, so that the optimizer is a single loop over memory.

/// A mutable pointer to Float storage: what every kernel reads and writes.
public typealias FPtr = UnsafeMutablePointer<Float>

/// An owned, zero-initialized, fixed-size Float buffer. Reference type: copying shares it.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let ptr: FPtr

    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer needs a non-negative count")
        self.count = count
        ptr = FPtr.allocate(capacity: max(count, 1))
        ptr.initialize(repeating: 0, count: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { ptr.update(from: base, count: values.count) }
        }
    }

    deinit { ptr.deallocate() }

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
