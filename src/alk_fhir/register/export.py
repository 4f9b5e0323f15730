"""Write the register: rows from document versions, k-anonymised, as NDJSON or Parquet, with the
data dictionary and the suppression account beside them.

Files in the output directory:

- ``alk-register.ndjson`` (one JSON object per line, columns in dictionary order) or
  ``alk-register.parquet`` (pyarrow, an explicit schema: lists as Parquet lists, treatments as a
  list of ``{code, outcome}`` structs);
- ``data-dictionary.md`` and ``data-dictionary.json`` (``fields.FIELDS``);
- ``suppression.json``: k, the quasi-identifiers, cells and rows suppressed, and the versions that
  gave no row, by reason.
"""

from __future__ import annotations

import json
import logging
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


@dataclass
class ExportResult:
    data_file: Path
    rows: list[dict[str, Any]]
    suppression: Suppression
    skipped: Counter[str] = field(default_factory=Counter)
    files: list[Path] = field(default_factory=list)

    def account(self) -> dict[str, Any]:
        return {**self.suppression.to_dict(), "skippedVersions": dict(sorted(self.skipped.items()))}


def build_rows(versions: Iterable[Version], pkg: Package, key: bytes) -> tuple[list[dict[str, Any]], Counter[str]]:
    """A row per version that gives one; the others counted by reason."""
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for version in versions:
        try:
            rows.append(register_row(version, pkg, key))
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


def write_ndjson(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({name: row.get(name) for name in NAMES}, ensure_ascii=False,
                                 separators=(",", ":")) + "\n")


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([{name: row.get(name) for name in NAMES} for row in rows], schema=_parquet_schema())
    pq.write_table(table, path)


def export_register(versions: Iterable[Version], pkg: Package, key: bytes, out_dir: Path, *,
                    fmt: str = "ndjson", k: int = DEFAULT_K) -> ExportResult:
    """Extract, k-anonymise and write; OSError when ``out_dir`` cannot be written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    rows, skipped = build_rows(versions, pkg, key)
    rows.sort(key=lambda r: (r["pseudonym"], r["document"], r["version"]))
    published, suppression = k_anonymise(rows, k)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_file = out_dir / f"{DATA_FILE}.{fmt}"
    if fmt == "parquet":
        write_parquet(published, data_file)
    else:
        write_ndjson(published, data_file)
    result = ExportResult(data_file, published, suppression, skipped)
    (out_dir / "data-dictionary.md").write_text(dictionary_markdown(), encoding="utf-8")
    (out_dir / "data-dictionary.json").write_text(dictionary_json(), encoding="utf-8")
    (out_dir / "suppression.json").write_text(json.dumps(result.account(), indent=2) + "\n", encoding="utf-8")
    result.files = [data_file, out_dir / "data-dictionary.md", out_dir / "data-dictionary.json",
                    out_dir / "suppression.json"]
    return result
