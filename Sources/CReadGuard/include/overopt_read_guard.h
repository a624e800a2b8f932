// A last line of defence against corrupt HDF5 input files. The HDF5 library (1.10) trusts
// a file's metadata: some corrupt files make it dereference a wild pointer or loop forever.
// A process cannot recover from either, but it can end by OverOpt's exit convention: while
// an HDF5 call runs on a file opened for reading, a segmentation fault or bus error, or a
// call that runs longer than the watchdog allows, prints one line naming the file and
// exits with status 2 (bad input) instead of crashing or hanging.
#ifndef OVEROPT_READ_GUARD_H
#define OVEROPT_READ_GUARD_H

/// Installs the SIGSEGV/SIGBUS/SIGALRM handlers (once; the command-line tool calls it at
/// start). `watchdog_seconds` bounds one HDF5 call on a file opened for reading (0: none).
/// Faults outside a guarded call go to the handlers that were installed before.
void overopt_read_guard_install(unsigned watchdog_seconds);

/// Sets the line printed if a guarded call crashes or hangs (copied; NULL clears it: no
/// file open for reading, nothing guarded).
void overopt_read_guard_set_message(const char *message);

/// Brackets one HDF5 call (nested calls count once).
void overopt_read_guard_enter(void);
void overopt_read_guard_leave(void);

#endif
