"""results/scaling.py: the markdown tables of a summary's /scaling group, on hand-made
summaries (a numeric key, and a key whose values are presets with parameters as the axis)."""
import importlib.util

import h5py
import numpy as np
import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("scaling_tables", REPO / "results" / "scaling.py")
scaling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scaling)


def write_summary(path, key, values, xs, stage="ppo", variants=("bt", "grm-sft")):
    with h5py.File(path, "w") as f:
        s = f.create_group("scaling")
        s.attrs["key"] = key
        s.attrs["x_name"] = "reward-model parameters" if key == "rm.base" else key
        for j, v in enumerate(variants):
            g = s.create_group(f"{stage}/{v}")
            n = len(values)
            g["value"] = np.array([x.encode() for x in values], dtype=object)
            g["x"] = np.array(xs, dtype=float)
            for i, name in enumerate(("gold_alpha", "gold_beta")):
                mid = np.arange(n) * 0.1 + j + i * 0.5
                g[name] = mid
                g[name + "_low"] = mid - 0.25
                g[name + "_high"] = mid + 0.125
            g["gold_r2"] = np.full(n, 0.875)
            g["seeds"] = np.full(n, 5 - j, dtype=np.int64)


def test_a_numeric_key_has_no_axis_column(tmp_path):
    path = tmp_path / "s.h5"
    write_summary(path, "data.train_pairs", ["500", "1000"], [500, 1000])
    lines = scaling.markdown(*scaling.scaling_rows(path, "ppo")).splitlines()
    assert lines[0] == "| `data.train_pairs` | `bt` α | `bt` β | R² | `grm-sft` α | `grm-sft` β | R² | seeds |"
    assert lines[1] == "|---|---|---|---|---|---|---|---|"
    # Negative bounds take a true minus sign; the seeds column lists every count seen.
    assert lines[2] == ("| 500 | 0.000 [−0.250, 0.125] | 0.500 [0.250, 0.625] | 0.88 "
                        "| 1.000 [0.750, 1.125] | 1.500 [1.250, 1.625] | 0.88 | 4, 5 |")
    assert lines[3].startswith("| 1000 | 0.100 [−0.150, 0.225] |")


def test_presets_get_their_parameters_and_variants_their_order(tmp_path):
    path = tmp_path / "s.h5"
    write_summary(path, "rm.base", ["tiny", "xl"], [27136, 2750000], stage="bon")
    lines = scaling.markdown(*scaling.scaling_rows(path, "bon", ["grm-sft"])).splitlines()
    assert lines[0] == "| `rm.base` | reward-model parameters | `grm-sft` α | `grm-sft` β | R² | seeds |"
    assert lines[2] == "| tiny | 27 136 | 1.000 [0.750, 1.125] | 1.500 [1.250, 1.625] | 0.88 | 4 |"
    assert lines[3].startswith("| xl | 2 750 000 | 1.100 ")


def test_missing_groups_and_variants_are_named(tmp_path):
    path = tmp_path / "s.h5"
    write_summary(path, "ppo.kl_coef", ["0", "0.1"], [0, 0.1])
    with pytest.raises(SystemExit, match="no /scaling/bon"):
        scaling.scaling_rows(path, "bon")
    with pytest.raises(SystemExit, match="no variant nope in /scaling/ppo \\(it has bt, grm-sft\\)"):
        scaling.scaling_rows(path, "ppo", ["nope"])


def test_the_committed_kl_penalty_table():
    key, names, rows, axis = scaling.scaling_rows(REPO / "results" / "scaling-kl-penalty-summary.h5", "ppo")
    assert key == "ppo.kl_coef" and names == ["bt", "grm-sft"] and axis[0] is None
    assert list(rows) == ["0", "0.01", "0.03", "0.1", "0.3"]
