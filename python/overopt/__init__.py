"""Read OverOpt result files (HDF5) into pandas and xarray.

    import overopt
    df = overopt.load_runs("results/runs/fig2")     # tidy: one row per curve point

Run files (``overopt run``, one per seed) and summaries (``overopt collect``) of schema
versions 1 and 2 are read; see the "Results file schema" section of the repository's
README for the layout.
"""
from .results import (
    SCHEMA_VERSIONS,
    OverOptFileError,
    config,
    file_kind,
    fit_gao,
    gao_fit_curve,
    load_compare,
    load_detectors,
    load_fits,
    load_rewards,
    load_runs,
    load_summary,
    run_files,
    samples,
    schema_version,
    to_xarray,
    varying_keys,
)

__all__ = [
    "SCHEMA_VERSIONS",
    "OverOptFileError",
    "config",
    "file_kind",
    "fit_gao",
    "gao_fit_curve",
    "load_compare",
    "load_detectors",
    "load_fits",
    "load_rewards",
    "load_runs",
    "load_summary",
    "run_files",
    "samples",
    "schema_version",
    "to_xarray",
    "varying_keys",
]
__version__ = "0.2.0"
