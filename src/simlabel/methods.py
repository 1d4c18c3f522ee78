"""The method list, read from the project's configuration when the pipelines are built.

Kedro builds the pipeline graph before it reads parameters, so the per-method namespaces are
generated from the ``methods:`` block of the configuration files (``conf/base`` and the run
environment, ``conf/local`` by default or ``KEDRO_ENV``). Everything else about a method (its
overrides) is read at run time through ``params:methods.<name>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from simlabel.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _conf_source() -> Path:
    for root in (Path.cwd(), PROJECT_ROOT):
        if (root / "conf" / "base").is_dir():
            return root / "conf"
    raise FileNotFoundError("no conf/base folder in the working directory or the project root")


def load_parameters() -> dict:
    """The project's parameters (base + run environment), as Kedro merges them."""
    from kedro.config import OmegaConfigLoader

    from simlabel.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(_conf_source()), env=os.environ.get("KEDRO_ENV"), **CONFIG_LOADER_ARGS)
    return loader["parameters"]


def method_names() -> list[str]:
    """Names of ``methods:`` in configuration order."""
    methods = load_parameters().get("methods") or {}
    if not methods:
        raise UserError("no methods configured: add a `methods:` block to conf/base/parameters_methods.yml")
    for name in methods:
        if not str(name).isidentifier():
            raise UserError(f"method name {name!r} in `methods:` (parameters_methods.yml) must be a Python "
                            "identifier (letters, digits, _)")
    return list(methods)
