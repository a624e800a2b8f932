// The x86 CPUID and XGETBV instructions for Swift (CPU.swift). On other architectures both
// report nothing (return 0), so the build does not depend on the host.
#ifndef OVEROPT_CPUID_H
#define OVEROPT_CPUID_H

typedef struct {
    unsigned int eax, ebx, ecx, edx;
} overopt_cpuid_registers;

/// CPUID leaf `leaf`, sub-leaf `subleaf` into `out`; returns 0 when the leaf is not supported
/// (or on a non-x86 CPU), 1 otherwise.
int overopt_cpuid(unsigned int leaf, unsigned int subleaf, overopt_cpuid_registers *out);

/// XCR0, the register states the operating system saves (bit 1 SSE, 2 AVX, 5–7 AVX-512);
/// 0 when XGETBV is unavailable.
unsigned long long overopt_xcr0(void);

/// 1 when the CPU and the operating system run AVX2 and FMA, which the engine's x86-64 build
/// targets; 0 otherwise (and on a non-x86 CPU). Compiled for the baseline, so that it can be
/// asked before any engine code runs.
int overopt_runs_avx2_fma(void);

#endif
