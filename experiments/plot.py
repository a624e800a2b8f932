#!/usr/bin/env python3
"""Draw OverOpt's over-optimization figure with matplotlib, through the overopt package.

    python3 experiments/plot.py RUN_OR_SUMMARY.h5 [-o fig.png -o fig.pdf] [--variants bt,grm-sft]
                                [--sqrt-kl] [--fits] [--title TEXT]

Gold (solid) and proxy (dashed) score against KL (nats), one colour per proxy variant, a
panel for best-of-n and one for PPO, shifted so that the initial policy (n = 1, step 0) is 0.
From a collect summary: mean ± sem across seeds, one row per group, labelled by the config
keys that differ between the groups. A summary of reward models only (Fig. 1 style) gives
ID (solid) and mean OOD (dashed) accuracy against the config key its groups differ in.
--fits overlays Gao et al.'s fits d(α − βd) (best-of-n) and d(α − β log d) (PPO), d = √KL,
as thin dotted lines. The options mean what they mean for `overopt plot`. Writes every -o
given (.png, .pdf or .svg; default: figure.png and figure.pdf). Needs the overopt package
(pip install ./python, or run from the repository) and matplotlib.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import overopt
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
    import overopt

FORMATS = {".png", ".pdf", ".svg"}
STAGE_TITLES = {"bon": "Best-of-n", "ppo": "PPO", "grpo": "GRPO", "rloo": "RLOO", "dpo": "DPO / IPO"}


def group_labels(frame, keys):
    """{group: "label_noise = 0.25"} from the config keys that differ between groups."""
    short = [k.split(".")[-1] for k in keys]
    if len(set(short)) < len(short):
        short = keys
    labels = {}
    for group, rows in frame.groupby("group", sort=False):
        first = rows.iloc[0]
        labels[group] = ", ".join(f"{s} = {first[k]}" for k, s in zip(keys, short)) or first["name"]
    return labels


def summary_rows(path, variants):
    """[(row label, {stage: [(variant, curve, kl, mean, sem, fit (α, β) or None)]})] of a summary."""
    df = overopt.load_summary(path)
    keys = list(df.columns[df.columns.get_loc("name") + 1: df.columns.get_loc("stage")])
    labels = group_labels(df, keys)
    fits = overopt.load_fits(path)
    rows = []
    for group, g in df.groupby("group", sort=False):
        stages = {}
        for stage in STAGE_TITLES:
            lines = []
            for variant in variants or sorted(g.loc[g["stage"] == stage, "variant"].unique()):
                for curve in ("gold", "proxy"):
                    sel = g[(g["stage"] == stage) & (g["variant"] == variant) & (g["quantity"] == f"{curve}_shifted")]
                    mean, sem = sel[sel["statistic"] == "mean"], sel[sel["statistic"] == "sem"]
                    if mean.empty:
                        continue
                    fit = fits[(fits["group"] == group) & (fits["stage"] == stage) & (fits["variant"] == variant)
                               & (fits["quantity"] == curve)]
                    ab = (fit["alpha"].iloc[0], fit["beta"].iloc[0]) if len(fit) else None
                    lines.append((variant, curve, mean["kl"].to_numpy(), mean["value"].to_numpy(),
                                  sem["value"].to_numpy() if len(sem) == len(mean) else None, ab))
            if lines:
                stages[stage] = lines
        if stages:
            rows.append((labels[group], stages))
    return rows, df, keys


def run_rows(path, variants):
    """The same for a run file (one seed): no bands; fits computed from the curve itself."""
    df = overopt.load_runs(path)
    stages = {}
    for stage in STAGE_TITLES:
        lines = []
        s = df[df["stage"] == stage]
        for variant in variants or sorted(s["variant"].unique()):
            for curve in ("gold", "proxy"):
                sel = s[(s["variant"] == variant) & (s["quantity"] == curve)]
                if sel.empty:
                    continue
                x = "n" if stage == "bon" else "step"
                sel = sel.sort_values(x)
                start = sel[x].astype(int).to_numpy()
                i0 = int(np.argmin(start)) if stage == "bon" else int(np.flatnonzero(start == 0)[0]) if (start == 0).any() else 0
                y = sel["value"].to_numpy() - sel["value"].to_numpy()[i0]
                kl = sel["kl"].to_numpy()
                lines.append((variant, curve, kl, y, None, overopt.fit_gao(stage, kl, y)))
        if lines:
            stages[stage] = lines
    return ([("", stages)] if stages else []), df


def draw_kl(ax, lines, stage, title, colours, args):
    for variant, curve, kl, y, band, fit in lines:
        colour = colours.setdefault(variant, f"C{len(colours) % 10}")
        x = np.sqrt(np.maximum(kl, 0)) if args.sqrt_kl else kl
        ax.plot(x, y, color=colour, linestyle="-" if curve == "gold" else "--", linewidth=1.8,
                label=f"{variant} {curve}")
        if band is not None and np.isfinite(band).any():
            ax.fill_between(x, y - band, y + band, color=colour, alpha=0.15, linewidth=0)
        if args.fits and fit is not None and np.all(np.isfinite(fit)):
            grid = np.linspace(0, np.nanmax(kl), 100)
            gx = np.sqrt(grid) if args.sqrt_kl else grid
            ax.plot(gx, overopt.gao_fit_curve(stage, grid, *fit), color=colour, linestyle=":", linewidth=1.2,
                    label="_nolegend_")
    ax.axhline(0, color="0.6", linewidth=0.8)
    ax.set(title=title, xlabel="√KL (√nats)" if args.sqrt_kl else "KL (nats)",
           ylabel="Δ score (vs initial policy)")


def accuracy_figure(plt, df, keys, args, name):
    """Fig. 1 style: ID and mean OOD accuracy (mean ± sem over seeds) vs the one numeric key."""
    numeric = [k for k in keys if np.issubdtype(np.asarray(df[k].tolist()).dtype, np.number)]
    if len(keys) != 1 or not numeric:
        raise SystemExit(f"error: {name}: no best-of-n or PPO curves, and its groups do not differ in exactly "
                         f"one numeric config key (they differ in: {', '.join(keys) or 'nothing'})")
    key = numeric[0]
    rm = df[df["stage"] == "rm"]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colours = {}
    for variant in args.variants or sorted(rm["variant"].unique()):
        colour = colours.setdefault(variant, f"C{len(colours) % 10}")
        for quantity, style, label in (("id_accuracy", "-", "ID"), ("ood_accuracy_mean", "--", "OOD (mean)")):
            sel = rm[(rm["variant"] == variant) & (rm["quantity"] == quantity)]
            mean = sel[sel["statistic"] == "mean"].sort_values(key)
            sem = sel[sel["statistic"] == "sem"].sort_values(key)
            if mean.empty:
                continue
            ax.errorbar(mean[key], mean["value"], yerr=sem["value"].to_numpy(), color=colour, linestyle=style,
                        marker="o", capsize=3, label=f"{variant} {label}")
    ax.set(xlabel=key, ylabel="accuracy against gold labels", title=args.title or f"{name}: mean ± sem across seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("-o", "--output", action="append", help="figure file (.png, .pdf, .svg); repeatable")
    parser.add_argument("--variants", help="only these variants, comma-separated, in this order")
    parser.add_argument("--sqrt-kl", action="store_true", help="plot against √KL instead of KL")
    parser.add_argument("--fits", action="store_true", help="overlay Gao et al.'s fits")
    parser.add_argument("--title", help="the figure's title (default: the file name)")
    args = parser.parse_args()
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    outputs = args.output or ["figure.png", "figure.pdf"]
    for out in outputs:
        if Path(out).suffix.lower() not in FORMATS:
            raise SystemExit(f"error: cannot write {out}: expected a .png, .pdf or .svg file name")
        if not Path(out).resolve().parent.is_dir():
            raise SystemExit(f"error: cannot write {out}: no folder {Path(out).parent}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = Path(args.file).name
    try:
        if overopt.file_kind(args.file) == "summary":
            rows, df, keys = summary_rows(args.file, args.variants)
            present = set(df["variant"])
        else:
            rows, df = run_rows(args.file, args.variants)
            present = set(overopt.load_rewards(args.file)["variant"]) | set(df["variant"])
    except overopt.OverOptFileError as error:
        raise SystemExit(f"error: {error}")
    missing = [v for v in args.variants or [] if v not in present]
    if missing:
        raise SystemExit(f"error: {args.file}: no variant '{missing[0]}' (has: {', '.join(sorted(present))})")

    if rows:
        cols = max(len(stages) for _, stages in rows)
        width = 5.5 * cols + 2.2  # the panels and the legend to their right
        fig, axes = plt.subplots(len(rows), cols, figsize=(width, 4 * len(rows) + 0.4), squeeze=False)
        colours = {}
        for r, (label, stages) in enumerate(rows):
            for c, (stage, lines) in enumerate(stages.items()):
                draw_kl(axes[r][c], lines, stage, STAGE_TITLES[stage] + (f" · {label}" if label else ""), colours, args)
            for c in range(len(stages), cols):
                axes[r][c].axis("off")
        legend = {}  # label → handle, over every panel
        for ax in axes.flat:
            legend.update(zip(*reversed(ax.get_legend_handles_labels())))
        if args.fits:
            from matplotlib.lines import Line2D
            legend["Gao et al. fit"] = Line2D([], [], color="black", linestyle=":", linewidth=1.2)
        fig.legend(legend.values(), legend.keys(), loc="center right", fontsize=8)
        fig.suptitle(args.title or name)
        fig.tight_layout(rect=(0, 0, 5.5 * cols / width, 1))
    elif "stage" in df and "group" in df:
        fig = accuracy_figure(plt, df, keys, args, name)
    else:
        raise SystemExit(f"error: {args.file}: no best-of-n or PPO curves")
    for out in outputs:
        try:
            fig.savefig(out, dpi=150)
        except OSError as error:
            raise SystemExit(f"error: cannot write {out}: {error.strerror or error}")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
