import ArgumentParser
import Foundation
import OverOpt

/// The exit statuses of every subcommand:
/// - 0: done;
/// - 2: bad input — a config (unknown key, value out of range, a sweep file), a flag, or an
///   input file that is missing, not HDF5 or not what the command reads — found before or
///   while reading it;
/// - 1: a failure during the work (a disk that fills up, a run that diverges, a sweep entry
///   that fails);
/// - 130 / 143: stopped by SIGINT / SIGTERM (`stopOnInterrupt`).
/// Errors are printed here, once, as one line "Error: …" on stderr; commands throw them:
/// `BadInput` (or run the reading in `readingInput`), `WorkFailure` (or `writingOutput`),
/// ArgumentParser's `ValidationError` from `validate()` (bad flags: 2); anything else is 1.
enum ExitStatus {
    static let failure: Int32 = 1
    static let badInput: Int32 = 2
}

/// Bad input found while a command runs (exit status 2).
struct BadInput: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A failure during the work (exit status 1), with the message to print.
struct WorkFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `body`'s value; whatever it throws is reported as bad input (reading a config or an
/// input file: a problem there is the input's, not the work's), after `context` ("cannot
/// read x: …") when given. Errors that are bad input by their type pass unchanged.
func readingInput<T>(_ context: String? = nil, _ body: () throws -> T) throws -> T {
    do { return try body() } catch {
        if isBadInput(error) { throw error }
        throw BadInput((context.map { $0 + ": " } ?? "") + oneLine(error))
    }
}

/// `body`'s value; whatever it throws is a failure of the work (writing an output), after
/// `context` when given — except errors that are bad input by their type.
func writingOutput<T>(_ context: String? = nil, _ body: () throws -> T) throws -> T {
    do { return try body() } catch {
        if error is WorkFailure || isBadInput(error) { throw error }
        throw WorkFailure((context.map { $0 + ": " } ?? "") + oneLine(error))
    }
}

/// Errors that are bad input by their type: the user's config, flags or input files.
func isBadInput(_ error: Error) -> Bool {
    error is BadInput || error is ConfigError || error is CollectError || error is PlotError || error is OutputFolderError
}

/// An error's text on one line (HDF5 appends its error stack on further lines).
func oneLine(_ error: Error) -> String {
    // Foundation's errors describe themselves as "Error Domain=… Code=…": take their sentence.
    let text = error is CocoaError || error is POSIXError ? error.localizedDescription : String(describing: error)
    return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty }.joined(separator: "; ")
}

/// The status of `error` under the convention above, and the line to print (nil: nothing
/// to print, the command already did, or help and version text that ArgumentParser prints).
func exitStatus(for error: Error) -> (status: Int32, line: String?) {
    switch error {
    case let code as ExitCode: return (code.rawValue, nil)
    case _ where isBadInput(error): return (ExitStatus.badInput, oneLine(error))
    default: break
    }
    switch OverOptCommand.exitCode(for: error) {
    case .success: return (0, nil)
    case .validationFailure:
        // Unknown options, missing arguments, values a flag does not take, `validate()`.
        let subcommand = CommandLine.arguments.dropFirst().first { !$0.hasPrefix("-") }
            .flatMap { name in OverOptCommand.configuration.subcommands.first { $0._commandName == name } }
            .map { " " + $0._commandName } ?? ""
        return (ExitStatus.badInput, OverOptCommand.message(for: error) + " (see overopt\(subcommand) --help)")
    default: return (ExitStatus.failure, oneLine(error))
    }
}

/// Ends the process for `error`: help and version go to ArgumentParser, which prints them;
/// everything else prints its one line and exits with its status.
func exitByConvention(_ error: Error) -> Never {
    let (status, line) = exitStatus(for: error)
    if status == 0 { OverOptCommand.exit(withError: error) }
    if let line { FileHandle.standardError.write(Data("Error: \(line)\n".utf8)) }
    exit(status)
}
