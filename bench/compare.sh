#!/usr/bin/env bash
# Side-by-side benchmark: `overopt bench` and bench/torch_reference.py, alternated ROUNDS
# times on the same machine and thread count; prints each round and the medians and ratios.
#
# Usage: bench/compare.sh [PYTHON] [ROUNDS] [THREADS]
#   PYTHON   a python with torch (default .venv-torch/bin/python; see bench/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv-torch/bin/python}
ROUNDS=${2:-3}
THREADS=${3:-2}
swift build -c release --product overopt > /dev/null
OUT=$(mktemp -d)
for r in $(seq 1 "$ROUNDS"); do
    .build/release/overopt bench --json --repeats 5 --threads "$THREADS" > "$OUT/swift-$r.json"
    "$PY" bench/torch_reference.py --json --repeats 5 --threads "$THREADS" > "$OUT/torch-$r.json" 2> /dev/null
done
"$PY" - "$OUT" "$ROUNDS" <<'PYEOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
s = [json.load(open(f"{out}/swift-{r}.json")) for r in range(1, rounds + 1)]
t = [json.load(open(f"{out}/torch-{r}.json")) for r in range(1, rounds + 1)]
for r, (a, b) in enumerate(zip(s, t), 1):
    print(f"round {r}: overopt train {a['train_tokens_per_s']:8.0f} tok/s  sample {a['sample_tokens_per_s']:8.0f} tok/s  sgemm {a['sgemm_gflops']:6.1f} GFLOP/s | "
          f"pytorch train {b['train_tokens_per_s']:8.0f} tok/s  sample {b['sample_tokens_per_s']:8.0f} tok/s")
m = lambda xs, k: statistics.median(x[k] for x in xs)
st, ss, sg, sf = m(s, "train_tokens_per_s"), m(s, "sample_tokens_per_s"), m(s, "sgemm_gflops"), m(s, "train_gflops")
tt, ts, tf = m(t, "train_tokens_per_s"), m(t, "sample_tokens_per_s"), m(t, "train_gflops")
print(f"\nmedians over {rounds} rounds (each itself a median of 5 runs), {s[0]['threads']} threads:")
if "cpu" in s[0]:
    print(f"  cpu {s[0]['cpu']} · OpenBLAS {s[0]['blas_core']} · kernels {s[0]['kernels']} | "
          f"torch {t[0].get('torch_version', '?')} ({t[0].get('cpu_capability', '?')})")
print(f"  (a) training step  overopt {st:8.0f} tok/s ({sf:5.1f} GFLOP/s)  pytorch {tt:8.0f} tok/s ({tf:5.1f} GFLOP/s)  ratio {st/tt:4.2f}x")
if "train_one_pass_tokens_per_s" in s[0]:
    so = m(s, "train_one_pass_tokens_per_s")
    print(f"      (one pass)     overopt {so:8.0f} tok/s                    ratio {so/tt:4.2f}x")
print(f"  (b) sampling       overopt {ss:8.0f} tok/s                    pytorch {ts:8.0f} tok/s                    ratio {ss/ts:4.2f}x")
print(f"  (c) sgemm ceiling  {sg:5.1f} GFLOP/s; training step at {sf/sg*100:4.1f}% of it")
if "decode_products_packed_gflops" in s[0]:
    print(f"  (d) decode products, 16 rows, 1 thread: packed {m(s, 'decode_products_packed_gflops'):5.1f} GFLOP/s, "
          f"OpenBLAS {m(s, 'decode_products_openblas_gflops'):5.1f} GFLOP/s")
for key, label in [("train_tokens_per_s", "(a)"), ("sample_tokens_per_s", "(b)")]:
    ratios = sorted(a[key] / b[key] for a, b in zip(s, t))
    # A round's two runs are adjacent in time, so their ratio is less exposed to the machine's
    # drift than the ratio of the two medians.
    print(f"  per-round {label} ratios: {ratios[0]:4.2f}–{ratios[-1]:4.2f}x, median {statistics.median(ratios):4.2f}x")
PYEOF
