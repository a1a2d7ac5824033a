"""A minimal PEP 517 build backend (standard library only) for this sample plugin.

It builds a pure-Python wheel from ``pyproject.toml``'s ``[project]`` table: the package folder
named after the project, ``METADATA``, ``entry_points.txt``, ``WHEEL`` and ``RECORD``. Enough for
``pip install`` offline; not a general-purpose backend.
"""

from __future__ import annotations

import base64
import hashlib
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _files(project: dict) -> dict[str, bytes]:
    name, version = project["name"].replace("-", "_"), project["version"]
    files = {str(p.relative_to(ROOT)): p.read_bytes() for p in sorted((ROOT / name).rglob("*.py"))}
    info = f"{name}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {version}",
            f"Summary: {project.get('description', '')}", f"Requires-Python: {project.get('requires-python', '')}",
            *(f"Requires-Dist: {d}" for d in project.get("dependencies", []))]
    files[f"{info}/METADATA"] = ("\n".join(meta) + "\n").encode()
    groups = project.get("entry-points", {})
    eps = "".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in items.items()) + "\n"
                  for g, items in groups.items())
    files[f"{info}/entry_points.txt"] = eps.encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: sample-backend\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n")
    return files


def get_requires_for_build_wheel(config_settings: dict | None = None) -> list[str]:
    return []


def build_wheel(wheel_directory: str, config_settings: dict | None = None,
                metadata_directory: str | None = None) -> str:
    project = _project()
    name, version = project["name"].replace("-", "_"), project["version"]
    files = _files(project)
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel
