"""Shared fixtures: the repository's committed results and a fresh tiny run of the CLI."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

#: A run small enough for a test (a few seconds), as in the Swift CLI tests.
TINY = ["--set", "base.corpus_size=300", "--set", "base.eval_sequences=20", "--set", "data.train_pairs=40",
        "--set", "data.eval_pairs=20", "--set", "rm.epochs=1", "--set", 'proxies=["bt","grm-sft"]',
        "--set", "bon.prompts=4", "--set", "bon.samples_per_prompt=8", "--set", "ppo.steps=2",
        "--set", "ppo.eval_prompts=8", "--set", "ppo.prompts_per_step=8", "--set", "ppo.minibatch_size=4",
        "--threads", "1", "--quiet"]


def overopt_binary() -> Path:
    """The overopt binary: $OVEROPT_BIN, else the debug build of this checkout."""
    candidate = Path(os.environ.get("OVEROPT_BIN", REPO / ".build" / "debug" / "overopt"))
    if not candidate.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{candidate}: no overopt binary (run swift build first)")
        pytest.skip(f"{candidate}: no overopt binary (run swift build first)")
    return candidate


@pytest.fixture(scope="session")
def results() -> Path:
    return REPO / "results"


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> Path:
    """A folder with two fresh tiny run files (seeds 0 and 1, label noise 0 and 0.25 for seed 0)
    written by the current overopt binary, and their collect summary as summary.h5."""
    binary = overopt_binary()
    folder = tmp_path_factory.mktemp("tiny")
    cache = folder / "cache"
    runs = folder / "runs"
    for seed, noise in ((0, "0"), (1, "0"), (0, "0.25")):
        subprocess.run([str(binary), "run", "--out", str(runs), "--cache", str(cache), "--seed", str(seed),
                        "--set", f"data.label_noise={noise}", "--set", "bon.save_samples=true", *TINY],
                       check=True, capture_output=True, text=True)
    subprocess.run([str(binary), "collect", str(runs), "-o", str(folder / "summary.h5"), "--quiet"],
                   check=True, capture_output=True, text=True)
    return folder
