// swift-tools-version:6.0
// OverOpt: a Swift laboratory for reward over-optimization in RLHF.
import PackageDescription

/// Numerical targets are always compiled with full optimization: a debug build of the
/// engine is 30-100x slower, which would make even the test suite crawl. On x86-64 they
/// target AVX2 + FMA (every x86-64 CPU since 2013): the engine's 16-lane SIMD loops
/// (GELU, softmax, layernorm, log-probs) run ≈ 1.5x faster than with baseline SSE2.
#if arch(x86_64)
let cpuFlags = ["-target-cpu", "haswell"]
#else
let cpuFlags: [String] = []
#endif
let fast: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"] + cpuFlags)]
/// The simulator (world, data, reward models, optimizers, experiments, readers) is optimized
/// with its checks kept: an index out of range or an overflow stops with a message instead
/// of reading past a buffer. Measured on a run without pretraining (one proxy, one thread):
/// 28.5–28.8 s of user time against 26.5–28.1 s unchecked, the same datasets bit for bit.
/// Only the engine's kernels keep -Ounchecked.
let checked: [SwiftSetting] = [.unsafeFlags(["-O"] + cpuFlags)]
/// The AVX-512 kernel variants, called only on CPUs that have AVX-512 (chosen at run time).
#if arch(x86_64)
let avx512: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-target-cpu", "skylake-avx512"])]
#else
let avx512: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"])]
#endif

let package = Package(
    name: "OverOpt",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "overopt", targets: ["overopt"]),
        .library(name: "OverOpt", targets: ["OverOpt"]),
        .library(name: "OverOptEngine", targets: ["OverOptEngine"]),
        .library(name: "OverOptHDF5", targets: ["OverOptHDF5"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev, libhdf5-dev).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),

        // CPUID and XGETBV for the engine's CPU detection (empty on non-x86 hosts).
        .target(name: "CPUID"),
        // Process controls for the command line (a sweep worker dying with its parent).
        .target(name: "CProcess"),

        // A crash or hang of the HDF5 library on a corrupt input file ends as bad input (exit 2).
        .target(name: "CReadGuard"),
        // Files, groups, datasets, attributes, atomic writes.
        .target(name: "OverOptHDF5", dependencies: ["CHDF5", "CReadGuard"]),
        // Kernels compiled for AVX-512 (OverOptEngine calls them only where the CPU has it).
        .target(name: "OverOptKernelsAVX512", swiftSettings: avx512),
        // Flat buffers, layers, transformer, heads, AdamW, sampler, RNG, checkpoints.
        .target(name: "OverOptEngine", dependencies: ["CBLAS", "CPUID", "OverOptKernelsAVX512", "OverOptHDF5"],
                swiftSettings: fast),
        // The simulator: world, data, reward models, best-of-n, PPO, experiments.
        .target(name: "OverOpt", dependencies: ["OverOptEngine", "OverOptHDF5", "TOMLKit"],
                resources: [.copy("World/Resources")], swiftSettings: checked),
        // The command-line tool: one file per subcommand.
        .executableTarget(name: "overopt", dependencies: [
            "OverOpt", "OverOptEngine", "OverOptHDF5", "CProcess", "CPUID",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // What the test targets share: temporary folders, processes, tiny models, a case stream.
        .target(name: "TestSupport", dependencies: ["OverOptEngine"], path: "Tests/TestSupport"),
        .testTarget(name: "HDF5Tests", dependencies: ["OverOptHDF5", "TestSupport"]),
        .testTarget(name: "EngineTests", dependencies: ["OverOptEngine", "OverOptKernelsAVX512", "OverOptHDF5", "CPUID", "TestSupport"],
                    swiftSettings: fast),
        .testTarget(name: "OverOptTests", dependencies: ["OverOpt", "OverOptEngine", "OverOptHDF5", "TestSupport"],
                    swiftSettings: fast),
        // The `overopt` command line end to end: the built binary run as a subprocess.
        .testTarget(name: "CLITests", dependencies: ["OverOptHDF5", "TestSupport"]),
    ]
)
