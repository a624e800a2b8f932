import ArgumentParser
import Foundation
import OverOptEngine

/// `overopt bench`: the engine's speed on the `large` preset (vocab 256).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training-step, sampling and sgemm speed on the large preset.",
        discussion: """
            (a) a training step (forward + backward + AdamW), batch 64 × 64 tokens, run as \
            pretraining runs it (the batch's halves at once on two replicas), and also as one \
            pass with each matrix product split over the threads; \
            (b) KV-cache sampling of 256 sequences, 16-token prompts, 48 new tokens; \
            (c) OpenBLAS sgemm at the model's shapes; \
            (d) a decode step's matrix products at 16 rows on one thread, on packed weights \
            and with OpenBLAS. Reports medians over --repeats runs \
            after a warm-up. Compare with bench/torch_reference.py on the same machine.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "Timed repetitions of each workload (after one warm-up).")
    var repeats = 5

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        if repeats < 1 { throw ValidationError("--repeats must be at least 1 (got \(repeats)).") }
    }

    func run() throws {
        let r = runBenchmarks(repeats: repeats, threads: global.threadCount) { line in
            if !json { FileHandle.standardError.write(Data(("  " + line + "\n").utf8)) }
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
            return
        }
        print("OverOpt engine benchmark (large preset, vocab 256, \(r.threads) threads, median of \(r.repeats))")
        print("  cpu \(r.cpu) · OpenBLAS \(r.blas_core) · kernels \(r.kernels)")
        print(String(format: "  (a) training step  %8.1f ms  %9.0f tokens/s  %6.1f GFLOP/s", r.train_step_ms_median, r.train_tokens_per_s, r.train_gflops))
        print(String(format: "      as one pass               %9.0f tokens/s  (each matrix product split over the threads)", r.train_one_pass_tokens_per_s))
        print(String(format: "  (b) sampling       %8.1f ms  %9.0f tokens/s", r.sample_ms_median, r.sample_tokens_per_s))
        print(String(format: "  (c) sgemm ceiling                          %6.1f GFLOP/s", r.sgemm_gflops))
        for (shape, g) in r.sgemm_by_shape.sorted(by: { $0.key < $1.key }) {
            print(String(format: "      %-14@ %6.1f GFLOP/s", shape as NSString, g))
        }
        print(String(format: "  (d) decode products, 16 rows, 1 thread: packed %6.1f GFLOP/s, OpenBLAS %6.1f GFLOP/s",
                     r.decode_products_packed_gflops, r.decode_products_openblas_gflops))
    }
}
