#include "overopt_process.h"

#if defined(__linux__)
#include <sys/prctl.h>

int overopt_die_with_parent(int signal) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0, 0, 0) == 0 ? 0 : -1;
}
#else
int overopt_die_with_parent(int signal) {
    (void)signal;
    return -1;
}
#endif
