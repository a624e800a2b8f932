// Progress.swift — remaining-time estimates for progress lines.
import Foundation

/// The time left when `done` of `total` units took `elapsed` seconds, at that rate.
public func remainingSeconds(elapsed: Double, done: Double, total: Double) -> Double? {
    guard done > 0, total >= done, elapsed.isFinite, elapsed >= 0 else { return nil }
    return elapsed / done * (total - done)
}

/// A duration as "45s", "12m05s" or "3h07m".
public func formatDuration(_ seconds: Double) -> String {
    let s = Int(max(0, seconds).rounded())
    if s < 60 { return "\(s)s" }
    if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
}

/// ", ETA 12m05s" for a progress line (empty before the first unit is done).
public func etaSuffix(elapsed: Double, done: Double, total: Double) -> String {
    remainingSeconds(elapsed: elapsed, done: done, total: total).map { ", ETA " + formatDuration($0) } ?? ""
}

/// The time left in a sweep: entries take the mean of the `finished` durations; each running
/// entry needs that mean minus its elapsed time (at least 0), and the queued entries' work
/// is shared by `jobs` workers. nil before any entry finished.
public func sweepRemainingSeconds(finished: [Double], runningElapsed: [Double], queued: Int, jobs: Int) -> Double? {
    guard !finished.isEmpty, jobs > 0 else { return nil }
    let mean = finished.reduce(0, +) / Double(finished.count)
    let runningLeft = runningElapsed.map { max(0, mean - $0) }
    guard queued > 0 else { return runningLeft.max() ?? 0 }
    return (runningLeft.reduce(0, +) + Double(queued) * mean) / Double(jobs)
}
