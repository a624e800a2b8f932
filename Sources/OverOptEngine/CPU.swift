// CPU.swift — what the processor can do, read once from CPUID, and the OpenBLAS core that
// fits it.
//
// Debian's OpenBLAS (a DYNAMIC_ARCH build) picks its kernels from a table of CPU models it
// knows; on a newer model it falls back to generic SSE3 kernels ("Prescott"), 3–5× slower
// than the AVX2 or AVX-512 ones the CPU could run. `chooseOpenBLASCore` decides from the
// CPU's features which core to ask for (OPENBLAS_CORETYPE, read when the library loads);
// the command-line tool applies it before any work (OverOptCommand.swift).
import CPUID
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// The instruction-set levels the engine and OpenBLAS distinguish, in increasing order.
public enum InstructionLevel: Int, Comparable, Sendable, CustomStringConvertible {
    case baseline = 0   // SSE only (or not x86)
    case avx = 1        // AVX without AVX2/FMA
    case avx2 = 2       // AVX2 + FMA
    case avx512 = 3     // AVX-512 F, CD, BW, DQ, VL

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .baseline: "baseline"
        case .avx: "avx"
        case .avx2: "avx2"
        case .avx512: "avx512"
        }
    }
}

/// The processor's identity and the vector features the engine and OpenBLAS care about.
/// A feature counts only when the operating system also saves its registers (XCR0).
public struct CPUFeatures: Sendable, Equatable {
    public var vendor: String
    public var family: Int
    public var model: Int
    /// The brand string, e.g. "AMD EPYC 7B13" or "Intel(R) Xeon(R) Platinum 8488C".
    public var modelName: String
    public var avx = false
    public var avx2 = false
    public var fma = false
    public var avx512 = false
    /// AVX-512 BF16 (Cooper Lake, Sapphire Rapids and later, AMD Zen 4).
    public var avx512bf16 = false

    public init(vendor: String, family: Int, model: Int, modelName: String,
                avx: Bool = false, avx2: Bool = false, fma: Bool = false, avx512: Bool = false, avx512bf16: Bool = false) {
        self.vendor = vendor
        self.family = family
        self.model = model
        self.modelName = modelName
        self.avx = avx
        self.avx2 = avx2
        self.fma = fma
        self.avx512 = avx512
        self.avx512bf16 = avx512bf16
    }

    /// The widest level this CPU runs.
    public var level: InstructionLevel {
        if avx512 && avx2 && fma { return .avx512 }
        if avx2 && fma { return .avx2 }
        if avx { return .avx }
        return .baseline
    }

    /// "AMD EPYC 7B13 (family 25, model 1, avx2)".
    public var summary: String { "\(modelName) (family \(family), model \(model), \(level))" }

    /// The machine this process runs on (read once).
    public static let host: CPUFeatures = readHost()

    static func readHost() -> CPUFeatures {
        func cpuid(_ leaf: UInt32, _ sub: UInt32 = 0) -> overopt_cpuid_registers? {
            var r = overopt_cpuid_registers()
            return overopt_cpuid(leaf, sub, &r) != 0 ? r : nil
        }
        guard let leaf0 = cpuid(0) else {
            return CPUFeatures(vendor: "unknown", family: 0, model: 0, modelName: hostArchitecture)
        }
        let vendor = asciiString([leaf0.ebx, leaf0.edx, leaf0.ecx])
        var cpu = CPUFeatures(vendor: vendor, family: 0, model: 0, modelName: vendor)
        let bit = { (value: UInt32, n: UInt32) in value & (1 << n) != 0 }
        let xcr0 = overopt_xcr0()
        let osAVX = xcr0 & 0x6 == 0x6, osAVX512 = xcr0 & 0xE6 == 0xE6
        if let leaf1 = cpuid(1) {
            let baseFamily = Int((leaf1.eax >> 8) & 0xF), baseModel = Int((leaf1.eax >> 4) & 0xF)
            cpu.family = baseFamily == 0xF ? baseFamily + Int((leaf1.eax >> 20) & 0xFF) : baseFamily
            cpu.model = baseFamily == 0x6 || baseFamily == 0xF ? Int((leaf1.eax >> 16) & 0xF) << 4 | baseModel : baseModel
            cpu.avx = osAVX && bit(leaf1.ecx, 28)
            cpu.fma = cpu.avx && bit(leaf1.ecx, 12)
        }
        if let leaf7 = cpuid(7) {
            cpu.avx2 = cpu.avx && bit(leaf7.ebx, 5)
            // F (16), DQ (17), CD (28), BW (30), VL (31): the set Skylake-SP introduced.
            cpu.avx512 = osAVX512 && [16, 17, 28, 30, 31].allSatisfy { bit(leaf7.ebx, $0) }
            if cpu.avx512, leaf7.eax >= 1, let leaf71 = cpuid(7, 1) { cpu.avx512bf16 = bit(leaf71.eax, 5) }
        }
        if let ext = cpuid(0x8000_0000), ext.eax >= 0x8000_0004 {
            let words = (UInt32(0x8000_0002)...0x8000_0004).flatMap { leaf -> [UInt32] in
                let r = cpuid(leaf)!
                return [r.eax, r.ebx, r.ecx, r.edx]
            }
            let name = asciiString(words).split(separator: " ").joined(separator: " ")
            if !name.isEmpty { cpu.modelName = name }
        }
        return cpu
    }
}

/// The characters of little-endian 32-bit words up to the first NUL.
private func asciiString(_ words: [UInt32]) -> String {
    let bytes = words.flatMap { w in (0..<4).map { UInt8((w >> (8 * $0)) & 0xFF) } }
    return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
}

#if arch(x86_64)
private let hostArchitecture = "x86_64"
#elseif arch(arm64)
private let hostArchitecture = "arm64"
#else
private let hostArchitecture = "unknown architecture"
#endif

// MARK: - OpenBLAS cores

/// The instruction level of an OpenBLAS x86-64 core (its `openblas_get_corename()`, case
/// ignored); unknown and older names count as baseline.
public func openBLASCoreLevel(_ core: String) -> InstructionLevel {
    switch core.lowercased() {
    case "skylakex", "cooperlake", "sapphirerapids": .avx512
    case "haswell", "zen", "excavator": .avx2
    case "sandybridge", "bulldozer", "piledriver", "steamroller": .avx
    default: .baseline
    }
}

/// Whether OpenBLAS's `core` (a name as OPENBLAS_CORETYPE takes it, case ignored) runs on
/// `cpu`: its instruction level is within the CPU's, and the cores built for AVX-512 BF16
/// (Cooperlake, SapphireRapids) need that too. OpenBLAS 0.3.21 does not check a forced
/// core: one the CPU cannot run stops the process with an illegal instruction.
public func openBLASCoreRuns(_ core: String, on cpu: CPUFeatures) -> Bool {
    guard openBLASCoreLevel(core) <= cpu.level else { return false }
    let needsBF16 = ["cooperlake", "sapphirerapids"].contains(core.lowercased())
    return !needsBF16 || cpu.avx512bf16
}

/// What to do about OpenBLAS's core: keep the library's choice, or ask for `core`.
public struct OpenBLASCoreChoice: Equatable, Sendable {
    /// The core to request through OPENBLAS_CORETYPE, or nil to keep the library's.
    public var core: String?
    /// One line for the log: why.
    public var reason: String
    /// Set when the user's OPENBLAS_CORETYPE names a core this CPU cannot run and `core`
    /// replaces it: one line for stderr.
    public var warning: String? = nil
}

/// The widest core OpenBLAS 0.3.x has for `cpu`: Cooperlake (AVX-512 with BF16), SkylakeX
/// (AVX-512), Zen (AMD with AVX2), Haswell (other AVX2 + FMA CPUs), Sandybridge (AVX) or
/// Prescott (SSE3).
public func widestOpenBLASCore(for cpu: CPUFeatures) -> String {
    switch cpu.level {
    case .avx512: cpu.avx512bf16 ? "Cooperlake" : "SkylakeX"
    case .avx2: cpu.vendor == "AuthenticAMD" ? "Zen" : "Haswell"
    case .avx: "Sandybridge"
    case .baseline: "Prescott"
    }
}

/// The OpenBLAS core to run on `cpu`, given the core the library chose itself and the
/// user's OPENBLAS_CORETYPE (nil when unset). A user's setting is kept, even an empty one,
/// unless it names a core this CPU cannot run (`openBLASCoreRuns`): that one is replaced by
/// the CPU's widest core, with a warning, so that a sweep's environment written for one
/// kind of node still runs on another. Without a user setting, a library core below the
/// CPU's instruction level is replaced by the CPU's widest core when the CPU has AVX2.
public func chooseOpenBLASCore(cpu: CPUFeatures, libraryCore: String, userSetting: String?) -> OpenBLASCoreChoice {
    let wanted = widestOpenBLASCore(for: cpu)
    if let userSetting {
        if openBLASCoreRuns(userSetting, on: cpu) {
            return OpenBLASCoreChoice(core: nil, reason: "OPENBLAS_CORETYPE=\(userSetting) set by the user")
        }
        let why = "OPENBLAS_CORETYPE=\(userSetting) names kernels this CPU (\(cpu.level)) cannot run"
        return OpenBLASCoreChoice(core: wanted, reason: "\(why); using \(wanted)",
                                  warning: "warning: \(why) (an illegal instruction); using \(wanted) instead")
    }
    guard cpu.level >= .avx2 else {
        return OpenBLASCoreChoice(core: nil, reason: "OpenBLAS chose \(libraryCore) for a CPU without AVX2")
    }
    if openBLASCoreLevel(libraryCore) >= cpu.level {
        return OpenBLASCoreChoice(core: nil, reason: "OpenBLAS chose \(libraryCore), which fits this CPU (\(cpu.level))")
    }
    return OpenBLASCoreChoice(core: wanted, reason: "OpenBLAS chose \(libraryCore) (\(openBLASCoreLevel(libraryCore))) "
                                + "for a CPU with \(cpu.level); using \(wanted)")
}

/// The engine's kernel variants: the instruction sets its numerical code runs on.
public enum KernelVariant: String, Sendable {
    /// Everything compiled for AVX2 + FMA (the minimum on x86-64), or the host's baseline elsewhere.
    case avx2
    /// The packed products' AVX-512 micro-kernel (OverOptKernelsAVX512) beside the AVX2 code.
    case avx512
}

/// The variant this process runs: the widest the CPU has, unless OVEROPT_KERNELS=avx2 asks
/// for the narrower one (to compare them; results are the same bits either way).
public let engineKernelVariant: KernelVariant = {
    #if arch(x86_64)
    let requested = getenv("OVEROPT_KERNELS").map { String(cString: $0) }
    if requested == "avx2" { return .avx2 }
    return CPUFeatures.host.level >= .avx512 ? .avx512 : .avx2
    #else
    return .avx2
    #endif
}()

/// The engine's kernel variant as reports name it.
public var engineKernels: String {
    #if arch(x86_64)
    switch engineKernelVariant {
    case .avx2: "avx2+fma"
    case .avx512: "avx512 (packed products) + avx2+fma"
    }
    #elseif arch(arm64)
    "arm64 (generic SIMD)"
    #else
    "generic"
    #endif
}

/// What computes: the CPU, the OpenBLAS core (marked when OverOpt chose it through
/// OPENBLAS_CORETYPE) and the engine's kernel variant; printed by `bench` and run headers
/// and stored in every result file.
public struct ComputeEnvironment: Sendable, Codable, Equatable {
    public var cpu: String
    public var blasCore: String
    public var kernels: String

    /// Read once: the CLI settles OpenBLAS's environment before any work.
    public static let current: ComputeEnvironment = {
        let core = openBLASCoreName()
        let chosen = getenv("OVEROPT_OPENBLAS_CORE").map { String(cString: $0) }
        let user = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        let source = chosen != nil && chosen == user ? " (chosen by overopt)" : user != nil ? " (OPENBLAS_CORETYPE)" : ""
        return ComputeEnvironment(cpu: CPUFeatures.host.summary, blasCore: core + source, kernels: engineKernels)
    }()

    /// "cpu AMD EPYC 7B13 (family 25, model 1, avx2) · OpenBLAS Zen · kernels avx2+fma"
    public var line: String { "cpu \(cpu) · OpenBLAS \(blasCore) · kernels \(kernels)" }
}
