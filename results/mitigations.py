#!/usr/bin/env python3
"""Tables and a figure of the mitigations benchmark (experiments/mitigations-ppo.toml,
mitigations-bon.toml, detectors.toml).

Usage:
    python3 results/mitigations.py --ppo results/runs/mitigations-ppo --bon results/runs/mitigations-bon \
        --detectors results/runs/detectors [--figure results/mitigations.png]

Reads the run files with the project's Python reader (python/overopt). Every curve is gold
minus its value at step 0 (PPO) or at n = 1 (best-of-n), against the KL to the base policy.

1. PPO's mitigations. Each entry of mitigations-ppo.toml differs from the unmitigated one
   (`ppo = {}`) only in `[ppo]`; both start from the same base policy, data and proxy of a
   seed and noise level, so each mitigation is paired with the unmitigated run of its seed:
   gold@KL=k (the frontier: is gold higher at the same KL?), the peak, and the gain at the
   end of training (what a user who trains for the same number of steps gets).
2. Best-of-n selection rules. Each rule's curve is drawn from the same samples as the plain
   argmax's in the same file, so it is paired with that argmax: gold at the largest n (same
   sample budget, less KL), gold@KL=k (the frontier) and the peak over n.
3. Detectors. Per detector its AUROC for "gold has fallen more than δ below its running
   peak" (over the seeds where gold fell and where it did not, somewhere on the curve), the
   gold lost when stopping at its first alarm, and, for reference, what is lost by not
   stopping at all (peak − end); their paired difference is the gold saved by the detector.
Needs numpy, pandas (and matplotlib for --figure).
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import overopt  # noqa: E402
from optimizers import interpolate, markdown, mean_sem, paired  # noqa: E402

PPO_KL = [1.0, 2.0, 5.0]
BON_KL = [1.0, 2.0, 3.0]
STRENGTH_NAME = {"soft": "λ", "caution": "c", "lcb": "k"}


def _value(row, key, default=None):
    v = row.get(key, default)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return default
    return v


def mitigation_label(row):
    """A short name of a `[ppo]` setting from its config columns ("none" for the paper's)."""
    parts = []
    coef = float(_value(row, "ppo.kl_coef", 0.0))
    if coef > 0:
        kl = f"KL β={coef:g} ({_value(row, 'ppo.kl_estimator', 'k1')})"
        target = _value(row, "ppo.target_kl")
        if target is not None:
            kl += f", adaptive to {float(target):g}"
        parts.append(kl)
    clip = _value(row, "ppo.reward_clip")
    if clip is not None and float(clip) > 0:
        parts.append(f"reward clip ±{float(clip):g}")
    if _value(row, "ppo.reward_shaping", "none") == "par":
        parts.append("PAR")
    return "; ".join(parts) if parts else "none"


def gain_metrics(kl, gold, points):
    """Gain over the first point at each KL point, the peak, its KL, the end and the final KL."""
    kl, gain = np.asarray(kl, float), np.asarray(gold, float) - gold[0]
    p = int(np.argmax(gain))
    m = {"peak": gain[p], "KL@peak": kl[p], "end": gain[-1], "final KL": kl[-1], "drop": gain[p] - gain[-1]}
    for k in points:
        m[f"gold@KL={k:g}"] = interpolate(kl, gain, k)
    return m


def curves(folder, stage):
    """One row per (file, variant) of a stage's gold curves with the file's config columns."""
    df = overopt.load_runs(folder, stages=[stage])
    df = df[df.quantity == "gold"]
    if "data.label_noise" not in df.columns:
        df["data.label_noise"] = 0.0
    config = [c for c in df.columns if c.startswith(("ppo.", "bon."))]
    x = "step" if stage == "ppo" else "n"
    paths = {p.name: p for p in overopt.run_files(folder)}
    rows = []
    for (file, variant), g in df.groupby(["file", "variant"]):
        g = g.sort_values(x)
        first = g.iloc[0]
        row = {"file": file, "path": paths.get(Path(file).name, file), "seed": int(first.seed), "noise": float(first["data.label_noise"]), "variant": variant,
               "kl": g.kl.to_numpy(), "gold": g.value.to_numpy(), **{c: first[c] for c in config}}
        row.update(gain_metrics(row["kl"], row["gold"], PPO_KL if stage == "ppo" else BON_KL))
        rows.append(row)
    return pd.DataFrame(rows)


def pair_with(rows, baseline, key, metrics):
    """Paired differences of `rows` minus `baseline` matched on `key` columns, per metric."""
    b = {tuple(r[c] for c in key): r for _, r in baseline.iterrows()}
    out = {m: [] for m in metrics}
    for _, r in rows.iterrows():
        match = b.get(tuple(r[c] for c in key))
        if match is not None:
            for m in metrics:
                out[m].append(r[m] - match[m])
    return out


def ppo_table(c):
    c = c.copy()
    c["mitigation"] = [mitigation_label(r) for _, r in c.iterrows()]
    # The order of the sweep file: none, KL penalties (by β, estimator, then adaptive), clipping, PAR.
    c["order"] = [(mitigation_label(r) != "none", _value(r, "ppo.reward_shaping", "none") == "par",
                   _value(r, "ppo.reward_clip") is not None, _value(r, "ppo.target_kl") is not None,
                   float(_value(r, "ppo.kl_coef", 0.0)), str(_value(r, "ppo.kl_estimator", "k1"))) for _, r in c.iterrows()]
    order = list(dict.fromkeys(c.sort_values("order")["mitigation"]))
    metrics = ["gold@KL=2", "gold@KL=5", "peak", "end"]
    for noise, g in c.groupby("noise"):
        print(f"\n### PPO, label noise {noise:g}: each mitigation (mean ± sem over seeds) and its paired difference "
              "from the unmitigated run of the same seed (mean [95 % t interval] (seeds where positive / seeds))\n")
        rows = []
        for variant in sorted(g.variant.unique()):
            v = g[g.variant == variant]
            base = v[v.mitigation == "none"]
            for name in order:
                x = v[v.mitigation == name]
                if not len(x):
                    continue
                row = {"proxy": variant, "mitigation": name, "seeds": len(x),
                       "final KL": mean_sem(x["final KL"], signed=False), "peak": mean_sem(x["peak"]),
                       "end": mean_sem(x["end"])}
                if name != "none":
                    d = pair_with(x, base, ["seed"], metrics)
                    row.update({f"Δ {m}": paired(d[m]) for m in metrics})
                rows.append(row)
        print(markdown(rows, ["proxy", "mitigation", "seeds", "final KL", "peak", "end"] + [f"Δ {m}" for m in metrics]))
    return c


def rule_strength(file, proxy, rule):
    """A selection rule's strength (λ, c or k): the `strength` attribute of its curves."""
    if rule == "argmax":
        return math.nan
    import h5py
    with h5py.File(file, "r") as f:
        return float(f["bon"][proxy]["select"][rule].attrs["strength"])


def bon_table(c):
    c = c.copy()
    c["proxy"] = [v.split("/select/")[0] for v in c.variant]
    c["rule"] = [v.split("/select/")[1] if "/select/" in v else "argmax" for v in c.variant]
    c["strength"] = [rule_strength(r.path, r.proxy, r.rule) for _, r in c.iterrows()]
    metrics = ["end", "gold@KL=1", "gold@KL=2", "gold@KL=3", "peak"]
    for noise, g in c.groupby("noise"):
        print(f"\n### Best-of-n, label noise {noise:g}: each selection rule against the argmax of the same samples "
              "(mean [95 % t interval] (seeds where positive / seeds)); `end` is n = 256\n")
        rows = []
        for proxy in sorted(g.proxy.unique()):
            p = g[g.proxy == proxy]
            argmax = p[p.rule == "argmax"]
            first = argmax.drop_duplicates("seed")
            rows.append({"proxy": proxy, "rule": "argmax", "seeds": len(first), "KL at n=256": mean_sem(first["final KL"], signed=False),
                         "gold at n=256": mean_sem(first["end"]), "peak": mean_sem(first["peak"])})
            for (rule, strength), x in p[p.rule != "argmax"].groupby(["rule", "strength"]):
                d = pair_with(x, argmax, ["file"], metrics)
                rows.append({"proxy": proxy, "rule": f"{rule} {STRENGTH_NAME[rule]}={strength:g}", "seeds": len(x),
                             "KL at n=256": mean_sem(x["final KL"], signed=False), "gold at n=256": mean_sem(x["end"]),
                             "peak": mean_sem(x["peak"]), **{f"Δ {m}": paired(d[m]) for m in metrics}})
        print(markdown(rows, ["proxy", "rule", "seeds", "KL at n=256", "gold at n=256", "peak"] + [f"Δ {m}" for m in metrics]))
    return c


def detector_table(folder):
    d = overopt.load_detectors(folder)
    d = d[d.stage == "ppo"]
    if "data.label_noise" not in d.columns:
        d["data.label_noise"] = 0.0
    c = curves(folder, "ppo").set_index(["file", "variant"])
    d = d.join(c[["drop"]], on=["file", "variant"])
    for noise, g in d.groupby("data.label_noise"):
        print(f"\n### Detectors, PPO without mitigation, label noise {noise:g} (δ = {g.gold_drop.iloc[0]:g}; mean ± sem over seeds)\n")
        rows = []
        for (variant, detector), x in g.groupby(["variant", "detector"]):
            alarms = int((x.alarm_step >= 0).sum())
            rows.append({"proxy": variant, "detector": detector, "seeds": len(x),
                         "AUROC (seeds where defined)": f"{mean_sem(x.auroc, signed=False)} ({int(x.auroc.notna().sum())})",
                         "alarms": f"{alarms}/{len(x)}", "gold lost, stop at alarm": mean_sem(x.gold_lost, signed=False),
                         "gold lost, never stop": mean_sem(x["drop"], signed=False),
                         "saved by stopping (paired)": paired(np.asarray(x["drop"], float) - np.asarray(x.gold_lost, float))})
        print(markdown(rows, ["proxy", "detector", "seeds", "AUROC (seeds where defined)", "alarms",
                              "gold lost, stop at alarm", "gold lost, never stop", "saved by stopping (paired)"]))


def mean_gain_curve(group, grid):
    ys = np.array([[interpolate(r.kl, r.gold - r.gold[0], k) for k in grid] for _, r in group.iterrows()])
    return np.where((~np.isnan(ys)).all(axis=0), np.nanmean(np.where(np.isnan(ys), 0, ys), axis=0), np.nan)


def figure(ppo, bon, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    noises = sorted(ppo.noise.unique()) if ppo is not None else sorted(bon.noise.unique())
    proxies = ["bt", "grm-sft"]
    rows = (ppo is not None) + (bon is not None)
    fig, axes = plt.subplots(rows, 2 * len(noises), figsize=(4.2 * 2 * len(noises), 3.6 * rows), squeeze=False)
    r = 0
    if ppo is not None:
        for j, (noise, proxy) in enumerate([(n, p) for n in noises for p in proxies]):
            ax = axes[r][j]
            g = ppo[(ppo.noise == noise) & (ppo.variant == proxy)]
            # One colour per mitigation in every panel, in the sweep file's order.
            names = list(dict.fromkeys(ppo.sort_values("order")["mitigation"]))
            for k, name in enumerate(names):
                x = g[g.mitigation == name]
                if not len(x):
                    continue
                grid = np.linspace(0, min(c.max() for c in x.kl), 50)
                ax.plot(grid, mean_gain_curve(x, grid), lw=2.2 if name == "none" else 1.2,
                        color="black" if name == "none" else plt.cm.tab10(k % 10), label=name)
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_title(f"PPO against {proxy}, noise {noise:g}", fontsize=9)
            ax.set_xlabel("KL (nats)")
        axes[r][0].set_ylabel("gold gain (mean over seeds)")
        axes[r][0].legend(fontsize=6)
        r += 1
    if bon is not None:
        for j, (noise, proxy) in enumerate([(n, p) for n in noises for p in proxies]):
            ax = axes[r][j]
            g = bon[(bon.noise == noise) & (bon.proxy == proxy)]
            for (rule, strength), x in g.groupby(["rule", "strength"], dropna=False):
                if rule == "argmax":
                    x = x.drop_duplicates("seed")
                grid = np.linspace(0, min(c.max() for c in x.kl), 40)
                label = "argmax" if rule == "argmax" else f"{rule} {STRENGTH_NAME[rule]}={strength:g}"
                ax.plot(grid, mean_gain_curve(x, grid), lw=2.2 if rule == "argmax" else 1.2,
                        color="black" if rule == "argmax" else None, label=label)
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_title(f"best-of-n against {proxy}, noise {noise:g}", fontsize=9)
            ax.set_xlabel("KL (nats)")
        axes[r][0].set_ylabel("gold gain (mean over seeds)")
        axes[r][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nwrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ppo", help="mitigations-ppo.toml's output folder")
    parser.add_argument("--bon", help="mitigations-bon.toml's output folder")
    parser.add_argument("--detectors", help="detectors.toml's output folder")
    parser.add_argument("--figure", help="also draw the mean gold curves (PNG, SVG or PDF)")
    args = parser.parse_args(argv)
    ppo = ppo_table(curves(args.ppo, "ppo")) if args.ppo else None
    bon = bon_table(curves(args.bon, "bon")) if args.bon else None
    if args.detectors:
        detector_table(args.detectors)
    if args.figure and (ppo is not None or bon is not None):
        figure(ppo, bon, args.figure)


if __name__ == "__main__":
    main()
