"""Write the register: rows from document versions, k-anonymised, as NDJSON or Parquet, with the
data dictionary and the suppression account beside them.

Files in the output directory:

- ``alk-register.ndjson`` (one JSON object per line, columns in dictionary order) or
  ``alk-register.parquet`` (pyarrow, an explicit schema: lists as Parquet lists, treatments as a
  list of ``{code, outcome}`` structs);
- ``data-dictionary.md`` and ``data-dictionary.json`` (``fields.FIELDS``);
- ``suppression.json``: k, the quasi-identifiers, cells and rows suppressed, the versions that
  gave no row, by reason, and the codes dropped because they were no codes.

The directory holds this export and nothing else (:func:`prepare_directory`): a fresh or empty one,
or with ``force`` an existing one emptied first, so a file of an earlier run (say a k=1 Parquet) can
never sit beside an account that says k=5. The directory is made 0700 and every file 0600, created
with ``O_CREAT | O_EXCL | O_NOFOLLOW``: nothing is written through a symlink, and a symlink as the
directory itself is refused.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alk_fhir.knowledge import Package
from alk_fhir.register.anonymity import DEFAULT_K, Suppression, k_anonymise
from alk_fhir.register.extract import Skipped, Version, register_row
from alk_fhir.register.fields import FIELDS, NAMES, dictionary_json, dictionary_markdown

log = logging.getLogger("alk_fhir.register")
FORMATS = ("ndjson", "parquet")
DATA_FILE = "alk-register"
FILE_MODE = 0o600
DIR_MODE = 0o700


class OutputDirectoryError(OSError):
    """The output directory cannot be used as it is (not empty, a symlink, not a directory)."""


@dataclass
class ExportResult:
    data_file: Path
    rows: list[dict[str, Any]]
    suppression: Suppression
    skipped: Counter[str] = field(default_factory=Counter)
    files: list[Path] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    def account(self) -> dict[str, Any]:
        return {**self.suppression.to_dict(), "skippedVersions": dict(sorted(self.skipped.items())),
                "droppedCodes": dict(sorted(self.dropped.items()))}


def build_rows(versions: Iterable[Version], pkg: Package, key: bytes,
               dropped: Counter[str] | None = None) -> tuple[list[dict[str, Any]], Counter[str]]:
    """A row per version that gives one; the others counted by reason (codes that are no codes in
    ``dropped``)."""
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for version in versions:
        try:
            rows.append(register_row(version, pkg, key, dropped))
        except Skipped as exc:
            skipped[str(exc)] += 1
            if exc.__cause__ is not None:  # the operator's log says why; the export only counts it
                log.warning("a document version (version %d) could not be evaluated: %s: %s", version.version,
                            type(exc.__cause__).__name__, exc.__cause__)
    return rows, skipped


def _parquet_schema() -> Any:
    import pyarrow as pa

    kinds = {"string": pa.string(), "int": pa.int64(), "bool": pa.bool_(), "list<string>": pa.list_(pa.string()),
             "list<struct<code,outcome>>": pa.list_(pa.struct([("code", pa.string()), ("outcome", pa.string())]))}
    return pa.schema([pa.field(f.name, kinds[f.type], nullable=f.nullable) for f in FIELDS])


def prepare_directory(out_dir: Path, *, force: bool = False) -> None:
    """Make ``out_dir`` an empty directory of ours (0700). Refused: a symlink (never followed), a
    non-directory, a non-empty directory unless ``force``, which removes the files in it (symlinks in
    it are removed, not followed). A directory with subdirectories is never emptied: an export makes
    none, so it is somebody else's directory, and ``--force`` on the wrong path must not wipe a tree."""
    try:
        info = out_dir.lstat()
    except FileNotFoundError:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        out_dir.mkdir(mode=DIR_MODE)
        return
    if stat.S_ISLNK(info.st_mode):
        raise OutputDirectoryError(f"{out_dir} is a symbolic link: give the real directory (links are never followed)")
    if not stat.S_ISDIR(info.st_mode):
        raise OutputDirectoryError(f"{out_dir} is not a directory")
    entries = list(out_dir.iterdir())
    if entries and not force:
        raise OutputDirectoryError(f"{out_dir} is not empty ({len(entries)} entries): give a new directory, "
                                   "or --force to empty it first")
    subdirectories = [e.name for e in entries if stat.S_ISDIR(e.lstat().st_mode)]
    if subdirectories:
        raise OutputDirectoryError(f"{out_dir} holds directories ({', '.join(sorted(subdirectories)[:3])}): "
                                   "not an export directory, so --force does not empty it")
    for entry in entries:
        entry.unlink()
    os.chmod(out_dir, DIR_MODE)


def _create(path: Path) -> int:
    """A new file at ``path``, 0600, never through a symlink and never over an existing file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags, FILE_MODE)


def write_text(path: Path, text: str) -> None:
    with os.fdopen(_create(path), "w", encoding="utf-8") as out:
        out.write(text)


def write_ndjson(rows: list[dict[str, Any]], path: Path) -> None:
    with os.fdopen(_create(path), "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({name: row.get(name) for name in NAMES}, ensure_ascii=False,
                                 separators=(",", ":")) + "\n")


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([{name: row.get(name) for name in NAMES} for row in rows], schema=_parquet_schema())
    with os.fdopen(_create(path), "wb") as out:
        pq.write_table(table, out)


def export_register(versions: Iterable[Version], pkg: Package, key: bytes, out_dir: Path, *,
                    fmt: str = "ndjson", k: int = DEFAULT_K, force: bool = False) -> ExportResult:
    """Extract, k-anonymise and write into a fresh ``out_dir`` (``force``: empty it first);
    OutputDirectoryError when the directory may not be used, OSError when it cannot be written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    prepare_directory(out_dir, force=force)  # before reading: a refused directory costs nothing
    dropped: Counter[str] = Counter()
    rows, skipped = build_rows(versions, pkg, key, dropped)
    rows.sort(key=lambda r: (r["pseudonym"], r["document"], r["version"]))
    published, suppression = k_anonymise(rows, k)
    data_file = out_dir / f"{DATA_FILE}.{fmt}"
    if fmt == "parquet":
        write_parquet(published, data_file)
    else:
        write_ndjson(published, data_file)
    result = ExportResult(data_file, published, suppression, skipped, dropped=dropped)
    write_text(out_dir / "data-dictionary.md", dictionary_markdown())
    write_text(out_dir / "data-dictionary.json", dictionary_json())
    write_text(out_dir / "suppression.json", json.dumps(result.account(), indent=2) + "\n")
    result.files = [data_file, out_dir / "data-dictionary.md", out_dir / "data-dictionary.json",
                    out_dir / "suppression.json"]
    return result
