"""The reader on the committed results (schema 1) and on fresh runs of the CLI (schema 2)."""
import json

import h5py
import numpy as np
import pandas as pd
import pytest

import overopt


# MARK: - Committed results (schema version 1)

def test_load_runs_reads_a_folder_into_one_tidy_frame(results):
    df = overopt.load_runs(results / "runs" / "fig2")
    assert list(df.columns) == ["file", "name", "seed", "variant", "stage", "n", "step", "kl", "quantity", "value"]
    assert sorted(df["seed"].unique()) == [0, 1, 2]
    assert set(df["stage"]) == {"bon", "ppo"}
    assert df["variant"].nunique() == 7
    # Every value is the stored one: compare one curve with h5py.
    path = results / "runs" / "fig2" / "fig2-clean-seed1-5bad6598.h5"
    with h5py.File(path, "r") as f:
        gold = f["bon/grm-sft/gold"][()]
        n = f["bon/grm-sft/n"][()]
        ppo_kl = f["ppo/bt/kl"][()]
    rows = df.query("file == @path.name and stage == 'bon' and variant == 'grm-sft' and quantity == 'gold'")
    np.testing.assert_array_equal(rows["value"].to_numpy(), gold)
    np.testing.assert_array_equal(rows["n"].to_numpy(dtype=np.int64), n)
    np.testing.assert_allclose(rows["kl"], np.log(n) - (n - 1) / n, atol=1e-12)
    ppo = df.query("file == @path.name and stage == 'ppo' and variant == 'bt' and quantity == 'gold'")
    np.testing.assert_array_equal(ppo["kl"].to_numpy(), ppo_kl)
    assert ppo["n"].isna().all() and rows["step"].isna().all()


def test_varying_config_keys_become_columns(results):
    df = overopt.load_runs([results / "runs" / "fig2", results / "runs" / "fig3"])
    assert "data.label_noise" in df.columns
    noise = df.groupby("name")["data.label_noise"].unique()
    assert list(noise["fig2-clean"]) == [0.0] and list(noise["fig3-noisy"]) == [0.25]
    # Keys equal in every file are not columns.
    assert "ppo.steps" not in df.columns


def test_load_rewards_one_row_per_run_and_variant(results):
    df = overopt.load_rewards(results / "runs" / "fig1")
    assert len(df) == 12 and set(df["variant"]) == {"bt", "grm-sft"}
    assert set(df["data.train_pairs"]) == {1500, 12000}
    assert {"id_accuracy", "ood_accuracy_mean", "ood_accuracy_hot_samples", "reward_std"} <= set(df.columns)
    row = df.query("seed == 2 and variant == 'bt' and `data.train_pairs` == 1500").iloc[0]
    with h5py.File(results / "runs" / "fig1" / row["file"], "r") as f:
        assert row["id_accuracy"] == f["rm/bt/id_accuracy"][()]
        assert row["ood_accuracy_ood_writer"] == f["rm/bt/ood_accuracy/ood_writer"][()]


def test_load_summary_of_a_schema_1_summary(results):
    path = results / "fig2-bon-ppo-clean-summary.h5"
    df = overopt.load_summary(path)
    assert set(df["stage"]) == {"bon", "ppo", "rm"}
    assert set(df["statistic"]) == {"mean", "std", "sem", "seed"}
    with h5py.File(path, "r") as f:
        g = f["groups/fig2-clean-44f3731f/bon/bt"]
        mean, sem = g["gold_shifted_mean"][()], g["gold_shifted_sem"][()]
        id_values = f["groups/fig2-clean-44f3731f/rm/bt/id_accuracy_values"][()]
    sel = df.query("stage == 'bon' and variant == 'bt' and quantity == 'gold_shifted'")
    np.testing.assert_array_equal(sel.query("statistic == 'mean'")["value"], mean)
    np.testing.assert_array_equal(sel.query("statistic == 'sem'")["value"], sem)
    seeds = df.query("stage == 'rm' and variant == 'bt' and quantity == 'id_accuracy' and statistic == 'seed'")
    assert list(seeds["seed"]) == [0, 1, 2]
    np.testing.assert_array_equal(seeds["value"], id_values)
    fits = overopt.load_fits(path)
    bt = fits.query("stage == 'bon' and variant == 'bt' and quantity == 'gold'").iloc[0]
    assert bt["r2"] > 0.9 and bt["alpha"] > 0
    assert np.isnan(bt["alpha_low"])  # summaries written before the bootstrap intervals have none


def test_fig1_summary_has_the_training_pairs_as_a_column(results):
    df = overopt.load_summary(results / "fig1-accuracy-vs-size-summary.h5")
    acc = df.query("quantity == 'id_accuracy' and statistic == 'mean'")
    assert sorted(acc["data.train_pairs"].unique()) == [1500, 12000]
    assert len(acc) == 4  # two sizes × two variants


def test_samples_lists_best_of_n_picks_and_ppo_texts(results):
    picks = overopt.samples(results / "runs" / "fig2-large")
    assert set(picks["stage"]) == {"bon"} and picks["response"].str.len().gt(0).all()
    assert picks["gold"].notna().all() and picks["proxy"].notna().all()
    ppo = overopt.samples(results / "runs" / "fig2" / "fig2-clean-seed0-7fe4632b.h5")
    assert set(ppo["stage"]) == {"ppo"}
    assert ppo["prompt"].str.contains("sentence").all()


def test_to_xarray_has_kl_as_a_coordinate(results):
    pytest.importorskip("xarray")
    ds = overopt.to_xarray(results / "runs" / "fig2", stage="bon")
    assert ds["gold"].dims == ("file", "variant", "n")
    assert "kl" in ds.coords and ds["kl"].attrs["units"] == "nats"
    assert list(ds["seed"].values) == [0, 1, 2]


# MARK: - Errors

def test_errors_name_the_path_and_what_was_expected(results, tmp_path):
    with pytest.raises(overopt.OverOptFileError, match="/nonexistent/x.h5: no such file"):
        overopt.load_runs("/nonexistent/x.h5")
    with pytest.raises(overopt.OverOptFileError, match="is a collect summary"):
        overopt.load_runs(results / "fig2-bon-ppo-clean-summary.h5")
    with pytest.raises(overopt.OverOptFileError, match="not a collect summary"):
        overopt.load_summary(results / "runs" / "fig2" / "fig2-clean-seed0-7fe4632b.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(overopt.OverOptFileError, match="text.h5: not a readable HDF5 file"):
        overopt.load_runs(tmp_path / "text.h5")
    with h5py.File(tmp_path / "future.h5", "w") as f:
        f.attrs["schema_version"] = 99
        f.attrs["config"] = "{}"
    with pytest.raises(overopt.OverOptFileError, match="schema version 99"):
        overopt.load_runs(tmp_path / "future.h5")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(overopt.OverOptFileError, match="no complete OverOpt run files"):
        overopt.load_runs(empty)
    for e in (overopt.OverOptFileError("x"),):
        assert "\n" not in str(e)


def test_gao_fit_curves_start_at_zero():
    kl = np.array([0.0, 1.0, 4.0])
    np.testing.assert_allclose(overopt.gao_fit_curve("bon", kl, 1.0, 0.5), [0, 0.5, 0.0])
    np.testing.assert_allclose(overopt.gao_fit_curve("ppo", kl, 1.0, 0.5), [0, 1.0, 2 * (1 - 0.5 * np.log(2))])


# MARK: - Fresh runs of the CLI (schema version 2)

def test_fresh_runs_are_schema_2_with_typed_attributes(tiny_runs):
    files = sorted((tiny_runs / "runs").glob("*.h5"))
    assert len(files) == 3
    with h5py.File(files[0], "r") as f:
        assert f.attrs["schema_version"] == 2
        assert f.attrs["seed"].dtype.kind == "i" and f.attrs["complete"].dtype == np.bool_
        assert list(f.attrs["proxies"]) == ["bt", "grm-sft"]
        assert f["ppo/bt"].attrs["steps"].dtype.kind == "i"
        assert f["ppo/bt"].attrs["whiten_advantages"].dtype == np.bool_
        assert f["ppo/bt"].attrs["temperature"] == pytest.approx(0.7, abs=1e-12)
        assert list(f["data"].attrs["ood_sets"]) == ["heldout_prompts", "ood_writer", "hot_samples"]
        assert f["bon/bt/kl"].attrs["units"] == "nats"
        for path in ("bon/bt/gold", "ppo/bt/gold", "ppo/bt/policy_loss", "rm/bt/loss", "base/curve_loss"):
            assert f[path].attrs["long_name"], path
        assert "source" not in f.attrs
        json.loads(f.attrs["config"])


def every_dataset(f):
    found = []
    f.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
    return found


def test_every_dataset_of_fresh_files_has_units_and_a_long_name(tiny_runs):
    for path in [*sorted((tiny_runs / "runs").glob("*.h5")), tiny_runs / "summary.h5"]:
        with h5py.File(path, "r") as f:
            for name, d in every_dataset(f):
                assert "units" in d.attrs and d.attrs["long_name"], f"{path.name}:/{name}"
                assert not d.attrs["long_name"].startswith("picks/"), f"{path.name}:/{name}"


def test_fresh_runs_load_in_one_call(tiny_runs):
    df = overopt.load_runs(tiny_runs / "runs")
    assert set(df["variant"]) == {"bt", "grm-sft"} and set(df["stage"]) == {"bon", "ppo"}
    assert "data.label_noise" in df.columns and set(df["data.label_noise"]) == {0.0, 0.25}
    rewards = overopt.load_rewards(tiny_runs / "runs")
    assert len(rewards) == 6 and rewards["id_accuracy"].between(0, 1).all()
    texts = overopt.samples(tiny_runs / "runs")
    assert {"bon", "ppo"} <= set(texts["stage"])
    ppo = texts.query("stage == 'ppo'")
    assert ppo["gold"].notna().all() and ppo["proxy"].notna().all() and ppo["prompt_id"].notna().all()
    assert not ppo["response"].str.contains(r"\[gold").any()   # the scores are columns, not text
    # The stored scores agree with the ones printed in the text (2 decimals).
    with h5py.File(sorted((tiny_runs / "runs").glob("*.h5"))[0], "r") as f:
        text = f["ppo/bt/sample_text"][0].decode()
        gold = f["ppo/bt/sample_gold"][0]
    assert f"[gold {gold:+.2f}," in text
    training = overopt.load_runs(tiny_runs / "runs", training=True)
    assert {"policy_loss", "train_kl"} <= set(training.query("stage == 'ppo_train'")["quantity"])


def test_fresh_runs_detectors(tiny_runs):
    df = overopt.load_detectors(tiny_runs / "runs")
    # bt and grm-sft are neither ensembles nor InfoRM proxies: only the proxy's slope applies.
    assert len(df) == 6 and set(df["detector"]) == {"proxy_slope"} and set(df["stage"]) == {"ppo"}
    assert (df["gold_lost"] >= 0).all() and (df["gold_drop"] == 0.25).all()
    first = sorted((tiny_runs / "runs").glob("*.h5"))[0]
    row = df[(df["file"] == first.name) & (df["variant"] == "bt")].iloc[0]
    with h5py.File(first, "r") as f:
        g = f["ppo/bt/detectors/proxy_slope"]
        assert row["gold_lost"] == g.attrs["gold_lost"] and row["alarm_step"] == g.attrs["alarm_step"]
        assert len(g["alarm"]) == len(f["ppo/bt/step"])
    assert overopt.load_detectors(tiny_runs / "runs" / first.name).shape[0] == 2


@pytest.mark.parametrize("engine, module", [("h5netcdf", "h5netcdf"), ("netcdf4", "netCDF4")])
def test_xarray_opens_a_fresh_run_with_named_coordinates(tiny_runs, engine, module):
    xr = pytest.importorskip("xarray")
    pytest.importorskip(module)
    path = sorted((tiny_runs / "runs").glob("*.h5"))[0]
    bon = xr.open_dataset(path, group="bon/bt", engine=engine)
    assert "n" in bon.dims and "kl" in bon.coords and bon["gold"].dims == ("n",)
    assert bon["kl"].attrs["units"] == "nats"
    ppo = xr.open_dataset(path, group="ppo/bt", engine=engine)
    assert ppo["gold"].dims == ("step",) and "kl" in ppo.coords
    assert ppo["policy_loss"].dims == ("train_step",)
    rm = xr.open_dataset(path, group="rm/bt", engine=engine)
    assert rm["loss"].dims == ("step",)


def test_a_fresh_summary_keeps_per_seed_curves_with_unambiguous_names(tiny_runs):
    path = tiny_runs / "summary.h5"
    with h5py.File(path, "r") as f:
        assert f.attrs["schema_version"] == 2 and f.attrs["source"] == "runs"  # the folder's name, not its path
        name, group = next((k, g) for k, g in f["groups"].items() if len(g.attrs["seeds"]) == 2)
        bon = group["bon/bt"]
        assert {"gold", "gold_sem_over_seeds", "gold_std_over_seeds", "gold_per_seed",
                "gold_sem_over_prompts"} <= set(bon)
        assert bon["gold_per_seed"].shape == (2, len(bon["n"]))
        rm = group["rm/bt"]
        assert {"reward_mean", "reward_mean_sem_over_seeds", "ood_accuracy_mean"} <= set(rm)
        assert not any(name.endswith("_mean_mean") for name in rm)
    df = overopt.load_summary(path)
    two = df[df["group"] == name]
    per_seed = two.query("stage == 'bon' and variant == 'bt' and quantity == 'gold' and statistic == 'seed'")
    assert set(per_seed["seed"]) == {0, 1}
    mean = two.query("stage == 'bon' and variant == 'bt' and quantity == 'gold' and statistic == 'mean'")
    by_seed = per_seed.pivot_table(index="n", columns="seed", values="value").mean(axis=1)
    np.testing.assert_allclose(mean.set_index("n")["value"].astype(float), by_seed, rtol=1e-12)
    assert "data.label_noise" in df.columns


def test_a_schema_2_summary_of_committed_runs_reads_like_the_committed_schema_1_summary(results, tmp_path):
    """`overopt collect` of the committed (schema 1) runs gives a schema 2 summary; the reader
    returns the same means, sems and per-seed values from both."""
    import subprocess
    from conftest import overopt_binary
    fresh = tmp_path / "large.h5"
    subprocess.run([str(overopt_binary()), "collect", str(results / "runs" / "fig2-large"), "-o", str(fresh), "--quiet"],
                   check=True, capture_output=True)
    assert overopt.schema_version(fresh) == 2
    assert overopt.schema_version(results / "fig2-bon-large-summary.h5") == 1
    key = ["stage", "variant", "quantity", "statistic", "seed", "n"]

    def table(path):
        df = overopt.load_summary(path)
        df = df[df["statistic"].isin(["mean", "sem", "seed"])
                & ~df["quantity"].str.endswith("_over_prompts")]
        df = df.assign(seed=df["seed"].fillna(-1).astype(int), n=df["n"].fillna(-1).astype(int))
        return df.set_index(key)["value"].sort_index()

    new, old = table(fresh), table(results / "fig2-bon-large-summary.h5")
    # Everything of the old summary is in the new one, equal; the new one adds per-seed curves.
    assert len(old) > 1000 and old.index.isin(new.index).all()
    np.testing.assert_allclose(new.reindex(old.index).to_numpy(), old.to_numpy(), rtol=0, atol=1e-12)
    assert len(new[new.index.get_level_values("statistic") == "seed"].loc["bon"]) > 0


def test_pip_installs_the_package_and_it_loads_runs_in_one_call(results, tmp_path):
    """`pip install ./python` (into a folder, from a copy of the source) gives a package that
    loads the committed Fig. 2 runs without this checkout on the path."""
    import shutil
    import subprocess
    import sys
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        pytest.skip("pip is not installed for this Python")
    source = tmp_path / "python"
    shutil.copytree(results.parent / "python", source, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info",
                                                                                       "__pycache__"))
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(source)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    script = ("import overopt, sys; df = overopt.load_runs(sys.argv[1]); "
              "print(overopt.__file__.startswith(sys.argv[2]), len(df), sorted(df['seed'].unique()))")
    r = subprocess.run([sys.executable, "-c", script, str(results / "runs" / "fig2"), str(target)],
                       capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(target)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "True" and int(r.stdout.split()[1]) > 10000 and "[0, 1, 2]" in r.stdout
