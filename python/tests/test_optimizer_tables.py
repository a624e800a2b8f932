"""results/optimizers.py's curve measures on hand-made curves."""
import importlib.util
import math

import numpy as np

from conftest import REPO

spec = importlib.util.spec_from_file_location("optimizer_tables", REPO / "results" / "optimizers.py")
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)


def test_interpolation_between_evaluations_and_past_the_end():
    kl, y = [0, 1, 3], [0, 2, 1]
    assert tables.interpolate(kl, y, 0.5) == 1.0
    assert tables.interpolate(kl, y, 2.0) == 1.5
    assert tables.interpolate(kl, y, 3.0) == 1.0
    assert math.isnan(tables.interpolate(kl, y, 3.5))


def test_curve_measures():
    # Gold 3, 4, 5, 4.5, 3.5 at KL 0, 1, 2, 4, 6: gain peaks at +2 at KL 2 and ends at +0.5.
    m = tables.curve_metrics([0, 1, 2, 4, 6], np.array([3, 4, 5, 4.5, 3.5]))
    assert m["peak"] == 2 and m["KL@peak"] == 2 and m["end"] == 0.5 and m["final KL"] == 6
    assert m["drop"] == 1.5 and m["drop/nat"] == 1.5 / 4
    assert m["gold@KL=1"] == 1 and m["gold@KL=5"] == 1.0
    # A curve still rising at its end has no drop.
    rising = tables.curve_metrics([0, 1, 2], np.array([0, 1, 2]))
    assert rising["drop"] == 0 and rising["drop/nat"] == 0


def test_paired_interval_uses_student_t():
    d = [0.12, -0.03, 0.25, 0.08, 0.19]
    # scipy.stats.t.interval(0.95, 4, loc=0.122, scale=sem) = (-0.011, 0.255)
    assert tables.paired(d) == "+0.12 [-0.01, +0.25] (4/5)"
    assert tables.paired([1.0]) == "–"
