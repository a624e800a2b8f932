#!/usr/bin/env python3
"""The claims table of results/README.md, computed from `overopt compare --json` output.

Usage:
    python3 results/verdicts.py COMPARE.json [COMPARE.json ...]            # print the table
    python3 results/verdicts.py COMPARE.json ... --write results/README.md  # replace its block

Each claim below names an experiment (the `name` of its runs), the settings of the group it
is tested in (e.g. label noise 0.25), a variant compared with the baseline `bt`, a metric of
`overopt compare` and the direction the claim predicts (+1: the variant is higher, −1: lower).
The verdict of a claim comes from the paired difference variant − bt over seeds:

    supported     the 95 % t interval lies on the predicted side of zero
    contradicted  the 95 % t interval lies on the other side of zero
    not decided   the interval straddles zero

The table also gives the bootstrap interval, the seeds on the claim's side (the variant
higher than `bt` for a +1 claim, lower for a −1 claim) out of all seeds, and the sign-flip
p-value after Holm's correction over the variants compared. The p-value is shown, not used
for the verdict: with n seeds the exact sign-flip test cannot go below 2/2ⁿ (0.0625 at five
seeds), so a p threshold would leave every five-seed claim undecided whatever the data.

Claims whose experiment is absent from the given files are counted in a line under the
table ("not run yet: …"). `--write`
replaces the text between the markers `<!-- verdicts:begin -->` and `<!-- verdicts:end -->`.
Needs the Python standard library only.
"""
import argparse
import json
import math
import sys

BEGIN, END = "<!-- verdicts:begin -->", "<!-- verdicts:end -->"
CLEAN, NOISY = {"data.label_noise": "0"}, {"data.label_noise": "0.25"}
GRM = ["grm-sft", "grm-dpo-noref", "grm-dpo"]

# (claim, experiment, settings, variants, metric, direction)
CLAIMS = [
    ("GRM keeps more gold under PPO at matched KL (clean)", "claims-small", CLEAN, GRM, "ppo/gold@kl=5", +1),
    ("GRM keeps more gold under PPO at matched KL (clean)", "claims-small", CLEAN, GRM, "ppo/gold@kl=10", +1),
    ("GRM's PPO gold declines less from its peak (clean)", "claims-small", CLEAN, GRM, "ppo/drop_from_peak", -1),
    ("GRM keeps more gold under PPO at matched KL (25 % noise)", "claims-small", NOISY, GRM, "ppo/gold@kl=5", +1),
    ("GRM's PPO gold declines less from its peak (25 % noise)", "claims-small", NOISY, GRM, "ppo/drop_from_peak", -1),
    ("GRM reaches more gold under best-of-n (clean)", "claims-small", CLEAN, GRM, "bon/gold@n=256", +1),
    ("GRM reaches more gold under best-of-n (25 % noise)", "claims-small", NOISY, GRM, "bon/gold@n=256", +1),
    ("GRM generalizes better out of distribution (clean)", "claims-small", CLEAN, GRM, "rm/ood_accuracy/heldout_prompts", +1),
    ("GRM generalizes better out of distribution (clean)", "claims-small", CLEAN, GRM, "rm/ood_accuracy/ood_writer", +1),
    ("GRM is robust to 25 % label noise (OOD accuracy)", "claims-small", NOISY, GRM, "rm/ood_accuracy/heldout_prompts", +1),
    ("GRM keeps the LM head's preference accuracy (clean)", "claims-small", CLEAN, GRM, "rm/lm_preference_accuracy", +1),
    ("An ensemble over-optimizes less under PPO (clean)", "claims-small", CLEAN, ["ensemble"], "ppo/gold@kl=5", +1),
    ("An ensemble reaches more gold under best-of-n (clean)", "claims-small", CLEAN, ["ensemble"], "bon/gold@n=256", +1),
    ("A margin loss helps little (ID accuracy, clean)", "claims-small", CLEAN, ["margin"], "rm/id_accuracy", +1),
    ("GRM's advantage carries over to GRPO (clean)", "optimizers", CLEAN, ["grm-sft"], "grpo/gold@kl=5", +1),
    ("GRM's advantage carries over to RLOO (clean)", "optimizers", CLEAN, ["grm-sft"], "rloo/gold@kl=5", +1),
    ("GRM keeps more gold under PPO at matched KL (clean, optimizer runs)", "optimizers", CLEAN, ["grm-sft"], "ppo/gold@kl=5", +1),
    ("GRM's advantage carries over to GRPO (25 % noise)", "optimizers", NOISY, ["grm-sft"], "grpo/gold@kl=5", +1),
    ("GRM's advantage carries over to RLOO (25 % noise)", "optimizers", NOISY, ["grm-sft"], "rloo/gold@kl=5", +1),
    ("GRM keeps more gold under PPO at matched KL (25 % noise, optimizer runs)", "optimizers", NOISY, ["grm-sft"], "ppo/gold@kl=5", +1),
]

def lowercase_first(claim):
    """'An ensemble …' → 'an ensemble …'; an acronym ('GRM …') stays as it is."""
    return claim if claim[:2].isupper() else claim[0].lower() + claim[1:]


# The large-preset rerun tests the same claims with the proxies it trained: the GRM claims
# for the two GRM regularizers that work at the small preset, the ensemble's claims for the
# ensemble (no margin or `grm-dpo` proxies at that size).
LARGE_VARIANTS = {"grm-sft", "grm-dpo-noref", "ensemble"}
CLAIMS += [
    ("At the large preset: " + lowercase_first(claim), "claims-large", settings,
     [v for v in variants if v in LARGE_VARIANTS], metric, direction)
    for claim, experiment, settings, variants, metric, direction in CLAIMS
    if experiment == "claims-small" and any(v in LARGE_VARIANTS for v in variants)
]


def verdict(d, direction):
    """'supported', 'contradicted' or 'not decided' for a paired difference (see the header)."""
    low, high = d["tLow"] * direction, d["tHigh"] * direction
    if direction < 0:
        low, high = high, low
    if low > 0:
        return "supported"
    if high < 0:
        return "contradicted"
    return "not decided"


def on_claims_side(d, direction):
    """Seeds whose difference has the sign the claim predicts (ties count for neither side)."""
    return d["wins"] if direction > 0 else d["losses"]


def number(x):
    """JSON numbers; `overopt compare` writes non-finite values as the strings "nan", "inf",
    "-inf", which float() reads as they are."""
    return float(x)


def find_group(groups, experiment, settings):
    for g in groups:
        if g["group"].rsplit("-", 1)[0] != experiment:
            continue
        if all(g.get("settings", {}).get(k) == v for k, v in settings.items()):
            return g
    return None


def table(groups, claims=CLAIMS):
    lines = ["| claim | variant − bt | metric | Δ mean | 95 % t interval | 95 % bootstrap | seeds on the claim's side | p (Holm) | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    missing = {}
    for claim, experiment, settings, variants, metric, direction in claims:
        group = find_group(groups, experiment, settings)
        if group is None:
            missing[experiment] = missing.get(experiment, 0) + len(variants)
            continue
        for variant in variants:
            cells = [claim, variant, f"`{metric}`"]
            row = next((r for r in group["rows"] if r["metric"] == metric and r["variant"] == variant), None)
            if row is None or row.get("difference") is None:
                note = (row or {}).get("note") or "no such metric"
                cells += ["–"] * 5 + [f"not decided ({note})"]
            else:
                d = {k: number(v) if k not in ("seeds", "wins", "losses", "ties") else v for k, v in row["difference"].items()}
                cells += [f"{d['mean']:+.3f}", f"[{d['tLow']:+.3f}, {d['tHigh']:+.3f}]",
                          f"[{d['bootstrapLow']:+.3f}, {d['bootstrapHigh']:+.3f}]",
                          f"{on_claims_side(d, direction)}/{d['seeds']}", f"{d['pHolm']:.3g}", f"**{verdict(d, direction)}**"]
            lines.append("| " + " | ".join(cells) + " |")
    if missing:
        lines.append("")
        lines.append("Not run yet: " + ", ".join(f"`{e}` ({n} comparisons)" for e, n in missing.items()) + ".")
    return "\n".join(lines)


def replace_block(text, block):
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"error: the file has no {BEGIN} … {END} block to replace")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("compare_json", nargs="+", help="output of `overopt compare … --json`")
    parser.add_argument("--write", metavar="README", help="replace the verdicts block of this Markdown file")
    args = parser.parse_args(argv)
    groups = []
    for path in args.compare_json:
        try:
            with open(path) as f:
                groups += json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"error: cannot read {path}: {e}")
    block = table(groups)
    if args.write:
        with open(args.write) as f:
            text = f.read()
        with open(args.write, "w") as f:
            f.write(replace_block(text, block))
    else:
        print(block)


if __name__ == "__main__":
    sys.exit(main())
