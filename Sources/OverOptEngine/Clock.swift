// Clock.swift — the one clock every stage times itself with.
import Foundation

/// Monotonic wall-clock seconds (unaffected by changes of the system time).
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
