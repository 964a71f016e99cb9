"""Lineage of a training run: which code and which library versions made its models."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

from policy.records import Lineage

CHECKOUT = Path(__file__).resolve().parents[1]
# what made and measured a model; each by the distribution names it may be installed under
LINEAGE_PACKAGES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
    "ai-edge-litert": ("ai-edge-litert",),
    "prefect": ("prefect",),
    "prefect-dask": ("prefect-dask",),
    "dask": ("dask",),
    "distributed": ("distributed",),
    "evidently": ("evidently",),
    "sqlalchemy": ("sqlalchemy",),
    "numpy": ("numpy",),
    "pandas": ("pandas",),
}


def _installed_version(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(CHECKOUT), *args], capture_output=True, text=True,
                              timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None  # not a checkout (an installed wheel) or no git: recorded as unknown
    return done.stdout.strip()


def current_lineage() -> Lineage:
    """The package version, the git commit of the checkout (with a dirty flag) when there is
    one, and the versions of the libraries that train, convert, run and record models."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return Lineage(
        package_version=_installed_version(("shelfcast",)) or "unknown",
        git_commit=commit or None,
        git_dirty=None if status is None else bool(status),
        packages={name: _installed_version(dists) for name, dists in LINEAGE_PACKAGES.items()},
    )
