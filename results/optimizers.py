#!/usr/bin/env python3
"""Tables and a figure of the policy-optimizer experiment (experiments/optimizers.toml).

Usage:
    python3 results/optimizers.py results/runs/optimizers [MORE_FOLDERS] [--figure results/optimizers.png]

Reads the run files with the project's Python reader (python/overopt). Every curve is gold
(or proxy) minus its value at step 0, against the k1 KL to the base policy. Per run, seed,
optimizer and proxy it measures:
  gold@KL=k      the gain at KL k (linear interpolation; seeds that never reach k are left out)
  peak, KL@peak  the largest gain and the KL where it occurs
  drop           peak − the gain at the last evaluation
  drop/nat       drop / (final KL − KL@peak): how fast gold falls per nat of KL past the peak
                 (0 when the peak is the last evaluation)
and prints, per label-noise level:
  1. mean ± sem over seeds of each optimizer against each proxy;
  2. paired differences between optimizers on the same seed and proxy (GRPO − PPO,
     RLOO − PPO) with the 95 % t interval over seeds;
  3. the direct-alignment runs (DPO, IPO) at each β, with PPO against `bt` at the same KL
     (each seed's PPO curve interpolated at that seed's final DPO/IPO KL).
The RL runs are repeated in every entry of a seed and noise level (they differ only in [dpo]);
they are read from one entry each. Needs numpy, pandas (and matplotlib for --figure).
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
import overopt  # noqa: E402

RL = ["ppo", "grpo", "rloo"]
KL_POINTS = [1.0, 2.0, 5.0]
# scipy.stats.t.ppf(0.975, df) for df = 1 … 30.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042]


def interpolate(kl, y, k):
    """y at KL k on a curve (linear between evaluations); NaN when the curve never reaches k."""
    kl, y = np.asarray(kl, float), np.asarray(y, float)
    if kl.max() < k:
        return math.nan
    i = int(np.argmax(kl >= k))
    if i == 0:
        return y[0]
    t = (k - kl[i - 1]) / (kl[i] - kl[i - 1]) if kl[i] > kl[i - 1] else 1.0
    return y[i - 1] + t * (y[i] - y[i - 1])


def curve_metrics(kl, gold):
    kl, gold = np.asarray(kl, float), np.asarray(gold, float) - gold[0]
    p = int(np.argmax(gold))
    drop = gold[p] - gold[-1]
    past = kl[-1] - kl[p]
    m = {"final KL": kl[-1], "peak": gold[p], "KL@peak": kl[p], "drop": drop,
         "drop/nat": drop / past if past > 0 else 0.0, "end": gold[-1]}
    for k in KL_POINTS:
        m[f"gold@KL={k:g}"] = interpolate(kl, gold, k)
    return m


def mean_sem(v, signed=True):
    v = np.asarray([x for x in v if x == x], float)
    sign = "+" if signed else ""
    if len(v) == 0:
        return "–"
    if len(v) == 1:
        return f"{v[0]:{sign}.2f}"
    return f"{v.mean():{sign}.2f} ± {v.std(ddof=1) / math.sqrt(len(v)):.2f}"


def paired(d):
    """'mean [low, high] (wins/n)' of paired differences with the 95 % t interval."""
    d = np.asarray([x for x in d if x == x], float)
    if len(d) < 2:
        return "–"
    half = T975[min(len(d) - 2, len(T975) - 1)] * d.std(ddof=1) / math.sqrt(len(d))
    return f"{d.mean():+.2f} [{d.mean() - half:+.2f}, {d.mean() + half:+.2f}] ({int((d > 0).sum())}/{len(d)})"


def load(folders):
    df = overopt.load_runs(folders, stages=RL + ["dpo"])
    df = df[df.quantity == "gold"]
    for key, default in (("data.label_noise", 0.0), ("dpo.loss", "dpo"), ("dpo.beta", math.nan), ("dpo.steps", 240)):
        if key not in df.columns:
            df[key] = default
    curves = []
    for (file, stage, variant), g in df.groupby(["file", "stage", "variant"]):
        g = g.sort_values("step")
        row = {"file": file, "seed": int(g.seed.iloc[0]), "stage": stage, "variant": variant,
               "noise": float(g["data.label_noise"].iloc[0]), "loss": g["dpo.loss"].iloc[0],
               "beta": float(g["dpo.beta"].iloc[0]), "steps": int(g["dpo.steps"].iloc[0]), "kl": g.kl.to_numpy(), "gold": g.value.to_numpy()}
        row.update(curve_metrics(row["kl"], row["gold"]))
        curves.append(row)
    c = pd.DataFrame(curves)
    # RL curves: one entry per (noise, seed, optimizer, proxy).
    rl = c[c.stage.isin(RL)].sort_values("file").drop_duplicates(["noise", "seed", "stage", "variant"])
    return rl, c[c.stage == "dpo"]


def markdown(rows, columns):
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(out)


def tables(rl, dpo):
    metrics = [f"gold@KL={k:g}" for k in KL_POINTS] + ["peak", "KL@peak", "drop", "drop/nat", "final KL"]
    for noise, g in rl.groupby("noise"):
        print(f"\n### Label noise {noise:g}: each optimizer against each proxy (mean ± sem over seeds)\n")
        rows = []
        for (variant, stage), x in g.groupby(["variant", "stage"]):
            rows.append({"proxy": variant, "optimizer": stage.upper(), "seeds": len(x),
                         **{m: mean_sem(x[m], signed="KL" not in m.replace("gold@KL", "")) for m in metrics}})
        rows.sort(key=lambda r: (r["proxy"], RL.index(r["optimizer"].lower())))
        print(markdown(rows, ["proxy", "optimizer", "seeds"] + metrics))

        print(f"\n### Label noise {noise:g}: paired differences on the same seed and proxy "
              "(mean [95 % t interval] (seeds where positive / seeds))\n")
        rows = []
        keyed = g.set_index(["variant", "stage", "seed"]).sort_index()
        for variant in sorted(g.variant.unique()):
            for other in ("grpo", "rloo"):
                seeds = sorted(set(keyed.loc[(variant, "ppo")].index) & set(keyed.loc[(variant, other)].index))
                row = {"proxy": variant, "comparison": f"{other.upper()} − PPO"}
                for m in ["gold@KL=2", "gold@KL=5", "peak", "drop/nat"]:
                    row[m] = paired([keyed.loc[(variant, other, s), m] - keyed.loc[(variant, "ppo", s), m] for s in seeds])
                rows.append(row)
        for stage in RL:
            seeds = sorted(set(keyed.loc[("grm-sft", stage)].index) & set(keyed.loc[("bt", stage)].index)) \
                if {"grm-sft", "bt"} <= set(g.variant) else []
            if seeds:
                row = {"proxy": "grm-sft − bt", "comparison": stage.upper()}
                for m in ["gold@KL=2", "gold@KL=5", "peak", "drop/nat"]:
                    row[m] = paired([keyed.loc[("grm-sft", stage, s), m] - keyed.loc[("bt", stage, s), m] for s in seeds])
                rows.append(row)
        print(markdown(rows, ["proxy", "comparison", "gold@KL=2", "gold@KL=5", "peak", "drop/nat"]))

    if len(dpo):
        print("\n### Direct alignment (DPO, IPO): gold gain at the end of training against PPO (`bt`) at the same KL\n")
        ppo_bt = rl[(rl.stage == "ppo") & (rl.variant == "bt")].set_index(["noise", "seed"])
        rows = []
        for (noise, steps, loss, beta), x in dpo.groupby(["noise", "steps", "loss", "beta"], dropna=False):
            at_kl = []
            for _, r in x.iterrows():
                if (noise, r.seed) in ppo_bt.index:
                    p = ppo_bt.loc[(noise, r.seed)]
                    at_kl.append(r["end"] - interpolate(p.kl, np.asarray(p.gold) - p.gold[0], r["final KL"]))
            rows.append({"noise": f"{noise:g}", "steps": steps, "loss": loss.upper(), "β": f"{beta:g}", "seeds": len(x),
                         "final KL": mean_sem(x["final KL"], signed=False), "gold gain at end": mean_sem(x["end"]),
                         "peak": mean_sem(x["peak"]), "KL@peak": mean_sem(x["KL@peak"], signed=False),
                         "minus PPO (bt) at that KL": paired(at_kl)})
        print(markdown(rows, ["noise", "steps", "loss", "β", "seeds", "final KL", "gold gain at end", "peak", "KL@peak",
                              "minus PPO (bt) at that KL"]))


def mean_curve(group, grid):
    ys = [np.array([interpolate(r.kl, r.gold - r.gold[0], k) for k in grid]) for _, r in group.iterrows()]
    ys = np.array(ys)
    reached = (~np.isnan(ys)).sum(axis=0)
    mean = np.where(reached == len(ys), np.nanmean(np.where(np.isnan(ys), 0, ys), axis=0), np.nan)
    sem = ys.std(axis=0, ddof=1) / math.sqrt(len(ys)) if len(ys) > 1 else np.zeros_like(mean)
    return mean, sem


def figure(rl, dpo, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    noises = sorted(rl.noise.unique())
    fig, axes = plt.subplots(len(noises), 3, figsize=(13, 3.6 * len(noises)), squeeze=False, sharey="row")
    colours = {"ppo": "#1f77b4", "grpo": "#d62728", "rloo": "#2ca02c"}
    for i, noise in enumerate(noises):
        for j, variant in enumerate(["bt", "grm-sft"]):
            ax = axes[i][j]
            for stage in RL:
                g = rl[(rl.noise == noise) & (rl.variant == variant) & (rl.stage == stage)]
                if not len(g):
                    continue
                grid = np.linspace(0, min(r.kl.max() for _, r in g.iterrows()), 60)
                m, s = mean_curve(g, grid)
                ax.plot(grid, m, color=colours[stage], label=f"{stage.upper()} ({len(g)} seeds)")
                ax.fill_between(grid, m - s, m + s, color=colours[stage], alpha=0.15, lw=0)
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_title(f"RL against {variant}, label noise {noise:g}")
            ax.set_xlabel("KL to the base policy (nats)")
            ax.legend(fontsize=8)
        ax = axes[i][2]
        d = dpo[dpo.noise == noise]
        d = d[d.steps == d.steps.max()]
        for (loss, beta), g in d.groupby(["loss", "beta"], dropna=False):
            grid = np.linspace(0, min(r.kl.max() for _, r in g.iterrows()), 40)
            m, s = mean_curve(g, grid)
            ax.plot(grid, m, ls="-" if loss == "dpo" else "--", label=f"{loss.upper()} β={beta:g}")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"DPO / IPO ({d.steps.max() if len(d) else 0} steps), label noise {noise:g}")
        ax.set_xlabel("KL to the base policy (nats)")
        ax.legend(fontsize=7)
        axes[i][0].set_ylabel("gold gain over the base policy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nwrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", help="the sweeps' output folders")
    parser.add_argument("--figure", help="also draw the mean curves (PNG, SVG or PDF)")
    args = parser.parse_args(argv)
    rl, dpo = load(args.folders)
    tables(rl, dpo)
    if args.figure:
        figure(rl, dpo, args.figure)


if __name__ == "__main__":
    main()
