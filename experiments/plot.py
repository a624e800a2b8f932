#!/usr/bin/env python3
"""Draw the over-optimization figure from an overopt result file, outside the tool.

    python3 experiments/plot.py RUN_OR_SUMMARY.h5 [-o fig.png]

Gold (solid) and proxy (dashed) score against KL (nats), one colour per proxy variant, a
panel for best-of-n and one for PPO, shifted so that the initial policy (n = 1, step 0) is 0.
For a collect summary (root attribute kind = "summary"): mean ± sem across seeds, one row
per group. Needs h5py and matplotlib (not dependencies of overopt). Schema used:

  run file:  /bon/<variant>/{kl, gold, proxy}   /ppo/<variant>/{step, kl, gold, proxy}
  summary:   /groups/<g>/{bon,ppo}/<variant>/{kl, <c>_shifted_mean, <c>_shifted_sem}, c = gold, proxy
"""
import argparse

import h5py
import matplotlib.pyplot as plt
import numpy as np


def run_series(section):
    """(variant, curve, kl, shifted score, band) per curve of a run file's bon/ or ppo/ group."""
    for variant, g in section.items():
        start = 0
        if "step" in g:
            steps = list(g["step"][()])
            start = steps.index(0) if 0 in steps else 0
        for curve in ("gold", "proxy"):
            y = g[curve][()]
            yield variant, curve, g["kl"][()], y - y[start], None


def summary_series(section):
    """The same for a summary's group: mean curve and sem band."""
    for variant, g in section.items():
        for curve in ("gold", "proxy"):
            yield (variant, curve, g["kl"][()], g[f"{curve}_shifted_mean"][()], g[f"{curve}_shifted_sem"][()])


def draw(ax, series, title, colours):
    for variant, curve, kl, y, band in series:
        colour = colours.setdefault(variant, f"C{len(colours) % 10}")
        ax.plot(kl, y, color=colour, linestyle="-" if curve == "gold" else "--",
                label=f"{variant} {curve}")
        if band is not None and np.isfinite(band).any():
            ax.fill_between(kl, y - band, y + band, color=colour, alpha=0.15, linewidth=0)
    ax.axhline(0, color="0.6", linewidth=0.8)
    ax.set(title=title, xlabel="KL (nats)", ylabel="Δ score (vs initial policy)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("-o", "--output", default="figure.png")
    args = parser.parse_args()

    with h5py.File(args.file, "r") as f:
        if f.attrs.get("kind") == "summary":
            rows = [(name, g, summary_series) for name, g in f["groups"].items()]
        else:
            rows = [("", f, run_series)]
        rows = [(name, g, read, [s for s in ("bon", "ppo") if s in g]) for name, g, read in rows]
        cols = max(len(sections) for *_, sections in rows)
        fig, axes = plt.subplots(len(rows), cols, figsize=(5.5 * cols, 4 * len(rows)), squeeze=False)
        colours = {}
        for r, (name, g, read, sections) in enumerate(rows):
            for c, section in enumerate(sections):
                title = {"bon": "Best-of-n", "ppo": "PPO"}[section] + (f" · {name}" if name else "")
                draw(axes[r][c], list(read(g[section])), title, colours)
        legend = {}  # label → handle, over every panel
        for ax in axes.flat:
            legend.update(zip(*reversed(ax.get_legend_handles_labels())))
        fig.legend(legend.values(), legend.keys(), loc="center right")
        fig.tight_layout(rect=(0, 0, 0.82, 1))
        fig.savefig(args.output, dpi=150)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
