"""GRPO, RLOO and DPO groups of a fresh tiny run read like PPO's: curves, samples, summaries."""
import subprocess

import h5py
import numpy as np

import overopt
from conftest import TINY, overopt_binary

OPTIMIZERS = ["--set", 'stages=["ppo","grpo","rloo","dpo"]', "--set", 'proxies=["bt"]',
              "--set", "grpo.steps=2", "--set", "grpo.prompts_per_step=4", "--set", "grpo.minibatch_size=8",
              "--set", "grpo.eval_prompts=8", "--set", "grpo.epochs=1",
              "--set", "rloo.steps=2", "--set", "rloo.prompts_per_step=4", "--set", "rloo.eval_prompts=8",
              "--set", "rloo.minibatch_size=8",
              "--set", "dpo.steps=2", "--set", "dpo.eval_every=2", "--set", "dpo.eval_prompts=8"]


def test_every_optimizer_reads_like_ppo(tmp_path):
    binary = overopt_binary()
    runs = tmp_path / "runs"
    for seed in (0, 1):
        subprocess.run([str(binary), "run", "--out", str(runs), "--cache", str(tmp_path / "cache"), "--seed", str(seed),
                        *TINY, *OPTIMIZERS], check=True, capture_output=True, text=True)
    subprocess.run([str(binary), "collect", str(runs), "-o", str(tmp_path / "summary.h5"), "--quiet"],
                   check=True, capture_output=True, text=True)
    df = overopt.load_runs(runs)
    assert set(df["stage"]) == {"ppo", "grpo", "rloo", "dpo"}
    assert set(df.query("stage == 'dpo'")["variant"]) == {"dpo"}
    for stage in ("ppo", "grpo", "rloo", "dpo"):
        gold = df.query(f"stage == '{stage}' and quantity == 'gold' and seed == 0")
        assert list(gold["step"]) == [0, 2] and np.isfinite(gold["value"]).all(), stage
    training = overopt.load_runs(runs, training=True)
    assert {"grpo_train", "rloo_train", "dpo_train"} <= set(training["stage"])
    texts = overopt.samples(runs)
    assert {"grpo", "rloo", "dpo"} <= set(texts["stage"])
    summary = overopt.load_summary(tmp_path / "summary.h5")
    assert {"ppo", "grpo", "rloo", "dpo"} <= set(summary["stage"])
    fits = overopt.load_fits(tmp_path / "summary.h5")
    assert set(fits.query("stage == 'grpo'")["form"]) == {"ppo"}   # the RL form d(α − β log d)
    for path in [*sorted(runs.glob("*.h5")), tmp_path / "summary.h5"]:
        with h5py.File(path, "r") as f:
            for name, d in _datasets(f):
                assert "units" in d.attrs and d.attrs["long_name"], f"{path.name}:/{name}"


def _datasets(f):
    found = []
    f.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
    return found
