// CPU detection, the OpenBLAS core choice, and blocked products.
import CPUID
import Foundation
import Testing
@testable import OverOptEngine

struct OpenBLASCoreChoiceTests {
    let sapphireRapids = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 143, modelName: "Intel(R) Xeon(R) Platinum 8488C",
                                     avx: true, avx2: true, fma: true, avx512: true, avx512bf16: true)
    let skylakeSP = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 85, modelName: "Intel(R) Xeon(R) Gold 6148",
                                avx: true, avx2: true, fma: true, avx512: true)
    let epyc = CPUFeatures(vendor: "AuthenticAMD", family: 25, model: 1, modelName: "AMD EPYC 7B13",
                           avx: true, avx2: true, fma: true)
    let haswellDesktop = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 60, modelName: "Intel(R) Core(TM) i7-4770",
                                     avx: true, avx2: true, fma: true)
    let sandyBridge = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 42, modelName: "Intel(R) Xeon(R) E5-2670", avx: true)

    @Test func aGenericFallbackIsReplacedByTheCPUsWidestCore() {
        #expect(chooseOpenBLASCore(cpu: sapphireRapids, libraryCore: "Prescott", userSetting: nil).core == "Cooperlake")
        #expect(chooseOpenBLASCore(cpu: skylakeSP, libraryCore: "Prescott", userSetting: nil).core == "SkylakeX")
        #expect(chooseOpenBLASCore(cpu: skylakeSP, libraryCore: "Haswell", userSetting: nil).core == "SkylakeX")
        #expect(chooseOpenBLASCore(cpu: haswellDesktop, libraryCore: "Nehalem", userSetting: nil).core == "Haswell")
        #expect(chooseOpenBLASCore(cpu: epyc, libraryCore: "Prescott", userSetting: nil).core == "Zen")
        #expect(chooseOpenBLASCore(cpu: epyc, libraryCore: "Sandybridge", userSetting: nil).core == "Zen")
    }

    @Test func aFittingCoreIsKept() {
        #expect(chooseOpenBLASCore(cpu: epyc, libraryCore: "Zen", userSetting: nil).core == nil)
        #expect(chooseOpenBLASCore(cpu: epyc, libraryCore: "Haswell", userSetting: nil).core == nil)
        #expect(chooseOpenBLASCore(cpu: skylakeSP, libraryCore: "SkylakeX", userSetting: nil).core == nil)
        #expect(chooseOpenBLASCore(cpu: sapphireRapids, libraryCore: "SapphireRapids", userSetting: nil).core == nil)
        // No AVX2: nothing better to ask for.
        #expect(chooseOpenBLASCore(cpu: sandyBridge, libraryCore: "Sandybridge", userSetting: nil).core == nil)
        #expect(chooseOpenBLASCore(cpu: sandyBridge, libraryCore: "Prescott", userSetting: nil).core == nil)
    }

    @Test func theUsersSettingIsAlwaysKept() {
        for setting in ["Prescott", "", "SkylakeX"] {
            let choice = chooseOpenBLASCore(cpu: sapphireRapids, libraryCore: "Prescott", userSetting: setting)
            #expect(choice.core == nil)
            #expect(choice.reason.contains("set by the user"))
        }
    }

    @Test func aUserCoreThisCPUCannotRunIsReplacedWithAWarning() {
        for (cpu, setting, replacement) in [(epyc, "SkylakeX", "Zen"), (epyc, "cooperlake", "Zen"),
                                            (skylakeSP, "Cooperlake", "SkylakeX"), (skylakeSP, "SapphireRapids", "SkylakeX"),
                                            (haswellDesktop, "SkylakeX", "Haswell"), (sandyBridge, "Haswell", "Sandybridge")] {
            let choice = chooseOpenBLASCore(cpu: cpu, libraryCore: "Zen", userSetting: setting)
            #expect(choice.core == replacement, "\(setting) on \(cpu.modelName)")
            let warning = choice.warning ?? ""
            #expect(warning.contains("OPENBLAS_CORETYPE=\(setting)") && warning.hasSuffix("using \(replacement) instead"))
        }
        // Cores the CPU runs stay as the user set them, without a warning.
        for (cpu, setting) in [(epyc, "Haswell"), (epyc, "Sandybridge"), (skylakeSP, "SkylakeX"), (sapphireRapids, "Cooperlake")] {
            let choice = chooseOpenBLASCore(cpu: cpu, libraryCore: "Zen", userSetting: setting)
            #expect(choice.core == nil && choice.warning == nil, "\(setting) on \(cpu.modelName)")
        }
    }

    @Test func coreLevelsIgnoreCase() {
        #expect(openBLASCoreLevel("SKYLAKEX") == .avx512)
        #expect(openBLASCoreLevel("zen") == .avx2)
        #expect(openBLASCoreLevel("Sandybridge") == .avx)
        #expect(openBLASCoreLevel("Prescott") == .baseline)
        #expect(openBLASCoreLevel("a core from the future") == .baseline)
    }
}

struct CPUDetectionTests {
    /// The command line's start-up check (C, compiled for the baseline) agrees with CPUFeatures.
    @Test func theStartUpCheckAgreesWithTheDetectedFeatures() {
        let host = CPUFeatures.host
        #expect((overopt_runs_avx2_fma() != 0) == (host.avx2 && host.fma), "\(host.summary)")
    }

    /// CPUID agrees with the kernel's view of the CPU (/proc/cpuinfo), where there is one.
    @Test func hostFeaturesMatchProcCpuinfo() throws {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else {
            print("no /proc/cpuinfo flags here: CPUID not cross-checked")
            return
        }
        let flags = Set(flagsLine.split(separator: ":")[1].split(separator: " ").map(String.init))
        let cpu = CPUFeatures.host
        print("host: \(cpu.summary), vendor \(cpu.vendor)")
        #expect(cpu.avx == flags.contains("avx"))
        #expect(cpu.avx2 == flags.contains("avx2"))
        #expect(cpu.fma == flags.contains("fma"))
        #expect(cpu.avx512 == ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"].allSatisfy(flags.contains))
        #expect(cpu.avx512bf16 == flags.contains("avx512_bf16"))
        if let family = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu family") }) {
            #expect(String(cpu.family) == family.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
        }
        if let model = text.split(separator: "\n").first(where: { $0.hasPrefix("model\t") }) {
            #expect(String(cpu.model) == model.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
        }
        // The engine is built for AVX2 + FMA on x86-64: the test itself runs only there.
        #expect(cpu.level >= .avx2)
    }
}

@Suite(.serialized) struct BlockedProductTests {
    @Test func blocksDependOnTheShapeOnly() {
        #expect(gemmBlocks(M: 10, N: 10, K: 10).count == 1)
        let big = gemmBlocks(M: 4096, N: 128, K: 128)
        #expect(big.alongRows && big.count == 16)
        let wide = gemmBlocks(M: 32, N: 4096, K: 512)
        #expect(!wide.alongRows && wide.count > 1)
        for (M, N, K) in [(4096, 384, 128), (64, 64, 4096), (17, 3000, 64), (2048, 29, 128)] {
            let b = gemmBlocks(M: M, N: N, K: K)
            #expect(b.count >= 1 && b.count <= 16 && b.count & (b.count - 1) == 0)
            #expect((b.alongRows ? M : N) / b.count >= 16 || b.count == 1)
        }
    }

    /// Blocked products equal one OpenBLAS call over the same blocks at 1, 2 and 3 threads,
    /// bitwise, and a Double reference up to rounding, for every transpose and beta.
    @Test func blockedProductsAreTheSameAtAnyThreadCount() {
        let previous = engineThreadCount()
        defer { setEngineThreads(previous) }
        var state: UInt64 = 7
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
        for (M, N, K) in [(1000, 96, 64), (40, 2000, 48)] {
            for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
                #expect(gemmBlocks(M: M, N: N, K: K).count > 1)
                let a = (0..<(M * K)).map { _ in next() }, b = (0..<(K * N)).map { _ in next() }
                let c0 = (0..<(M * N)).map { _ in next() }
                var results: [[Float]] = []
                for threads in [1, 2, 3] {
                    setEngineThreads(threads)
                    var c = c0
                    c.withUnsafeMutableBufferPointer { cp in
                        gemm(transA: transA, transB: transB, M: M, N: N, K: K, alpha: 0.5, A: a, lda: transA ? M : K,
                             B: b, ldb: transB ? K : N, beta: 1, C: cp.baseAddress!, ldc: N)
                    }
                    results.append(c)
                }
                #expect(results[0] == results[1] && results[1] == results[2], "M \(M) N \(N) K \(K) tA \(transA) tB \(transB)")
                var worst = 0.0
                for i in stride(from: 0, to: M, by: 7) {
                    for j in stride(from: 0, to: N, by: 5) {
                        var sum = 0.0, scale = 0.0
                        for k in 0..<K {
                            let x = Double(transA ? a[k * M + i] : a[i * K + k]), y = Double(transB ? b[j * K + k] : b[k * N + j])
                            sum += x * y; scale += abs(x * y)
                        }
                        let ref = 0.5 * sum + Double(c0[i * N + j])
                        worst = max(worst, abs(Double(results[0][i * N + j]) - ref) / (0.5 * scale + abs(Double(c0[i * N + j]))))
                    }
                }
                #expect(worst < 1e-6, "relative error \(worst)")
            }
        }
    }

    @Test func theStartUpSelfCheckPassesOnThisMachinesCore() {
        let error = gemmSelfCheckError()
        print("gemm self-check on OpenBLAS \(openBLASCoreName()): relative error \(error)")
        #expect(error < 1e-6)
    }
}
