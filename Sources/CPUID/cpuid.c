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
#else
int overopt_cpuid(unsigned int leaf, unsigned int subleaf, overopt_cpuid_registers *out) {
    (void)leaf; (void)subleaf;
    out->eax = out->ebx = out->ecx = out->edx = 0;
    return 0;
}

unsigned long long overopt_xcr0(void) { return 0; }
#endif
