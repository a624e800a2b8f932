"""overopt.load_compare: `overopt compare` output (its JSON and its HDF5 group) as one frame."""
import subprocess

import numpy as np
import pytest

import overopt
from overopt.results import _settings_from_label
from conftest import overopt_binary


def test_the_json_and_the_hdf5_form_give_the_same_rows(results, tmp_path):
    from_json = overopt.load_compare(results / "claims-large-compare.json")
    h5 = tmp_path / "compare.h5"
    subprocess.run([str(overopt_binary()), "compare", str(results / "runs" / "claims-large"), "-o", str(h5)],
                   check=True, capture_output=True, text=True)
    from_h5 = overopt.load_compare(h5)

    # The JSON also lists the metrics without a difference, with the reason.
    undecided = from_json[from_json["note"].notna()]
    assert len(undecided) == 3 and undecided["mean"].isna().all()
    assert set(undecided["note"]) == {"KL 10 reached by 4 of 5 seeds"}

    key = ["group", "variant", "metric"]
    a = from_json[from_json["note"].isna()].drop(columns="note").sort_values(key).reset_index(drop=True)
    b = from_h5.drop(columns="note").sort_values(key).reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b) == 291
    for column in ("group", "data.label_noise", "baseline", "variant", "metric"):
        assert (a[column] == b[column]).all(), column
    for column in ("mean", "t_low", "t_high", "bootstrap_low", "bootstrap_high", "p_value", "p_holm"):
        np.testing.assert_allclose(a[column].astype(float), b[column].astype(float), rtol=1e-12, err_msg=column)
    for column in ("wins", "losses", "ties", "seeds"):
        assert (a[column].astype(int) == b[column].astype(int)).all(), column

    # One row checked by hand against `overopt compare results/runs/claims-large`.
    row = from_json.query("`data.label_noise` == '0' and variant == 'ensemble' and metric == 'rm/id_accuracy'").iloc[0]
    assert round(row["mean"], 3) == 0.027 and (round(row["t_low"], 3), round(row["t_high"], 3)) == (0.004, 0.050)
    assert (row["wins"], row["losses"], row["ties"], row["seeds"]) == (5, 0, 0, 5)
    assert row["p_holm"] == pytest.approx(0.1875)


def test_settings_labels_split_at_each_key():
    assert _settings_from_label("") == {}
    assert _settings_from_label("data.label_noise=0.25") == {"data.label_noise": "0.25"}
    assert _settings_from_label('proxies=["bt", "x"], rm.base=xl') == {"proxies": '["bt", "x"]', "rm.base": "xl"}


def test_errors_name_the_file_and_what_was_expected(results, tmp_path):
    with pytest.raises(overopt.OverOptFileError, match="no such file"):
        overopt.load_compare(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    with pytest.raises(overopt.OverOptFileError, match="bad.json: not the JSON of `overopt compare --json`"):
        overopt.load_compare(bad)
    with pytest.raises(overopt.OverOptFileError, match="no /compare group"):
        overopt.load_compare(results / "claims-large-summary.h5")
