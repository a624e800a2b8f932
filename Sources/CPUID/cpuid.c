#include "overopt_cpuid.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

int overopt_cpuid(unsigned int leaf, unsigned int subleaf, overopt_cpuid_registers *out) {
    out->eax = out->ebx = out->ecx = out->edx = 0;
    unsigned int highest = __get_cpuid_max(leaf & 0x80000000u, 0);
    if (highest == 0 || leaf > highest) return 0;
    __cpuid_count(leaf, subleaf, out->eax, out->ebx, out->ecx, out->edx);
    return 1;
}

unsigned long long overopt_xcr0(void) {
    overopt_cpuid_registers r;
    if (!overopt_cpuid(1, 0, &r) || !(r.ecx & (1u << 27))) return 0;   // no OSXSAVE
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

int overopt_runs_avx2_fma(void) {
    overopt_cpuid_registers r1, r7;
    if (!overopt_cpuid(1, 0, &r1) || !overopt_cpuid(7, 0, &r7)) return 0;
    int avx = (overopt_xcr0() & 0x6) == 0x6 && (r1.ecx & (1u << 28));
    return avx && (r1.ecx & (1u << 12)) && (r7.ebx & (1u << 5));   // FMA, AVX2
}
#else
int overopt_cpuid(unsigned int leaf, unsigned int subleaf, overopt_cpuid_registers *out) {
    (void)leaf; (void)subleaf;
    out->eax = out->ebx = out->ecx = out->edx = 0;
    return 0;
}

unsigned long long overopt_xcr0(void) { return 0; }

int overopt_runs_avx2_fma(void) { return 0; }
#endif
