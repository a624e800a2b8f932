"""Readers for OverOpt's HDF5 run files and `collect` summaries (schema versions 1 and 2).

Every reader takes file paths, folders or lists of them and returns pandas DataFrames in
long ("tidy") form, so that grouping, filtering and plotting need no further reshaping.
Errors about files are :class:`OverOptFileError`, whose message is one line naming the
path and what was expected.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import h5py
import numpy as np
import pandas as pd

PathLike = Union[str, "os.PathLike[str]"]
Paths = Union[PathLike, Iterable[PathLike]]

#: The schema versions this reader understands. Files without ``@schema_version`` are 1.
SCHEMA_VERSIONS = (1, 2)

#: Policy optimizers: each writes the same evaluation datasets under /<stage>/<variant>.
POLICY_STAGES = ("ppo", "grpo", "rloo", "dpo")
STAGES = ("bon", *POLICY_STAGES)


class OverOptFileError(ValueError):
    """A path that is missing, unreadable or not the kind of OverOpt file expected."""


# MARK: - Files


def _text(value: Any) -> Any:
    """An attribute value as plain Python: bytes to str, NumPy scalars and arrays to Python."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [_text(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _open(path: PathLike) -> h5py.File:
    """Opens an HDF5 file for reading, with one-line errors for the usual failures."""
    p = Path(path)
    if not p.exists():
        raise OverOptFileError(f"{p}: no such file")
    if p.is_dir():
        raise OverOptFileError(f"{p}: is a folder, expected an OverOpt .h5 file")
    try:
        f = h5py.File(p, "r")
    except OSError as error:
        raise OverOptFileError(f"{p}: not a readable HDF5 file ({error.__class__.__name__})") from None
    version = schema_version(f)
    if version not in SCHEMA_VERSIONS:
        f.close()
        raise OverOptFileError(
            f"{p}: schema version {version}, this reader knows {', '.join(map(str, SCHEMA_VERSIONS))}"
            " (update the overopt Python package)")
    return f


def schema_version(file: Union[h5py.File, PathLike]) -> int:
    """The file's ``@schema_version`` (1 for files written before the attribute existed)."""
    if not isinstance(file, h5py.File):
        with _open(file) as f:
            return schema_version(f)
    return int(_text(file.attrs.get("schema_version", 1)))


def _kind(f: h5py.File) -> str:
    """"summary", "run" or "" (not an OverOpt file)."""
    if _text(f.attrs.get("kind", "")) == "summary":
        return "summary"
    if "config" in f.attrs:
        return "run"
    return ""


def file_kind(path: PathLike) -> str:
    """"run" (a run file), "summary" (a collect summary) or "" (an HDF5 file that is neither)."""
    with _open(path) as f:
        return _kind(f)


def _is_complete(f: h5py.File) -> bool:
    try:
        return int(_text(f.attrs.get("complete", 0))) == 1
    except (TypeError, ValueError):
        return False


def run_files(paths: Paths) -> List[Path]:
    """The complete run files named by ``paths``: files, folders (their ``*.h5`` files that
    are complete run files; summaries and unfinished runs in a folder are passed over), or
    a list of either, in the order given (a folder's files sorted by name)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: List[Path] = []
    for entry in paths:
        p = Path(entry)
        if p.is_dir():
            for candidate in sorted(p.glob("*.h5")):
                if candidate.name.startswith("."):
                    continue
                with _open(candidate) as f:
                    if _kind(f) == "run" and _is_complete(f):
                        out.append(candidate)
            continue
        with _open(p) as f:
            kind = _kind(f)
            if kind == "summary":
                raise OverOptFileError(f"{p}: is a collect summary, expected a run file (use load_summary)")
            if kind != "run":
                raise OverOptFileError(f"{p}: not an OverOpt run file (no root attribute 'config')")
            if not _is_complete(f):
                raise OverOptFileError(f"{p}: an unfinished run (root attribute complete is not 1)")
        out.append(p)
    if not out:
        raise OverOptFileError(f"{', '.join(str(Path(e)) for e in paths)}: no complete OverOpt run files")
    return out


def config(file: Union[h5py.File, h5py.Group, PathLike]) -> Dict[str, Any]:
    """The resolved config stored in ``@config`` (a run file, or a summary's group)."""
    if isinstance(file, (h5py.File, h5py.Group)):
        return json.loads(_text(file.attrs["config"]))
    with _open(file) as f:
        if "config" not in f.attrs:
            raise OverOptFileError(f"{file}: no root attribute 'config' (not an OverOpt run file)")
        return config(f)


def _flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested config → {"data.label_noise": 0.25, ...}; lists become tuples (hashable)."""
    out: Dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = tuple(value)
        else:
            out[name] = value
    return out


def varying_keys(configs: Sequence[Dict[str, Any]], ignore: Sequence[str] = ("seed", "name")) -> List[str]:
    """Dotted config keys whose values are not the same in every config (missing counts as a
    value), sorted; ``ignore`` lists keys reported elsewhere (seed and name have columns)."""
    flat = [_flatten(c) for c in configs]
    keys = sorted(set().union(*flat)) if flat else []
    missing = object()
    return [k for k in keys if k not in ignore
            and len({repr(c.get(k, missing)) for c in flat}) > 1]


def _run_columns(paths: Sequence[Path]) -> Tuple[Dict[Path, Dict[str, Any]], List[str]]:
    """Per file: file, name, seed and the values of the config keys that vary between files."""
    configs = {}
    roots = {}
    for p in paths:
        with _open(p) as f:
            configs[p] = config(f)
            roots[p] = {"name": _text(f.attrs.get("name", "")), "seed": int(_text(f.attrs.get("seed", -1)))}
    keys = varying_keys(list(configs.values()))
    columns = {}
    for p in paths:
        flat = _flatten(configs[p])
        columns[p] = {"file": p.name, **roots[p], **{k: flat.get(k) for k in keys}}
    return columns, keys


# MARK: - Curves


def _curve_datasets(g: h5py.Group, length: int, skip: Sequence[str]) -> Iterator[Tuple[str, np.ndarray]]:
    """Float datasets of ``g`` of shape [length], by name, other than ``skip``."""
    for name, obj in sorted(g.items()):
        if name in skip or not isinstance(obj, h5py.Dataset):
            continue
        if obj.dtype.kind == "f" and obj.shape == (length,):
            yield name, obj[()]


def _stage_frames(f: h5py.File, stage: str, training: bool) -> Iterator[pd.DataFrame]:
    if stage not in f:
        return
    for variant, g in sorted(f[stage].items()):
        if not isinstance(g, h5py.Group):
            continue
        if stage == "bon":
            # The plain argmax curve, then each selection rule's as the variant <v>/select/<rule>.
            rules = [(variant, g)] + [(f"{variant}/select/{rule}", rg) for rule, rg in sorted(g.get("select", {}).items())
                                      if isinstance(rg, h5py.Group)]
            for name_of_variant, rg in rules:
                n = rg["n"][()].astype(np.int64)
                kl = rg["kl"][()]
                for name, y in _curve_datasets(rg, len(n), ("kl",)):
                    yield pd.DataFrame({"variant": name_of_variant, "stage": stage, "n": n, "step": pd.NA,
                                        "kl": kl, "quantity": name, "value": y})
        else:
            step = g["step"][()].astype(np.int64)
            kl = g["kl"][()]
            for name, y in _curve_datasets(g, len(step), ("kl",)):
                yield pd.DataFrame({"variant": variant, "stage": stage, "n": pd.NA, "step": step,
                                    "kl": kl, "quantity": name, "value": y})
            if training and "train_step" in g:
                train_step = g["train_step"][()].astype(np.int64)
                for name, y in _curve_datasets(g, len(train_step), ()):
                    yield pd.DataFrame({"variant": variant, "stage": f"{stage}_train", "n": pd.NA,
                                        "step": train_step, "kl": np.nan, "quantity": name, "value": y})


def load_runs(paths: Paths, stages: Sequence[str] = STAGES, training: bool = False) -> pd.DataFrame:
    """Best-of-n and PPO curves of run files as one long DataFrame.

    Columns: ``file``, ``name``, ``seed``, one column per config key whose value differs
    between the files (e.g. ``data.label_noise``), ``variant``, ``stage`` ("bon", "ppo",
    "grpo" or "rloo"; "ppo_train" etc. with ``training=True``), ``n`` (best-of-n) or ``step``
    (evaluation step of a policy optimizer), ``kl`` (nats), ``quantity`` (the dataset name: "gold", "proxy", "gold_shifted",
    "gold_tone", "entropy", ...) and ``value``. Best-of-n selection rules (``[bon] select``)
    appear as the variants ``<variant>/select/<rule>``, as ``overopt collect`` names them.

    ``paths``: a run file, a folder of run files, or a list of either.
    """
    files = run_files(paths)
    columns, keys = _run_columns(files)
    frames = []
    for p in files:
        with _open(p) as f:
            for stage in stages:
                for frame in _stage_frames(f, stage, training):
                    for k, v in reversed(list(columns[p].items())):
                        frame.insert(0, k, [v] * len(frame))
                    frames.append(frame)
    base = ["file", "name", "seed", *keys, "variant", "stage", "n", "step", "kl", "quantity", "value"]
    if not frames:
        return pd.DataFrame(columns=base)
    out = pd.concat(frames, ignore_index=True)[base]
    out["n"] = out["n"].astype("Int64")
    out["step"] = out["step"].astype("Int64")
    out["seed"] = out["seed"].astype("int64")
    return out


def to_xarray(paths: Paths, stage: str = "bon"):
    """The curves of :func:`load_runs` for one stage as an ``xarray.Dataset``.

    Dimensions ``file``, ``variant`` and ``n`` (best-of-n) or ``step`` (PPO); one data
    variable per quantity; coordinates ``kl`` (per file, variant and point) and ``seed``
    (per file). Needs xarray.
    """
    try:
        import xarray  # noqa: F401  (pandas' to_xarray needs it)
    except ImportError:
        raise ImportError("overopt.to_xarray needs xarray: pip install xarray") from None
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: expected one of {', '.join(STAGES)}")
    frame = load_runs(paths, stages=[stage])
    x = "n" if stage == "bon" else "step"
    frame = frame[frame["stage"] == stage].copy()
    frame[x] = frame[x].astype("int64")
    index = ["file", "variant", x]
    ds = frame.pivot_table(index=index, columns="quantity", values="value", aggfunc="first").to_xarray()
    kl = frame.drop_duplicates(index).set_index(index)["kl"].to_xarray()
    seeds = frame.drop_duplicates("file").set_index("file")["seed"].to_xarray()
    ds = ds.assign_coords(kl=kl, seed=seeds)
    ds["kl"].attrs.update(units="nats", long_name="KL(policy || initial policy)")
    return ds


# MARK: - Reward models


def load_rewards(paths: Paths) -> pd.DataFrame:
    """Proxy reward-model metrics: one row per (file, variant).

    Columns: ``file``, ``name``, ``seed``, the varying config keys, ``variant``,
    ``objective``, ``regularizer``, ``train_pairs`` (from the variant's attributes) and every
    scalar of ``/rm/<variant>``: ``id_accuracy``, ``ood_accuracy_mean``,
    ``ood_accuracy_<set>``, ``lm_nll``, ``reward_mean``, ``reward_std``, ...
    """
    files = run_files(paths)
    columns, keys = _run_columns(files)
    rows = []
    for p in files:
        with _open(p) as f:
            if "rm" not in f:
                continue
            for variant, g in sorted(f["rm"].items()):
                row: Dict[str, Any] = {**columns[p], "variant": variant}
                for attr in ("objective", "regularizer", "train_pairs"):
                    if attr in g.attrs:
                        row[attr] = _text(g.attrs[attr])
                for name, value in _scalars(g):
                    row[name.replace("/", "_")] = value
                rows.append(row)
    return pd.DataFrame(rows)


def load_detectors(paths: Paths) -> pd.DataFrame:
    """The over-optimization detectors of run files: one row per (file, stage, variant, detector).

    Columns: ``file``, ``name``, ``seed``, the varying config keys, ``stage`` ("ppo",
    "grpo", "rloo"), ``variant``, ``detector`` ("ensemble_disagreement",
    "latent_outlier_rate", "proxy_slope"), ``auroc``, ``gold_lost``, ``threshold``,
    ``alarm_step`` (-1: never), ``stop_step``, ``peak_step`` and ``gold_drop`` (δ), from
    ``/<stage>/<variant>/detectors/<detector>``. Files without detectors give no rows.
    """
    files = run_files(paths)
    columns, keys = _run_columns(files)
    rows = []
    for p in files:
        with _open(p) as f:
            for stage in POLICY_STAGES:
                for variant, g in sorted(f.get(stage, {}).items()):
                    if not isinstance(g, h5py.Group) or "detectors" not in g:
                        continue
                    d = g["detectors"]
                    for detector, dg in sorted(d.items()):
                        row: Dict[str, Any] = {**columns[p], "stage": stage, "variant": variant, "detector": detector}
                        for attr in ("auroc", "gold_lost", "threshold"):
                            row[attr] = float(dg.attrs[attr])
                        for attr in ("alarm_step", "stop_step", "peak_step"):
                            row[attr] = int(dg.attrs[attr])
                        row["gold_drop"] = float(d.attrs.get("gold_drop", np.nan))
                        rows.append(row)
    base = ["file", "name", "seed", *keys, "stage", "variant", "detector", "auroc", "gold_lost", "threshold",
            "alarm_step", "stop_step", "peak_step", "gold_drop"]
    return pd.DataFrame(rows, columns=base)


def _scalars(g: h5py.Group, prefix: str = "") -> Iterator[Tuple[str, float]]:
    """Scalar numeric datasets of ``g`` and of its subgroups one level down ("sub/name")."""
    for name, obj in sorted(g.items()):
        if isinstance(obj, h5py.Group):
            if not prefix and name != "checkpoint":
                yield from _scalars(obj, f"{name}/")
        elif obj.shape == () and obj.dtype.kind in "fiu":
            yield prefix + name, float(obj[()])


# MARK: - Summaries

_V1_STATISTICS = (("_mean", "mean"), ("_std", "std"), ("_sem", "sem"), ("_values", "seed"))
_V2_STATISTICS = (("_std_over_seeds", "std"), ("_sem_over_seeds", "sem"), ("_per_seed", "seed"))


def _summary_name(name: str, version: int) -> Tuple[str, str]:
    """A summary dataset name → (quantity, statistic over seeds)."""
    if version >= 2:
        for suffix, statistic in _V2_STATISTICS:
            if name.endswith(suffix):
                return name[: -len(suffix)], statistic
        return name, "mean"
    for suffix, statistic in _V1_STATISTICS:
        if name.endswith(suffix):
            return name[: -len(suffix)], statistic
    return name, "mean"


def _open_summary(path: PathLike) -> h5py.File:
    f = _open(path)
    if _kind(f) != "summary":
        f.close()
        raise OverOptFileError(f"{path}: not a collect summary (root attribute kind is not 'summary')")
    return f


def load_summary(path: PathLike) -> pd.DataFrame:
    """A ``collect`` summary as one long DataFrame.

    Columns: ``group``, ``name``, one column per config key that differs between the
    summary's groups, ``stage`` ("bon", "ppo", "grpo", "rloo" or "rm"), ``variant``, ``n`` (best-of-n),
    ``kl`` (best-of-n and PPO), ``quantity`` (e.g. "gold_shifted", "id_accuracy",
    "ood_accuracy/hot_samples"), ``statistic`` ("mean", "std", "sem" over seeds, or "seed"
    for one seed's value), ``seed`` (for "seed" rows) and ``value``.
    """
    with _open_summary(path) as f:
        version = schema_version(f)
        groups = f.get("groups", {})
        configs = {g: config(groups[g]) for g in groups}
        keys = varying_keys(list(configs.values()))
        frames = []
        for gname, g in sorted(groups.items()):
            flat = _flatten(configs[gname])
            head = {"group": gname, "name": _text(g.attrs.get("name", "")), **{k: flat.get(k) for k in keys}}
            for stage in ("bon", *POLICY_STAGES, "rm"):
                for variant, vg in sorted(g.get(stage, {}).items()):
                    seeds = [int(s) for s in np.atleast_1d(vg.attrs.get("seeds", g.attrs.get("seeds", [])))]
                    for frame in _summary_variant(vg, stage, version, seeds):
                        frame.insert(0, "variant", variant)
                        frame.insert(0, "stage", stage)
                        for k, v in reversed(list(head.items())):
                            frame.insert(0, k, [v] * len(frame))
                        frames.append(frame)
    base = ["group", "name", *keys, "stage", "variant", "n", "kl", "quantity", "statistic", "seed", "value"]
    if not frames:
        return pd.DataFrame(columns=base)
    out = pd.concat(frames, ignore_index=True)[base]
    out["n"] = out["n"].astype("Int64")
    out["seed"] = out["seed"].astype("Int64")
    return out


def _summary_variant(vg: h5py.Group, stage: str, version: int, seeds: List[int]) -> Iterator[pd.DataFrame]:
    if stage == "rm":
        for name, obj in _walk(vg):
            quantity, statistic = _summary_name(name, version)
            values = np.atleast_1d(obj[()]).astype(float)
            if statistic == "seed":
                yield pd.DataFrame({"n": pd.NA, "kl": np.nan, "quantity": quantity, "statistic": statistic,
                                    "seed": seeds[: len(values)], "value": values})
            elif values.size == 1:
                yield pd.DataFrame({"n": [pd.NA], "kl": [np.nan], "quantity": [quantity],
                                    "statistic": [statistic], "seed": [pd.NA], "value": values})
        return
    kl = vg["kl"][()]
    n = vg["n"][()].astype(np.int64) if "n" in vg else np.full(len(kl), pd.NA, dtype=object)
    for name, obj in sorted(vg.items()):
        if name in ("n", "kl") or not isinstance(obj, h5py.Dataset) or obj.dtype.kind != "f":
            continue
        quantity, statistic = _summary_name(name, version)
        y = obj[()]
        if statistic == "seed" and y.ndim == 2:
            for i, row in enumerate(y):
                yield pd.DataFrame({"n": n, "kl": kl, "quantity": quantity, "statistic": statistic,
                                    "seed": seeds[i] if i < len(seeds) else pd.NA, "value": row})
        elif y.shape == kl.shape:
            yield pd.DataFrame({"n": n, "kl": kl, "quantity": quantity, "statistic": statistic,
                                "seed": pd.NA, "value": y})


def _walk(g: h5py.Group, prefix: str = "") -> Iterator[Tuple[str, h5py.Dataset]]:
    for name, obj in sorted(g.items()):
        if isinstance(obj, h5py.Group):
            yield from _walk(obj, f"{prefix}{name}/")
        elif obj.dtype.kind in "fiu":
            yield prefix + name, obj


def load_fits(path: PathLike) -> pd.DataFrame:
    """The Gao et al. fits of a summary: one row per (group, stage, variant, quantity) with
    ``alpha``, ``beta``, ``r2`` and ``form`` ("bon": d(α − βd); "ppo": d(α − β log d);
    d = √KL), fitted to the quantity's shifted mean curve, and the 95% percentile bootstrap
    intervals over seeds ``alpha_low``, ``alpha_high``, ``beta_low``, ``beta_high``."""
    rows = []
    with _open_summary(path) as f:
        for gname, g in sorted(f.get("groups", {}).items()):
            for stage in STAGES:
                for variant, vg in sorted(g.get(stage, {}).items()):
                    for attr in sorted(vg.attrs):
                        if attr.endswith("_alpha"):
                            q = attr[: -len("_alpha")]
                            rows.append({"group": gname, "stage": stage, "variant": variant, "quantity": q,
                                         "alpha": float(vg.attrs[attr]), "beta": float(vg.attrs[f"{q}_beta"]),
                                         "r2": float(vg.attrs.get(f"{q}_r2", np.nan)),
                                         "form": "bon" if stage == "bon" else "ppo",
                                         **{k: float(vg.attrs.get(f"{q}_{k}", np.nan)) for k in INTERVAL_COLUMNS}})
    return pd.DataFrame(rows, columns=["group", "stage", "variant", "quantity", "alpha", "beta", "r2", "form", *INTERVAL_COLUMNS])


#: The 95% bootstrap intervals over seeds beside each fit (NaN in older summaries).
INTERVAL_COLUMNS = ("alpha_low", "alpha_high", "beta_low", "beta_high")


def gao_fit_curve(form: str, kl: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """The fitted shifted score at ``kl``: d(α − βd) for best-of-n, d(α − β log d) for RL
    (0 at d = 0), with d = √KL."""
    d = np.sqrt(np.maximum(np.asarray(kl, dtype=float), 0.0))
    if form == "bon":
        return d * (alpha - beta * d)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, d * (alpha - beta * np.log(np.where(d > 0, d, 1.0))), 0.0)


def fit_gao(form: str, kl: np.ndarray, y: np.ndarray) -> Tuple[float, float]:
    """Least-squares (α, β) of :func:`gao_fit_curve` through the origin (as ``collect`` fits)."""
    d = np.sqrt(np.maximum(np.asarray(kl, dtype=float), 0.0))
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(d) & np.isfinite(y)
    d, y = d[keep], y[keep]
    if form == "bon":
        g = -d * d
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(d > 0, -d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    a = np.array([[d @ d, d @ g], [d @ g, g @ g]])
    b = np.array([d @ y, g @ y])
    try:
        alpha, beta = np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return float("nan"), float("nan")
    return float(alpha), float(beta)


# MARK: - Samples

#: The "   [gold +1.23, proxy -0.45]" that PPO sample texts end with (the scores are columns).
_SCORES_SUFFIX = re.compile(r"\s+\[gold (?P<gold>[-+]?[\d.]+), proxy (?P<proxy>[-+]?[\d.]+)\]$")


def samples(paths: Paths) -> pd.DataFrame:
    """What the policies wrote: one row per best-of-n pick and per PPO evaluation sample.

    Columns: ``file``, ``seed``, ``variant``, ``stage`` ("bon" or "ppo"), ``n`` (the pick
    among the first n samples) or ``step`` (the PPO evaluation step), ``prompt_id``,
    ``prompt``, ``response``, ``proxy``, ``gold`` and ``gold_<component>`` (NaN where the
    file does not store them: PPO samples of schema-1 files carry no scores).
    """
    files = run_files(paths)
    frames = []
    for p in files:
        with _open(p) as f:
            seed = int(_text(f.attrs.get("seed", -1)))
            for variant, g in sorted(f.get("bon", {}).items()):
                if "picks" not in g:
                    continue
                picks = g["picks"]
                data: Dict[str, Any] = {"variant": variant, "stage": "bon", "n": picks["n"][()].astype(np.int64),
                                        "step": pd.NA, "prompt_id": picks["prompt_id"][()].astype(np.int64),
                                        "prompt": [_text(s) for s in picks["prompt"][()]],
                                        "response": [_text(s) for s in picks["response"][()]]}
                for name in sorted(picks):
                    if name == "proxy" or name.startswith("gold"):
                        data[name] = picks[name][()]
                frames.append(pd.DataFrame(data).assign(file=p.name, seed=seed))
            for stage, variant, g in [(s, v, g) for s in POLICY_STAGES for v, g in sorted(f.get(s, {}).items())]:
                if "sample_text" not in g:
                    continue
                raw = [_text(s) for s in g["sample_text"][()]]
                texts = [_SCORES_SUFFIX.sub("", t) for t in raw]
                parts = [t.split(" → ", 1) if " → " in t else ["", t] for t in texts]
                data = {"variant": variant, "stage": stage, "n": pd.NA,
                        "step": g["sample_step"][()].astype(np.int64), "prompt_id": pd.NA,
                        "prompt": [a for a, _ in parts], "response": [b for _, b in parts]}
                if "sample_prompt_id" in g:
                    data["prompt_id"] = g["sample_prompt_id"][()].astype(np.int64)
                # Files without score datasets: the scores printed at the end of the text, if any.
                printed = [_SCORES_SUFFIX.search(t) for t in raw]
                if all(printed) and printed:
                    data["gold"] = [float(m.group("gold")) for m in printed]
                    data["proxy"] = [float(m.group("proxy")) for m in printed]
                for name in sorted(g):
                    if name.startswith("sample_") and name not in ("sample_text", "sample_step", "sample_prompt_id"):
                        obj = g[name]
                        if obj.shape == (len(texts),) and obj.dtype.kind == "f":
                            data[name[len("sample_"):]] = obj[()]
                frames.append(pd.DataFrame(data).assign(file=p.name, seed=seed))
    head = ["file", "seed", "variant", "stage", "n", "step", "prompt_id", "prompt", "response"]
    if not frames:
        return pd.DataFrame(columns=head + ["proxy", "gold"])
    out = pd.concat(frames, ignore_index=True)
    for column in ("proxy", "gold"):
        if column not in out:
            out[column] = np.nan
    rest = [c for c in out.columns if c not in head]
    out = out[head + rest]
    for column in ("n", "step", "prompt_id"):
        out[column] = out[column].astype("Int64")
    return out


#: The columns of `load_compare`, after the group's settings.
COMPARE_COLUMNS = ["baseline", "variant", "metric", "mean", "t_low", "t_high", "bootstrap_low", "bootstrap_high",
                   "wins", "losses", "ties", "seeds", "p_value", "p_holm", "note"]
_JSON_DIFFERENCE = {"mean": "mean", "tLow": "t_low", "tHigh": "t_high", "bootstrapLow": "bootstrap_low",
                    "bootstrapHigh": "bootstrap_high", "pValue": "p_value", "pHolm": "p_holm"}


def _settings_from_label(label: str) -> Dict[str, str]:
    """"data.label_noise=0.25, rm.base=xl" → {"data.label_noise": "0.25", "rm.base": "xl"}."""
    parts = re.split(r", (?=[A-Za-z_][\w.]*=)", label) if label else []
    return dict(part.split("=", 1) for part in parts)


def _compare_rows_json(p: Path) -> Iterator[Dict[str, Any]]:
    try:
        groups = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OverOptFileError(f"{p}: not the JSON of `overopt compare --json` ({error.__class__.__name__})") from None
    if not isinstance(groups, list) or not all(isinstance(g, dict) and "rows" in g for g in groups):
        raise OverOptFileError(f"{p}: not the JSON of `overopt compare --json` (expected a list of groups with rows)")
    for g in groups:
        for r in g["rows"]:
            row: Dict[str, Any] = {"group": g["group"], "settings": dict(g.get("settings", {})),
                                   "baseline": g.get("baseline"), "variant": r["variant"], "metric": r["metric"],
                                   "note": r.get("note")}
            d = r.get("difference")
            for key, column in _JSON_DIFFERENCE.items():
                row[column] = float(d[key]) if d else np.nan   # "nan" and "inf" are strings in the JSON
            for column in ("wins", "losses", "ties", "seeds"):
                row[column] = int(d[column]) if d else pd.NA
            yield row


def _compare_rows_hdf5(p: Path) -> Iterator[Dict[str, Any]]:
    with _open(p) as f:
        if "compare" not in f:
            raise OverOptFileError(f"{p}: no /compare group (`overopt compare … -o FILE.h5` writes one)")
        for name, g in sorted(f["compare"].items()):
            settings = _settings_from_label(_text(g.attrs.get("settings", "")))
            seeds = len(g["seeds"][()]) if "seeds" in g else pd.NA
            for variant, vg in sorted((k, v) for k, v in g.items() if isinstance(v, h5py.Group)):
                metrics = [_text(m) for m in vg["metric"][()]]
                columns = {c: vg[c][()] for c in ("mean_difference", "t_low", "t_high", "bootstrap_low",
                                                   "bootstrap_high", "p_value", "p_holm", "wins", "losses")}
                for i, metric in enumerate(metrics):
                    wins, losses = int(columns["wins"][i]), int(columns["losses"][i])
                    yield {"group": name, "settings": settings, "baseline": _text(g.attrs.get("baseline")),
                           "variant": variant, "metric": metric, "mean": float(columns["mean_difference"][i]),
                           **{c: float(columns[c][i]) for c in ("t_low", "t_high", "bootstrap_low", "bootstrap_high",
                                                               "p_value", "p_holm")},
                           "wins": wins, "losses": losses, "seeds": seeds,
                           "ties": seeds - wins - losses if seeds is not pd.NA else pd.NA, "note": None}


def load_compare(path: PathLike) -> pd.DataFrame:
    """`overopt compare` output: one row per (group, variant, metric), the paired difference
    variant − baseline over the group's seeds.

    ``path`` is the JSON that ``overopt compare --json`` prints (``.json``) or an HDF5 file
    holding a ``/compare`` group (``overopt compare … -o FILE.h5``). Columns: ``group``, the
    settings that set the group apart (e.g. ``data.label_noise``; values as strings),
    ``baseline``, ``variant``, ``metric``, ``mean``, ``t_low``, ``t_high`` (95 % t interval),
    ``bootstrap_low``, ``bootstrap_high``, ``wins``, ``losses``, ``ties``, ``seeds``,
    ``p_value`` (sign-flip), ``p_holm`` and ``note``. A metric without a difference (PPO gold
    at a KL some seed did not reach) is a row with NaN statistics and the reason in ``note``
    in the JSON; the HDF5 form leaves such metrics out.
    """
    p = Path(path)
    if not p.exists():
        raise OverOptFileError(f"{p}: no such file")
    if p.is_dir():
        raise OverOptFileError(f"{p}: is a folder, expected compare output (.json or .h5)")
    rows = list(_compare_rows_json(p) if p.suffix.lower() == ".json" else _compare_rows_hdf5(p))
    keys = sorted({k for r in rows for k in r["settings"]})
    flat = [{"group": r["group"], **{k: r["settings"].get(k) for k in keys},
             **{c: r[c] for c in COMPARE_COLUMNS}} for r in rows]
    return pd.DataFrame(flat, columns=["group", *keys, *COMPARE_COLUMNS])
