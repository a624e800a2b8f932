// Process controls Swift's Glibc module does not expose.
#ifndef OVEROPT_PROCESS_H
#define OVEROPT_PROCESS_H

/// Asks the kernel to send `signal` to this process when its parent dies (Linux's
/// PR_SET_PDEATHSIG); returns 0 on success, -1 where it is not available.
int overopt_die_with_parent(int signal);

#endif
