"""What the live build was made of, so tonight's build redoes only what changed.

The manifest lives inside the output, in `.yimatong/manifest.json` (never deployed), so it is
swapped in with the tree it describes: a run that dies can never leave a manifest that disagrees
with the live site. It records

- for every output file: its sha256 (what deploy compares) and, when the stage that wrote it gave
  one, the *key* of its inputs (a hash of the record digest, the templates, the site settings …);
- for every published permit: the record it came from, its list row and its change history.

Tonight a stage asks `reuse.link(path, key)`: when the live build wrote `path` from the same key,
the live file is hard-linked into staging (the live tree is never written to, and a link costs no
copy) and the stage skips the work. `catalog()` then finds what is new without hashing the linked
files again: a file that is the same inode as the live file at the same path is unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE = ".yimatong"  # inside the output; deploy and verify skip dot paths
MANIFEST = f"{STATE}/manifest.json.gz"
VERSION = 1


def key_of(*parts: object) -> str:
    """A short stable hash of the inputs an output is made from."""
    h = hashlib.blake2b(digest_size=12)
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


def files_key(paths: list[Path]) -> str:
    """The hash of some files' names and bytes (templates, code)."""
    h = hashlib.blake2b(digest_size=12)
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass
class Manifest:
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> {"sha256", "key"?}
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # permit_no -> state
    as_of: str | None = None

    @classmethod
    def read(cls, out: Path) -> Manifest | None:
        try:
            data = json.loads(gzip.decompress((out / MANIFEST).read_bytes()))
        except (OSError, ValueError, EOFError):
            return None
        if data.get("version") != VERSION:
            return None
        return cls(data["outputs"], data["records"], data.get("as_of"))

    def write(self, staging: Path) -> None:
        data = {"version": VERSION, "as_of": self.as_of, "records": self.records, "outputs": self.outputs}
        raw = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        target = staging / MANIFEST
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress(raw, compresslevel=6, mtime=0))

    def key(self, path: str) -> str | None:
        return self.outputs.get(path, {}).get("key")


class Reuse:
    """Links unchanged outputs from the live build into staging, and records every output's key."""

    def __init__(self, live: Path | None, previous: Manifest | None, staging: Path) -> None:
        self.live = live if previous is not None else None
        self.previous = previous or Manifest()
        self.staging = staging
        self.keys: dict[str, str] = {}
        self.dates: dict[str, str] = {}  # path -> the export date of the night it last changed
        self.linked = 0

    def changed_on(self, path: str, key: str, today: str) -> str:
        """When `path` last changed: the live build's date if it was built from the same key, else today.
        (Read from the live manifest even with --full, so a cold build states the same dates.)"""
        old = self.previous.outputs.get(path, {})
        date = old["changed"] if old.get("key") == key and "changed" in old else today
        self.dates[path] = date
        return date

    def link(self, path: str, key: str) -> bool:
        """Hard-link the live `path` into staging if it was built from `key`; record the key either way."""
        self.keys[path] = key
        if self.live is None or self.previous.key(path) != key:
            return False
        return self._link(path)

    def carry(self, prefix: str) -> int:
        """Link every live output under `prefix` as it is: a stage skipped tonight (`--no-signs`)
        keeps last night's files rather than deleting them from the site and the CDN."""
        if self.live is None:
            return 0
        carried = 0
        for path, entry in self.previous.outputs.items():
            if path.startswith(prefix) and self._link(path):
                if "key" in entry:
                    self.keys[path] = entry["key"]
                if "changed" in entry:
                    self.dates[path] = entry["changed"]
                carried += 1
        return carried

    def _link(self, path: str) -> bool:
        assert self.live is not None
        source = self.live / path
        target = self.staging / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
        except FileExistsError:
            return True
        except OSError:
            if not source.is_file():
                return False
            shutil.copy2(source, target)  # another file system: a copy still saves the rendering
        self.linked += 1
        return True

    def link_all(self, paths: list[str], key: str) -> bool:
        """All of `paths` from the live build, or none (the caller renders them all)."""
        if self.live is None or any(self.previous.key(p) != key for p in paths):
            for p in paths:
                self.keys[p] = key
            return False
        return all(self.link(p, key) for p in paths)


@dataclass(frozen=True)
class Catalog:
    outputs: dict[str, dict[str, str]]
    changed: set[str]  # new, or different bytes from the live build's
    removed: set[str]


def catalog(
    staging: Path, live: Path | None, previous: Manifest | None, keys: dict[str, str], dates: dict[str, str]
) -> Catalog:
    """Every file of the staging tree with its sha256; linked files keep the live build's hash."""
    prev = previous.outputs if previous and live else {}
    outputs: dict[str, dict[str, str]] = {}
    changed: set[str] = set()
    for path in walk(staging):
        st = os.stat(staging / path)
        old = prev.get(path)
        if old is not None and live is not None:
            try:
                lst = os.stat(live / path)
            except OSError:
                lst = None
            if lst is not None and (lst.st_ino, lst.st_dev) == (st.st_ino, st.st_dev):
                outputs[path] = _entry(old["sha256"], keys.get(path), dates.get(path))
                continue
        digest = _sha256(staging / path)
        outputs[path] = _entry(digest, keys.get(path), dates.get(path))
        if old is None or old["sha256"] != digest:
            changed.add(path)
    return Catalog(outputs, changed, set(prev) - set(outputs))


def _entry(sha: str, key: str | None, changed: str | None) -> dict[str, str]:
    entry = {"sha256": sha}
    if key:
        entry["key"] = key
    if changed:
        entry["changed"] = changed
    return entry


def walk(root: Path) -> list[str]:
    """Site-relative paths of every file under `root`, dot paths (state, marker) left out, sorted."""
    found: list[str] = []
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                rel = prefix + e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append((rel + "/", Path(e.path)))
                else:
                    found.append(rel)
    found.sort()
    return found


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
