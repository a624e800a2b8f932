"""results/mitigations.py: its labels and pairings on hand-made rows, and its tables on fresh
tiny runs of the CLI (two PPO settings, best-of-n rules, detectors)."""
import importlib.util
import math
import subprocess
import sys

import numpy as np
import pandas as pd

from conftest import REPO, TINY, overopt_binary

sys.path.insert(0, str(REPO / "results"))
spec = importlib.util.spec_from_file_location("mitigation_tables", REPO / "results" / "mitigations.py")
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)


def test_mitigation_labels_name_what_differs_from_the_paper():
    assert tables.mitigation_label({}) == "none"
    assert tables.mitigation_label({"ppo.kl_coef": 0.0, "ppo.reward_shaping": "none", "ppo.target_kl": math.nan}) == "none"
    assert tables.mitigation_label({"ppo.kl_coef": 0.1, "ppo.kl_estimator": "k3"}) == "KL β=0.1 (k3)"
    assert tables.mitigation_label({"ppo.kl_coef": 0.1, "ppo.target_kl": 1.0}) == "KL β=0.1 (k1), adaptive to 1"
    assert tables.mitigation_label({"ppo.reward_clip": 1.0}) == "reward clip ±1"
    assert tables.mitigation_label({"ppo.reward_shaping": "par"}) == "PAR"


def test_gain_metrics_and_pairing_by_seed():
    m = tables.gain_metrics([0, 1, 2, 4], np.array([1.0, 2.0, 1.5, 0.5]), [1.0, 3.0, 9.0])
    assert m["peak"] == 1 and m["KL@peak"] == 1 and m["end"] == -0.5 and m["drop"] == 1.5
    assert m["gold@KL=1"] == 1 and m["gold@KL=3"] == 0 and math.isnan(m["gold@KL=9"])
    rows = pd.DataFrame({"seed": [0, 1, 2], "peak": [1.0, 2.0, 3.0]})
    base = pd.DataFrame({"seed": [1, 0], "peak": [0.5, 0.25]})
    # Seed 2 has no baseline and is left out; each difference is against its own seed.
    assert tables.pair_with(rows, base, ["seed"], ["peak"]) == {"peak": [0.75, 1.5]}


def test_tables_of_tiny_sweeps(tmp_path, capsys):
    binary = overopt_binary()
    overrides = [TINY[i + 1] for i in range(0, len(TINY), 2) if TINY[i] == "--set"]
    for seed in (0, 1):
        for ppo in ([], ["--set", "ppo.kl_coef=0.1"], ["--set", "ppo.reward_shaping=\"par\""]):
            args = [str(binary), "run", "--out", str(tmp_path / "ppo"), "--cache", str(tmp_path / "cache"),
                    "--seed", str(seed), "--set", 'stages=["ppo"]', "--set", 'proxies=["bt","ensemble"]',
                    "--threads", "1", "--quiet"]
            for o in overrides:
                if not o.startswith("proxies="):
                    args += ["--set", o]
            subprocess.run(args + ppo, check=True, capture_output=True, text=True)
        subprocess.run([str(binary), "run", "--out", str(tmp_path / "bon"), "--cache", str(tmp_path / "cache"),
                        "--seed", str(seed), "--set", 'stages=["bon"]', "--set", 'bon.select=["soft","caution"]', *TINY],
                       check=True, capture_output=True, text=True)
    ppo = tables.ppo_table(tables.curves(tmp_path / "ppo", "ppo"))
    assert set(ppo.mitigation) == {"none", "KL β=0.1 (k1)", "PAR"}
    bon = tables.bon_table(tables.curves(tmp_path / "bon", "bon"))
    assert {"argmax", "soft", "caution"} <= set(bon.rule)
    assert set(bon.loc[bon.rule == "soft", "strength"]) == {1.0}
    tables.detector_table(tmp_path / "ppo")
    out = capsys.readouterr().out
    # Every mitigated row has its paired difference over both seeds; the detectors' table names
    # the ensemble's disagreement detector.
    assert "| bt | PAR | 2 |" in out and "/2) |" in out
    assert "ensemble_disagreement" in out and "proxy_slope" in out
    tables.figure(ppo, bon, tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 0
