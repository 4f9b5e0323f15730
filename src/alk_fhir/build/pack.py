"""Write the published package as a FHIR NPM package tarball (``package/`` + manifest + index)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from alk_fhir.build.authoring import dumps, index
from alk_fhir.knowledge.package import load_package


def pack(profiles: Path, out_dir: Path) -> Path:
    """Load (and so check) the package, then write ``<name>-<version>.tgz`` reproducibly."""
    pkg = load_package(profiles)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{pkg.name}-{pkg.version}.tgz"
    members: dict[str, bytes] = {
        "package/package.json": dumps(pkg.manifest).encode(),
        "package/.index.json": dumps(index(pkg.resources)).encode(),
    }
    for res in pkg.resources:
        members[f"package/{res['resourceType']}-{res['id']}.json"] = json.dumps(
            res, ensure_ascii=False, indent=2).encode() + b"\n"
    with tarfile.open(target, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(members):
            data = members[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return target
