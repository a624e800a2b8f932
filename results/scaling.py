#!/usr/bin/env python3
"""Markdown tables of a summary's /scaling group (written by `overopt collect` when a sweep's
groups differ in one key): gold α and β of each stage's fit, with their 95% bootstrap
intervals over seeds and R², one row per value of the key, one column block per variant.

Usage: python3 results/scaling.py SUMMARY.h5 [--stage bon|ppo] [--variants bt,grm-sft]

The fits are those of Gao et al. 2022: gold(d) = d(α − β d) for best-of-n and
d(α − β log d) for RL, with d = √KL. Needs h5py and numpy only.
"""
import argparse
import sys

import h5py


def interval(mid, low, high):
    """`0.318 [0.135, 0.524]`, with a true minus sign."""
    return " ".join([f"{mid:.3f}", f"[{low:.3f}, {high:.3f}]"]).replace("-", "−")


def scaling_rows(summary, stage, variants=None):
    """The key's name and, per value of the key, {variant: (α, α_low, α_high, β, β_low,
    β_high, R², seeds)} for `stage` ("bon" or "ppo")."""
    with h5py.File(summary, "r") as f:
        if "scaling" not in f or stage not in f["scaling"]:
            raise SystemExit(f"{summary}: no /scaling/{stage} (collect writes it when the groups differ in one key)")
        attrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f["scaling"].attrs.items()}
        key, x_name = attrs["key"], attrs.get("x_name", attrs["key"])
        group = f["scaling"][stage]
        names = list(group) if variants is None else variants
        missing = [v for v in names if v not in group]
        if missing:
            raise SystemExit(f"{summary}: no variant {', '.join(missing)} in /scaling/{stage} (it has {', '.join(group)})")
        rows, xs = {}, {}
        for v in names:
            g = group[v]
            values = [x.decode() if isinstance(x, bytes) else str(x) for x in g["value"][()]]
            fields = [g[n][()] for n in ("gold_alpha", "gold_alpha_low", "gold_alpha_high",
                                          "gold_beta", "gold_beta_low", "gold_beta_high", "gold_r2", "seeds")]
            for i, value in enumerate(values):
                rows.setdefault(value, {})[v] = tuple(float(col[i]) for col in fields)
                xs[value] = float(g["x"][i])
        # The key's numeric axis gets its own column where it is not the value itself
        # (rm.base: the proxies' parameters).
        shown = x_name if any(_number(value) != x for value, x in xs.items()) else None
        return key, names, rows, (shown, xs)


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def markdown(key, names, rows, axis=(None, {})):
    x_name, xs = axis
    head = f"| `{key}` | " + (f"{x_name} | " if x_name else "") + " | ".join(f"`{v}` α | `{v}` β | R²" for v in names) + " | seeds |"
    lines = [head, "|" + "---|" * (1 + (1 if x_name else 0) + 3 * len(names) + 1)]
    for value, by_variant in rows.items():
        cells = []
        seeds = set()
        for v in names:
            if v not in by_variant:
                cells += ["–", "–", "–"]
                continue
            a, al, ah, b, bl, bh, r2, n = by_variant[v]
            cells += [interval(a, al, ah), interval(b, bl, bh), f"{r2:.2f}"]
            seeds.add(int(n))
        x = f"{xs[value]:,.0f} | ".replace(",", " ") if x_name else ""
        lines.append(f"| {value} | {x}" + " | ".join(cells) + f" | {', '.join(str(s) for s in sorted(seeds))} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary")
    parser.add_argument("--stage", choices=["bon", "ppo"], default="ppo")
    parser.add_argument("--variants", help="comma-separated, in column order (default: all)")
    args = parser.parse_args(argv)
    variants = args.variants.split(",") if args.variants else None
    print(markdown(*scaling_rows(args.summary, args.stage, variants)))


if __name__ == "__main__":
    sys.exit(main())
