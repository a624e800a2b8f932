"""results/verdicts.py: the verdict rule, group matching by experiment and settings, and the
README block it replaces."""
import importlib.util
import json

import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("verdicts", REPO / "results" / "verdicts.py")
verdicts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(verdicts)


def difference(mean, low, high, p_holm, wins=8, seeds=10):
    return {"mean": mean, "tLow": low, "tHigh": high, "bootstrapLow": low / 2, "bootstrapHigh": high / 2,
            "pValue": p_holm / 3, "pHolm": p_holm, "wins": wins, "losses": seeds - wins, "ties": 0, "seeds": seeds,
            "standardDeviation": 0.1}


@pytest.mark.parametrize("d, direction, expected", [
    (difference(0.3, 0.1, 0.5, 0.01), +1, "supported"),
    (difference(0.3, 0.1, 0.5, 0.0625), +1, "supported"),     # five seeds: p cannot go below 0.0625
    (difference(0.1, -0.1, 0.3, 0.01), +1, "not decided"),    # the interval straddles zero
    (difference(-0.3, -0.5, -0.1, 0.01), +1, "contradicted"),
    (difference(-0.3, -0.5, -0.1, 0.01), -1, "supported"),    # a claim that the variant is lower
    (difference(0.3, 0.1, 0.5, 0.01), -1, "contradicted"),
])
def test_verdict_rule(d, direction, expected):
    assert verdicts.verdict(d, direction) == expected


def test_table_matches_groups_by_experiment_and_settings(tmp_path):
    rows = [{"metric": "ppo/gold@kl=5", "variant": "grm-sft", "difference": difference(0.3, 0.1, 0.5, 0.01)},
            {"metric": "ppo/gold@kl=10", "variant": "grm-sft", "difference": None, "note": "KL 10 reached by 7 of 10 seeds"}]
    noisy = [{"metric": "ppo/gold@kl=5", "variant": "grm-sft", "difference": difference(-0.05, -0.2, 0.1, 1.0)}]
    groups = [{"group": "claims-small-1234abcd", "settings": {"data.label_noise": "0"}, "rows": rows},
              {"group": "claims-small-99999999", "settings": {"data.label_noise": "0.25"}, "rows": noisy}]
    claims = [("clean claim", "claims-small", verdicts.CLEAN, ["grm-sft"], "ppo/gold@kl=5", +1),
              ("clean at 10", "claims-small", verdicts.CLEAN, ["grm-sft"], "ppo/gold@kl=10", +1),
              ("noisy claim", "claims-small", verdicts.NOISY, ["grm-sft"], "ppo/gold@kl=5", +1),
              ("large claim", "claims-large", verdicts.CLEAN, ["grm-sft"], "ppo/gold@kl=5", +1)]
    lines = verdicts.table(groups, claims).splitlines()[2:]
    assert "+0.300" in lines[0] and "[+0.100, +0.500]" in lines[0] and "8/10" in lines[0] and "**supported**" in lines[0]
    assert "not decided (KL 10 reached by 7 of 10 seeds)" in lines[1]
    assert "-0.050" in lines[2] and "**not decided**" in lines[2]
    assert len(lines) == 5 and lines[3] == "" and lines[4] == "Not run yet: `claims-large` (1 comparisons)."

    # The command line reads compare JSON and replaces only the marked block of a README.
    source = tmp_path / "compare.json"
    source.write_text(json.dumps(groups))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Results\n\nbefore\n{verdicts.BEGIN}\nold table\n{verdicts.END}\nafter\n")
    verdicts.main([str(source), "--write", str(readme)])
    text = readme.read_text()
    assert text.startswith("# Results\n\nbefore\n") and text.endswith(f"{verdicts.END}\nafter\n")
    assert "old table" not in text and "| claim | variant − bt |" in text
    with pytest.raises(SystemExit):
        verdicts.main([str(tmp_path / "missing.json")])


def test_seeds_on_the_claims_side_count_losses_for_a_claim_that_the_variant_is_lower():
    d = difference(-0.2, -0.4, -0.05, 0.1, wins=1, seeds=5)
    assert verdicts.on_claims_side(d, +1) == 1
    assert verdicts.on_claims_side(d, -1) == 4
    groups = [{"group": "claims-small-1234abcd", "settings": {"data.label_noise": "0"},
               "rows": [{"metric": "ppo/drop_from_peak", "variant": "grm-sft", "difference": d}]}]
    claims = [("drops less", "claims-small", verdicts.CLEAN, ["grm-sft"], "ppo/drop_from_peak", -1)]
    row = verdicts.table(groups, claims).splitlines()[2]
    assert "| 4/5 |" in row and "**supported**" in row


def test_large_preset_claims_mirror_the_small_preset_claims_for_the_proxies_it_trained():
    large = [c for c in verdicts.CLAIMS if c[1] == "claims-large"]
    small = [c for c in verdicts.CLAIMS if c[1] == "claims-small"]
    assert len(large) == len([c for c in small if set(c[3]) & verdicts.LARGE_VARIANTS])
    for claim, _, settings, variants, metric, _ in large:
        assert set(variants) <= verdicts.LARGE_VARIANTS and variants
    names = [c[0] for c in large]
    assert "At the large preset: GRM keeps more gold under PPO at matched KL (clean)" in names
    assert "At the large preset: an ensemble reaches more gold under best-of-n (clean)" in names


def test_the_committed_readme_block_is_what_the_committed_compare_files_give():
    paths = sorted((REPO / "results").glob("*-compare.json"))
    assert any(p.name == "claims-large-compare.json" for p in paths)
    groups = [g for p in paths for g in json.loads(p.read_text())]
    text = (REPO / "results" / "README.md").read_text()
    block = text.split(verdicts.BEGIN, 1)[1].split(verdicts.END, 1)[0].strip("\n")
    assert block == verdicts.table(groups)
    assert "Not run yet" not in block
