#include "overopt_read_guard.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t installed = 0;
static volatile sig_atomic_t depth = 0;
static volatile sig_atomic_t has_message = 0;
static unsigned watchdog = 0;
static char message[2048];
static size_t message_length = 0;
static struct sigaction previous_segv, previous_bus;

static void report_and_exit(void) {
    ssize_t ignored = write(2, message, message_length);
    (void)ignored;
    _exit(2);
}

static void on_fault(int sig, siginfo_t *info, void *context) {
    (void)context;
    if (depth > 0 && has_message) report_and_exit();
    // Not ours: hand the fault to the handler installed before (Swift's crash report).
    sigaction(sig, sig == SIGSEGV ? &previous_segv : &previous_bus, NULL);
    if (info == NULL || info->si_code <= 0) raise(sig);   // sent, not a fault: send it again
    // A fault: returning re-runs the faulting instruction under the previous handler.
}

static void on_alarm(int sig) {
    (void)sig;
    if (depth > 0 && has_message) report_and_exit();
}

void overopt_read_guard_install(unsigned watchdog_seconds) {
    if (installed) return;
    installed = 1;
    watchdog = watchdog_seconds;
    // An alternate stack, so that a stack overflow in the library still reaches the handler.
    stack_t current;
    if (sigaltstack(NULL, &current) == 0 && (current.ss_flags & SS_DISABLE)) {
        stack_t alternate;
        alternate.ss_sp = malloc(1 << 16);
        alternate.ss_size = 1 << 16;
        alternate.ss_flags = 0;
        if (alternate.ss_sp) sigaltstack(&alternate, NULL);
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previous_segv);
    sigaction(SIGBUS, &action, &previous_bus);
    struct sigaction alarm_action;
    memset(&alarm_action, 0, sizeof alarm_action);
    alarm_action.sa_handler = on_alarm;
    sigemptyset(&alarm_action.sa_mask);
    sigaction(SIGALRM, &alarm_action, NULL);
    // A parent may have started the process with these signals blocked (the mask is inherited).
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGSEGV);
    sigaddset(&set, SIGBUS);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

void overopt_read_guard_set_message(const char *text) {
    has_message = 0;
    if (text == NULL) return;
    size_t n = strlen(text);
    if (n > sizeof message - 1) n = sizeof message - 1;
    memcpy(message, text, n);
    message_length = n;
    has_message = 1;
}

void overopt_read_guard_enter(void) {
    if (depth++ == 0 && installed && watchdog > 0 && has_message) alarm(watchdog);
}

void overopt_read_guard_leave(void) {
    if (--depth == 0 && installed && watchdog > 0) alarm(0);
}
