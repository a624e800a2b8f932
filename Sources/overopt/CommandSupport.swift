// CommandSupport.swift — what every subcommand shares besides the exit statuses
// (ExitStatus.swift): progress lines on stderr and the signal handling.
import Foundation

/// Ctrl-C (SIGINT) and SIGTERM end any command at once with status 130/143, whatever
/// disposition the parent left: result files are only ever renamed into place when complete,
/// so nothing half-written appears under a final name, and the next run in the folder
/// removes the temporary file a killed write may leave.
func stopOnInterrupt() {
    // A parent may spawn us with these signals blocked (the mask is inherited): unblock them.
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
    signal(SIGINT) { _ in _exit(130) }
    signal(SIGTERM) { _ in _exit(143) }
}

/// Progress lines on stderr with the elapsed time; silent with --quiet.
final class ProgressLog: @unchecked Sendable {
    let quiet: Bool
    let start = Date()
    init(quiet: Bool) { self.quiet = quiet }
    func callAsFunction(_ line: String) {
        if quiet { return }
        let t = Date().timeIntervalSince(start)
        FileHandle.standardError.write(Data(String(format: "[%5.0fs] %@\n", t, line).utf8))
    }
}
