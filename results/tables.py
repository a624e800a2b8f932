#!/usr/bin/env python3
"""Markdown tables of a folder of OverOpt run files (one per seed), as in results/README.md.

Usage: python3 results/tables.py RUN_FOLDER [RUN_FOLDER ...]

Per proxy variant, across seeds (mean ± sem, sem = std/sqrt(n), std with n − 1):
  reward models: ID accuracy, OOD accuracy (mean of the OOD sets), and each OOD set;
  best-of-n: gold gain (vs n = 1) at the seed's peak and the KL of that peak, gold and
             proxy gains at the largest n, and the drop from the peak to the largest n;
  PPO: gold gain (vs step 0) at the peak and its KL, at matched KL = 5 and 10 nats (linear
       interpolation; seeds that never reach that KL are left out), gold and proxy gains at
       the last evaluation and its KL, and the drop from the peak to the last evaluation.
Over-optimization shows as a proxy that keeps rising while gold drops from its peak.
Needs h5py and numpy only.
"""
import glob
import math
import sys

import h5py
import numpy as np


def mean_sem(values):
    v = np.asarray([x for x in values if x == x], dtype=float)
    if len(v) == 0:
        return "–"
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{v.mean():.3f} ± {v.std(ddof=1) / math.sqrt(len(v)):.3f}"


def load(folder):
    runs = []
    for path in sorted(glob.glob(f"{folder}/*.h5")):
        with h5py.File(path, "r") as f:
            if f.attrs.get("complete", 0) != 1:
                continue
            run = {"seed": int(f.attrs["seed"]), "rm": {}, "bon": {}, "ppo": {}}
            for v in f.get("rm", {}):
                g = f["rm"][v]
                ood = {k: float(g["ood_accuracy"][k][()]) for k in g["ood_accuracy"]}
                run["rm"][v] = dict(id=float(g["id_accuracy"][()]), ood=float(g["ood_accuracy_mean"][()]), sets=ood,
                                    lm_nll=float(g["lm_nll"][()]))
            for v in f.get("bon", {}):
                g = f["bon"][v]
                run["bon"][v] = {k: g[k][()] for k in ("kl", "gold_shifted", "proxy_shifted", "gold_sem")}
            for v in f.get("ppo", {}):
                g = f["ppo"][v]
                run["ppo"][v] = {k: g[k][()] for k in ("kl", "gold", "proxy")}
            runs.append(run)
    return runs


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def report(folder):
    runs = load(folder)
    if not runs:
        print(f"{folder}: no complete run files")
        return
    variants = list(runs[0]["rm"].keys())
    print(f"### {folder} ({len(runs)} seeds: {sorted(r['seed'] for r in runs)})\n")
    sets = sorted(runs[0]["rm"][variants[0]]["sets"].keys()) if variants else []
    rows = []
    for v in variants:
        rs = [r["rm"][v] for r in runs if v in r["rm"]]
        rows.append([v, mean_sem([x["id"] for x in rs]), mean_sem([x["ood"] for x in rs])]
                    + [mean_sem([x["sets"][s] for x in rs]) for s in sets] + [mean_sem([x["lm_nll"] for x in rs])])
    print(table(["variant", "ID acc", "OOD acc (mean)"] + sets + ["LM NLL"], rows), "\n")

    if any(r["bon"] for r in runs):
        rows = []
        for v in variants:
            cs = [r["bon"][v] for r in runs if v in r["bon"]]
            if not cs:
                continue
            peak = [c["gold_shifted"].max() for c in cs]
            peak_kl = [c["kl"][c["gold_shifted"].argmax()] for c in cs]
            last = [c["gold_shifted"][-1] for c in cs]
            rows.append([v, mean_sem(peak), mean_sem(peak_kl), mean_sem(last), mean_sem([p - l for p, l in zip(peak, last)]),
                         mean_sem([c["proxy_shifted"][-1] for c in cs]), f"{cs[0]['kl'][-1]:.2f}"])
        print(table(["best-of-n", "gold peak", "KL at peak", "gold at max n", "drop from peak", "proxy at max n", "max KL"], rows), "\n")

    if any(r["ppo"] for r in runs):
        rows = []
        for v in variants:
            cs = [r["ppo"][v] for r in runs if v in r["ppo"]]
            if not cs:
                continue
            gains = [c["gold"] - c["gold"][0] for c in cs]
            peak = [g.max() for g in gains]
            peak_kl = [c["kl"][g.argmax()] for c, g in zip(cs, gains)]
            def at(c, g, kl):
                order = np.argsort(c["kl"])
                x, y = c["kl"][order], g[order]
                return float(np.interp(kl, x, y)) if x[-1] >= kl else float("nan")
            rows.append([v, mean_sem(peak), mean_sem(peak_kl),
                         mean_sem([at(c, g, 5) for c, g in zip(cs, gains)]), mean_sem([at(c, g, 10) for c, g in zip(cs, gains)]),
                         mean_sem([g[-1] for g in gains]), mean_sem([g.max() - g[-1] for g in gains]),
                         mean_sem([c["proxy"][-1] - c["proxy"][0] for c in cs]), mean_sem([c["kl"][-1] for c in cs])])
        print(table(["PPO", "gold peak", "KL at peak", "gold at KL 5", "gold at KL 10", "gold at end", "drop from peak",
                     "proxy at end", "KL at end"], rows), "\n")


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        report(folder)
