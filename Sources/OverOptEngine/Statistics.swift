// Statistics.swift — mean, spread and median of a sample of values.
//
// Every mean and standard deviation of the project is computed here, summed left to right
// in the values' order, so that a result does not depend on which stage computed it.
// `SeedStatistics` (mean, std and sem across seeds or prompts) is built on these.

/// Mean, variance, standard deviation and median of values.
public enum Statistics {
    /// Σx / n; NaN for no values.
    public static func mean<C: Collection>(_ xs: C) -> Double where C.Element == Double {
        xs.reduce(0, +) / Double(xs.count)
    }

    /// Σ(x − mean)² / n, the population variance, or / (n − 1) with `sample` (the unbiased
    /// estimate from a sample).
    public static func variance<C: Collection>(_ xs: C, mean m: Double, sample: Bool = false) -> Double where C.Element == Double {
        xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(sample ? xs.count - 1 : xs.count)
    }

    /// The mean and the population standard deviation.
    public static func meanAndStandardDeviation<C: Collection>(_ xs: C) -> (mean: Double, std: Double) where C.Element == Double {
        let m = mean(xs)
        return (m, variance(xs, mean: m).squareRoot())
    }

    /// The middle value (the mean of the two middle ones for an even count) of a non-empty list.
    public static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : 0.5 * (s[s.count / 2 - 1] + s[s.count / 2])
    }
}
