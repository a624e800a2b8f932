"""load_runs reads best-of-n selection rules as the variants <v>/select/<rule>."""
import subprocess

import overopt
from conftest import TINY, overopt_binary


def test_selection_rules_are_variants(tmp_path):
    binary = overopt_binary()
    subprocess.run([str(binary), "run", "--out", str(tmp_path), "--cache", str(tmp_path / "cache"),
                    "--set", 'bon.select=["soft","caution"]', *TINY], check=True, capture_output=True, text=True)
    df = overopt.load_runs(tmp_path, stages=["bon"])
    variants = set(df.variant)
    assert {"bt", "grm-sft", "bt/select/soft", "bt/select/caution", "grm-sft/select/soft"} <= variants
    soft = df[(df.variant == "bt/select/soft") & (df.quantity == "gold")].sort_values("n")
    plain = df[(df.variant == "bt") & (df.quantity == "gold")].sort_values("n")
    # Same n grid as the plain curve; at n = 1 every rule picks a uniformly random sample.
    assert list(soft.n) == list(plain.n)
    assert abs(soft.value.iloc[0] - plain.value.iloc[0]) < 1e-9
