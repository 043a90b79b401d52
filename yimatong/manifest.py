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

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pydantic_core import from_json, to_json
from zlib_ng import gzip_ng

from . import heap
from .publish import write_file

HASH_THREADS = 8
HASH_BATCH = 256  # files per hashing task
WALK_THREADS = 8
WALK_SPLIT = 256  # folders found breadth first before the subtrees are walked in threads
STATE = ".yimatong"  # inside the output; deploy and verify skip dot paths
MANIFEST = f"{STATE}/manifest.json.gz"
VERSION = 3  # 3: bundles. 2: a file per sign. 1: a JSON object per output and per record (600 MB at 100,000)
FOLDER_INODE = 0  # a bundle's entry in the inode column: a folder, never shared between trees


_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str).encode


def key_of(*parts: object) -> str:
    """A short stable hash of the inputs an output is made from. Strings (digests, paths: most
    parts, several per permit a night) go in as they are, after their length; anything else as
    JSON, which never starts with the letter s."""
    h = hashlib.blake2b(digest_size=12)
    for p in parts:
        if type(p) is str:
            raw = p.encode()
            h.update(b"s%d:" % len(raw))
            h.update(raw)
        else:
            h.update(_JSON(p).encode())
            h.update(b"\0")
    return h.hexdigest()


def files_key(paths: list[Path]) -> str:
    """The hash of some files' names and bytes (templates, code)."""
    h = hashlib.blake2b(digest_size=12)
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def is_bundle(path: str) -> bool:
    """A bundle's path is its folder's, ending in '/': a folder whose files one stage makes
    together under one key (a permit's sign PDFs, `signs/<permit>/`). The manifest, the catalog
    and the bucket state keep one entry for it, not one per file: 100,000 where the files are 1,070,000."""
    return path[-1:] == "/"


def folder_of(path: str) -> str:
    """The folder a file is in, as a bundle's path names it ('signs/<permit>/'; '' at the top)."""
    return path[: path.rfind("/") + 1]


def pack(files: Mapping[str, str]) -> str:
    """A bundle's files (name -> sha256) as one string, by name: "name sha256\n" each."""
    return "".join(f"{name} {files[name]}\n" for name in sorted(files))


def unpack(packed: str) -> dict[str, str]:
    """`pack`'s string back into name -> sha256."""
    return {line[:-65]: line[-64:] for line in packed.splitlines()}  # a sha256 is 64 characters


def in_bundles(bundles: Mapping[str, str], path: str) -> bool:
    """Whether one of `bundles` (folder -> packed files) holds the file at `path`, without unpacking it."""
    folder = folder_of(path)
    packed = bundles.get(folder)
    if packed is None:
        return False
    name = path[len(folder) :]
    return packed.startswith(f"{name} ") or f"\n{name} " in packed


def bundled_count(bundles: Mapping[str, str]) -> int:
    """How many files some bundles hold (a line each), without unpacking them."""
    return sum(packed.count("\n") for packed in bundles.values())


def plain_files(outputs: Mapping[str, Output]) -> dict[str, str]:
    """The outputs that are files, not bundles: path -> sha256."""
    return {p: o.sha256 for p, o in outputs.items() if not is_bundle(p)}


def bundle_files(folder: str, packed: str) -> dict[str, str]:
    """A bundle's files as site paths -> sha256."""
    return {folder + name: sha for name, sha in unpack(packed).items()}


def bundle_sha(packed: str) -> str:
    """A bundle's sha256 in the manifest: of its packed listing (its files' names and bytes)."""
    return hashlib.sha256(packed.encode()).hexdigest()


class Output(NamedTuple):
    """One output file of a build."""

    sha256: str
    key: str | None = None  # of its inputs, when the stage that wrote it gave one
    changed: str | None = None  # the export date of the night its inputs last changed
    inode: int | None = None  # in the tree the manifest describes (a hard link shares it)


class Records(Mapping[str, dict[str, Any]]):
    """permit_no -> what the next night needs of it (pipeline._records), as a dict when read. Kept
    as rows of values, not a dict per record and per list row (350 MB at 100,000 permits)."""

    FIELDS = ("file", "digest", "key", "paths", "stable_until", "data_date", "changed", "carried")

    def __init__(self, rows: dict[str, list[Any]], row_fields: list[str], entry_fields: list[str]) -> None:
        self._rows = rows
        self._row_fields = row_fields
        self._entry_fields = entry_fields

    @classmethod
    def of(cls, states: Mapping[str, Mapping[str, Any]]) -> Records:
        first = next(iter(states.values()), None)
        row_fields = list(first["row"]) if first else []
        entry_fields = list(first["entry"]) if first else []
        rows = {
            permit: [
                *(state.get(f) for f in cls.FIELDS),
                [state["row"][f] for f in row_fields],
                [state["entry"][f] for f in entry_fields],
            ]
            for permit, state in states.items()
        }
        return cls(rows, row_fields, entry_fields)

    def __getitem__(self, permit: str) -> dict[str, Any]:
        values = self._rows[permit]
        n = len(self.FIELDS)
        state = {f: v for f, v in zip(self.FIELDS, values[:n], strict=True) if v is not None or f == "data_date"}
        state["row"] = dict(zip(self._row_fields, values[n], strict=True))
        state["entry"] = dict(zip(self._entry_fields, values[n + 1], strict=True))
        return state

    def column(self, name: str) -> dict[str, Any]:
        """permit_no -> one of FIELDS, without making a state dict per permit."""
        i = self.FIELDS.index(name)
        return {p: v[i] for p, v in self._rows.items()}

    def list_rows(self) -> tuple[list[str], dict[str, list[Any]]]:
        """The list rows' field names, and permit_no -> that row's values (pages.Row's, in that order)."""
        n = len(self.FIELDS)
        return self._row_fields, {p: v[n] for p, v in self._rows.items()}

    def dated_digests(self) -> dict[str, tuple[str, str]]:
        """permit_no -> (digest, stable_until), without making a state dict per permit."""
        d, u = self.FIELDS.index("digest"), self.FIELDS.index("stable_until")
        return {p: (v[d], v[u]) for p, v in self._rows.items()}

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def dump(self) -> dict[str, Any]:
        return {
            "fields": [*self.FIELDS, "row", "entry"],
            "row": self._row_fields,
            "entry": self._entry_fields,
            "rows": {p: self._rows[p] for p in sorted(self._rows)},
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> Records:
        if data.get("fields") != [*cls.FIELDS, "row", "entry"]:
            raise ValueError("manifest records: unknown fields")
        return cls(data["rows"], data["row"], data["entry"])


class Prior(NamedTuple):
    """The tree a build replaced (the live tree while it ran; the next night's staging, moved aside
    by the swap): its files that are also this build's (the same inode), and the rest."""

    shared: set[str]
    stale: list[str]


@dataclass
class Manifest:
    outputs: dict[str, Output] = field(default_factory=dict)  # a file's path, or a bundle's folder
    records: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # permit_no -> state
    as_of: str | None = None
    prior: Prior | None = None  # unknown after a first build, or with the live tree on another disk
    inodes: dict[str, int] | None = None  # path -> inode in the tree it describes, when it lists every one
    bundles: dict[str, str] = field(default_factory=dict)  # a bundle's folder -> its files (`pack`)

    @classmethod
    def read(cls, out: Path) -> Manifest | None:
        try:
            data = _raw(out)
            outputs = outputs_of(data)
            if outputs is None:
                return None
            records = Records.of(data["records"]) if data["version"] == 1 else Records.load(data["records"])
            prior = data.get("prior")
            if prior is not None:
                paths = data["outputs"]["path"]
                shared = set(itertools.compress(paths, prior["shared"]))
                prior = Prior(shared, prior["stale"])
            inodes = _inodes(data)
            bundles = data.get("bundles") or {}
            if data["version"] == 2:
                outputs, prior, inodes, bundles = _bundled(outputs, prior, inodes)
            return cls(outputs, records, data.get("as_of"), prior, inodes, bundles)
        except (OSError, ValueError, EOFError, KeyError, TypeError):
            return None

    def write(self, staging: Path) -> None:
        paths = sorted(self.outputs)
        rows = [self.outputs[p] for p in paths]
        outputs = {
            "path": paths,
            "sha256": [o.sha256 for o in rows],
            "key": [o.key for o in rows],
            "changed": [o.changed for o in rows],
            "inode": [o.inode for o in rows],
        }
        records = self.records if isinstance(self.records, Records) else Records.of(self.records)
        data: dict[str, Any] = {"version": VERSION, "as_of": self.as_of, "records": records.dump(), "outputs": outputs}
        data["bundles"] = {f: self.bundles[f] for f in sorted(self.bundles)}
        if self.prior is not None:
            shared = self.prior.shared
            data["prior"] = {"shared": [int(p in shared) for p in paths], "stale": sorted(self.prior.stale)}
        # pydantic_core's encoder: the same bytes as json.dumps(ensure_ascii=False, compact), 3x faster
        # (0.4 s at 100,000 permits, against 5 s of CPU that held the GIL from the verifier's thread).
        # Level 1: at 100,000 permits level 6 took 4 s longer for a file 15 % smaller.
        write_file(staging / MANIFEST, gzip_ng.compress(to_json(data), compresslevel=1, mtime=0))

    def key(self, path: str) -> str | None:
        old = self.outputs.get(path)
        return old.key if old is not None else None

    def files(self) -> dict[str, str]:
        """Every file of the tree -> sha256, a bundle's files each (for the few readers that need
        them one by one: a deploy without the build's own list, tests)."""
        out = plain_files(self.outputs)
        for folder, packed in self.bundles.items():
            out.update(bundle_files(folder, packed))
        return out


# A version-2 manifest listed a permit's sign PDFs one by one: they are read as the bundle their
# folder is now (with no key, so tonight makes each again, once).
_SIGN_FOLDER = re.compile(r"signs/[0-9A-Z]{22}/")


def _bundled(
    outputs: dict[str, Output], prior: Prior | None, inodes: dict[str, int] | None
) -> tuple[dict[str, Output], Prior | None, dict[str, int] | None, dict[str, str]]:
    listed: dict[str, dict[str, str]] = {}
    folded: dict[str, str] = {}
    for path in list(outputs):
        m = _SIGN_FOLDER.match(path)
        if m and "/" not in path[m.end() :]:
            listed.setdefault(m.group(), {})[path[m.end() :]] = outputs.pop(path).sha256
            folded[path] = m.group()
    bundles = {folder: pack(files) for folder, files in listed.items()}
    for folder, packed in bundles.items():
        outputs[folder] = Output(bundle_sha(packed), None, None, FOLDER_INODE)
    if inodes is not None:
        inodes = {p: i for p, i in inodes.items() if p not in folded} | dict.fromkeys(bundles, FOLDER_INODE)
    if prior is not None:
        unshared = {folded[p] for p in folded if p not in prior.shared}
        shared = {folded.get(p, p) for p in prior.shared} - unshared
        stale = sorted({folded.get(p, p) for p in prior.stale} | unshared)
        prior = Prior(shared, stale)
    return outputs, prior, inodes, bundles


def _raw(root: Path) -> dict[str, Any]:
    """The manifest of the tree at `root`, as stored."""
    raw = gzip_ng.decompress((root / MANIFEST).read_bytes())
    with heap.acyclic():
        return from_json(raw)  # pydantic_core's: 1.5x json.loads, and one object per repeated string


def _inodes(data: dict[str, Any]) -> dict[str, int] | None:
    """A read manifest's path -> inode, or None when it does not record every one."""
    if data.get("version") not in (2, VERSION):
        return None
    paths, numbers = data["outputs"]["path"], data["outputs"].get("inode")
    if not paths or not numbers or len(numbers) != len(paths) or None in numbers:
        return None
    return dict(zip(paths, numbers, strict=True))


def tree_of(root: Path) -> dict[str, int] | None:
    """The files of a build tree (path -> inode) as its own manifest lists them, or None when it does
    not list them all (the fallback where the live manifest has no `prior`). Only for a tree
    nothing has written to since (`publish.Staging.pristine`): reading the manifest costs a second;
    reading 320,000 folders the page cache has lost, minutes."""
    try:
        return _inodes(_raw(root))
    except (OSError, ValueError, EOFError, KeyError, TypeError):
        return None


def outputs_of(data: dict[str, Any]) -> dict[str, Output] | None:
    """A read manifest's outputs, whichever version wrote it (None: one this code does not know)."""
    version, outputs = data.get("version"), data["outputs"]
    if version == 1:
        return {p: Output(o["sha256"], o.get("key"), o.get("changed")) for p, o in outputs.items()}
    if version in (2, VERSION):
        return _outputs(outputs)
    return None


def _outputs(columns: dict[str, list[Any]]) -> dict[str, Output]:
    """The columns back into Outputs (a key or date many files share is one string: from_json's)."""
    inodes = columns.get("inode") or [None] * len(columns["path"])
    rows = zip(columns["sha256"], columns["key"], columns["changed"], inodes, strict=True)
    return dict(zip(columns["path"], map(Output._make, rows), strict=True))


class Reuse:
    """Keeps or links unchanged outputs from the live build in staging, and records every output's key.

    Staging starts as last night's moved-aside tree (publish.begin). Of what it holds, only files
    that are still the live build's (the same inode at the same path) and that a stage keyed are
    kept for now; everything else goes at once, so a stage that makes a file tonight never finds an
    older one in its way. A kept file that no stage asks for tonight is removed by `catalog`."""

    def __init__(
        self, live: Path | None, previous: Manifest | None, staging: Path, base: dict[str, int] | Prior | None = None
    ) -> None:
        """`base`: what staging holds when known without reading its folders: path -> inode
        (`tree_of`), or the live manifest's `prior` when staging is the tree that build replaced
        (its shared files are the live build's inodes, the others no live file)."""
        self.live = live if previous is not None else None
        self.previous = previous or Manifest()
        self.staging = staging
        self.keys: dict[str, str] = {}
        self.dates: dict[str, str] = {}  # path -> the export date of the night it last changed
        self.linked = 0
        staging.mkdir(parents=True, exist_ok=True)
        # The live tree's inode numbers are in its manifest (catalog recorded them; the tree is
        # never written to after the swap), which saves reading 320,000 folders at 100,000
        # permits; a manifest without them is read anew.
        self.live_inodes: dict[str, int] = {}
        recorded = self.previous.inodes
        if self.live is not None and _same_fs(self.live, staging):
            trusted = recorded is not None and _still(self.live, recorded)
            self.live_inodes = recorded if recorded is not None and trusted else inodes(self.live)
        self.base: set[str] = set()  # staging files shared with the live build, not yet asked for
        self.kept: set[str] = set()  # files asked for and already in staging
        self._made: set[str] = set()  # staging folders known to exist (a mkdir per link cost 12 s at 100k)
        self._emptied: set[str] = set()  # folders files were removed from
        outputs, live_inodes = self.previous.outputs, self.live_inodes
        doomed: list[str] = []
        if isinstance(base, Prior) and self.inodes_recorded:
            # The live inodes are the manifest's own: a shared file is the live build's, and kept
            # for now when a stage keyed it (1,500,000 paths at 100,000 permits with signs).
            self.base = {path for path in base.shared if outputs[path].key}
            doomed += base.shared - self.base
            doomed += base.stale
        elif isinstance(base, Prior):
            for path in base.shared:
                old = outputs[path]
                if old.key and old.inode is not None and old.inode == live_inodes.get(path):
                    self.base.add(path)
                else:
                    doomed.append(path)
            doomed += base.stale
        else:
            # (A bundle's folder is never the same inode in two trees: its files are made again.)
            for path, ino in (inodes(staging) if base is None else base).items():
                old = outputs.get(path)
                if old is not None and old.key and not is_bundle(path) and ino == live_inodes.get(path):
                    self.base.add(path)
                else:
                    doomed.append(path)
        # Last night's changes, a few thousand files whose folders and inodes the page cache has
        # often let go: each unlink waits on the disk, so several wait at once (0.5 ms each, alone).
        parts = [doomed[i::HASH_THREADS] for i in range(HASH_THREADS)]  # strided: not all in one folder
        with ThreadPoolExecutor(HASH_THREADS) as pool:
            for _ in pool.map(lambda part: [self.unlink(p) for p in part], parts):
                pass

    @property
    def inodes_recorded(self) -> bool:
        """The live inodes are the live manifest's own column (trusted): each of its entries then
        holds its file's inode as it is."""
        return self.previous.inodes is not None and self.live_inodes is self.previous.inodes

    def unlink(self, path: str) -> None:
        """Remove a file or bundle of last night's tree from staging (its folder too, once empty: `catalog`)."""
        if is_bundle(path):
            shutil.rmtree(f"{self.staging}/{path}", ignore_errors=True)
            path = path[:-1]
        else:
            with contextlib.suppress(FileNotFoundError):  # someone tidied the moved-aside tree by hand
                os.unlink(f"{self.staging}/{path}")
        self._emptied.add(path.rpartition("/")[0])  # a set's add is atomic: called from threads too

    def changed_on(self, path: str, key: str, today: str) -> str:
        """When `path` last changed: the live build's date if it was built from the same key, else today.
        (Read from the live manifest even with --full, so a cold build states the same dates.)"""
        old = self.previous.outputs.get(path)
        date = old.changed if old is not None and old.key == key and old.changed else today
        self.dates[path] = date
        return date

    def drop_unasked(self) -> None:
        """Remove what last night's tree held that no stage made again or asked for tonight (a file
        made again is a new inode), and the folders that leaves empty."""
        for path in sorted(self.base):
            try:
                remade = os.stat(f"{self.staging}/{path}").st_ino != self.live_inodes.get(path)
            except FileNotFoundError:
                continue
            if not (remade and path in self.keys):
                self.unlink(path)
        self.base.clear()
        for folder in sorted(self._emptied, key=lambda f: -f.count("/")):
            while folder:
                try:
                    os.rmdir(f"{self.staging}/{folder}")
                except OSError:
                    break  # not empty (or gone)
                folder = folder.rpartition("/")[0]
        self._emptied.clear()

    def link(self, path: str, key: str) -> bool:
        """Hard-link the live `path` into staging if it was built from `key` (True: the caller skips
        the work); record the key either way."""
        if self.live is None or self.previous.key(path) != key:
            self._anew(path, key)
            return False
        self.keys[path] = key
        return self._link(path)

    def link_many(self, wanted: dict[str, str]) -> set[str]:
        """`link(path, key)` for every path (or bundle) of `wanted`; returns those not linked (the
        caller writes them). Set operations over the whole: 100,000 permits' unchanged sign
        bundles a night, most of them already in staging (last night's tree), cost no call each."""
        self.keys.update(wanted)
        if self.live is None:
            missed = set(wanted)
        else:
            old = self.previous.outputs
            same = [p for p, k in wanted.items() if (o := old.get(p)) is not None and o.key == k]
            there = self.base.intersection(same)
            self.base -= there
            self.kept |= there
            missed = wanted.keys() - same
            missed |= {p for p in same if p not in there and not self._link(p)}
        for path in self.base.intersection(missed):  # made again tonight: last night's file goes
            self.base.discard(path)
            self.unlink(path)
        return missed

    def _anew(self, path: str, key: str) -> None:
        """The caller writes `path` tonight: record its key, and clear last night's file out of its way."""
        self.keys[path] = key
        self.kept.discard(path)
        if path in self.base:
            self.base.discard(path)
            self.unlink(path)

    def carry(self, prefix: str) -> int:
        """Link every live output under `prefix` as it is: a stage skipped tonight (`--no-signs`)
        keeps last night's files rather than deleting them from the site and the CDN."""
        if self.live is None:
            return 0
        carried = 0
        for path, entry in self.previous.outputs.items():
            if path.startswith(prefix) and self._link(path):
                if entry.key:
                    self.keys[path] = entry.key
                if entry.changed:
                    self.dates[path] = entry.changed
                carried += 1
        return carried

    def _link(self, path: str) -> bool:
        assert self.live is not None
        if path in self.base:  # already there: last night's tree holds the live file
            self.base.discard(path)
            self.kept.add(path)
            return True
        if path in self.kept:
            return True
        if is_bundle(path):
            return self._link_bundle(path)
        source = f"{self.live}/{path}"
        target = f"{self.staging}/{path}"
        folder = path.rpartition("/")[0]
        try:
            if folder not in self._made:
                os.makedirs(f"{self.staging}/{folder}", exist_ok=True)
                self._made.add(folder)
            os.link(source, target)
        except FileExistsError:
            return True
        except OSError:
            if not os.path.isfile(source):
                return False
            shutil.copy2(source, target)  # another file system: a copy still saves the rendering
        self.linked += 1
        self.kept.add(path)
        return True

    def _link_bundle(self, folder: str) -> bool:
        """Every file of the live bundle into staging (a folder of last night's tree that was not the
        live one's went at the start)."""
        packed = self.previous.bundles.get(folder)
        if packed is None:
            return False
        os.makedirs(f"{self.staging}/{folder}", exist_ok=True)
        for name in unpack(packed):
            source, target = f"{self.live}/{folder}{name}", f"{self.staging}/{folder}{name}"
            try:
                os.link(source, target)
            except FileExistsError:  # not expected (the folder went at the start): never write into it
                os.unlink(target)
                os.link(source, target)
            except OSError:
                if not os.path.isfile(source):  # the caller makes the bundle, in an empty folder
                    shutil.rmtree(f"{self.staging}/{folder}", ignore_errors=True)
                    return False
                shutil.copy2(source, target)
            self.linked += 1
        self.kept.add(folder)
        return True

    def tracked(self, roots: tuple[str, ...]) -> tuple[set[str], dict[str, int]]:
        """The files staging holds under `roots`, from what the stages asked for, once
        `drop_unasked` has run: those linked from the live build (the live inodes), and those made
        tonight with their inodes, asked of the file system (a few thousand on a 1 % night, instead
        of reading every folder)."""
        live = self.live_inodes
        linked = {p for p in self.kept if p in live and p.startswith(roots)}
        made: dict[str, int] = {}
        for path in itertools.chain(self.keys.keys() - self.kept, self.kept - linked):
            if path.startswith(roots):
                try:
                    made[path] = os.stat(f"{self.staging}/{path}").st_ino
                except FileNotFoundError:
                    continue
        return linked, made

    def link_all(self, paths: list[str], key: str) -> bool:
        """All of `paths` from the live build, or none (the caller renders them all)."""
        if self.live is None or any(self.previous.key(p) != key for p in paths):
            for p in paths:
                self._anew(p, key)
            return False
        return all(self.link(p, key) for p in paths)


@dataclass(frozen=True)
class Catalog:
    outputs: dict[str, Output]  # files, and bundles (their folders)
    changed: set[str]  # files new, or different bytes from the live build's (a bundle's one by one)
    removed: set[str]  # files
    prior: Prior | None = None  # the live tree's files and bundles, shared with staging's or not
    bundles: dict[str, str] = field(default_factory=dict)  # a bundle's folder -> its files (`pack`)

    def files(self) -> dict[str, str]:
        """Every file -> sha256, a bundle's files each."""
        return Manifest(self.outputs, bundles=self.bundles).files()


# Every file under these is made through `Reuse` (linked, or written under a key; a night without
# the sign stage carries signs/ through it), so tonight's list of them is known without reading their
# folders: at 100,000 permits, 320,000 pages and 1,070,000 sign PDFs of the 1,500,000 files.
KEYED_ROOTS = ("P/", "signs/")


def catalog(
    staging: Path,
    live: Path | None,
    previous: Manifest | None,
    keys: dict[str, str],
    dates: dict[str, str],
    reuse: Reuse | None = None,
) -> Catalog:
    """Every file of the staging tree with its sha256; linked files keep the live build's hash.
    A linked file is the same inode as the live file at the same path. Staging's inode numbers come
    from reading its folders (no stat per file: 430,000 files at 100,000 permits), except under
    KEYED_ROOTS on a night with a live build, where `reuse` knows them; the live tree's come from
    `reuse` (its manifest) or, without it, from reading its folders too. Files last night's tree
    held that no stage asked for tonight (`reuse.base`) are removed first."""
    if reuse is not None:
        reuse.drop_unasked()
    prev = previous.outputs if previous and live else {}
    prev_bundles = previous.bundles if previous and live else {}
    if reuse is not None and reuse.live is not None:
        live_inodes = reuse.live_inodes  # empty when on another file system
    else:
        live_inodes = inodes(live) if prev and live is not None and _same_fs(live, staging) else {}
    tracked = reuse is not None and reuse.live is not None and bool(live_inodes)
    found = inodes(staging, skip=KEYED_ROOTS if tracked else ())
    # The live build's files (the same inode at the same path): their bytes are known.
    shared = {p for p, ino in found.items() if live_inodes.get(p) == ino}
    outputs: dict[str, Output] = {}
    made_bundles: set[str] = set()
    if tracked:
        assert reuse is not None
        linked, made = reuse.tracked(KEYED_ROOTS)
        made_bundles = {p for p in made if is_bundle(p)}
        for folder in made_bundles:
            del made[folder]
        shared |= linked
        found.update(made)
        if reuse.inodes_recorded:
            # Linked under the same key, it is last night's entry as it is: its key, its inode (the
            # manifest's) and, unless a stage dated it otherwise, its date. Most of a night's
            # files and bundles, taken without a look at each.
            redated = {p for p, d in dates.items() if (o := prev.get(p)) is None or o.changed != d}
            outputs = {p: prev[p] for p in linked if p in prev and p not in redated}
            found.update((p, live_inodes[p]) for p in linked if p not in outputs)
        else:
            found.update((p, live_inodes[p]) for p in linked)
    else:  # the walk found the bundles' files: each bundle is made up anew from them
        folders = {p for p in keys if is_bundle(p)}
        if folders:
            for path in [p for p in found if folder_of(p) in folders]:
                del found[path]
                made_bundles.add(folder_of(path))
    changed: set[str] = set()
    new = sorted(p for p in found if p not in shared or p not in prev)
    listed = {folder: sorted(_files_in(staging, folder)) for folder in sorted(made_bundles)}
    in_bundles = [folder + name for folder, names in listed.items() for name in names]
    digests = dict(zip(new + in_bundles, _sha256_all(staging, new + in_bundles), strict=True))
    for path in found:  # the dict's order does not matter: the manifest and deploy sort the paths
        digest = digests.get(path)
        key, date, ino = keys.get(path), dates.get(path), found[path]
        old = prev.get(path)
        if digest is None:
            assert old is not None
            same = old.key == key and old.changed == date and old.inode == ino
            outputs[path] = old if same else Output(old.sha256, key, date, ino)
            continue
        outputs[path] = Output(digest, key, date, ino)
        if old is None or old.sha256 != digest:
            changed.add(path)
    removed = {p for p in prev.keys() - outputs.keys() if not is_bundle(p)}
    bundles = {p: prev_bundles[p] for p in outputs if is_bundle(p)}  # linked: last night's
    for folder, names in listed.items():
        files = {name: digests[folder + name] for name in names}
        bundles[folder] = packed = pack(files)
        outputs[folder] = Output(bundle_sha(packed), keys.get(folder), dates.get(folder), FOLDER_INODE)
        before = unpack(prev_bundles.get(folder, ""))
        changed.update(folder + n for n, sha in files.items() if before.get(n) != sha)
        removed.update(folder + n for n in before.keys() - files.keys())
    for folder in prev_bundles.keys() - bundles.keys():
        removed.update(bundle_files(folder, prev_bundles[folder]))
    prior = None
    if live_inodes:  # the whole live tree, from its manifest or its folders
        stale = live_inodes.keys() - shared
        if not tracked:  # its folders: a bundle's files are the bundle, made again here (not shared)
            folders = prev_bundles.keys() | bundles.keys()
            stale = {f if (f := folder_of(p)) in folders else p for p in stale | shared}
            stale -= shared
        prior = Prior(shared, list(stale))
    return Catalog(outputs, changed, removed, prior, bundles)


def _files_in(root: Path, folder: str) -> list[str]:
    with os.scandir(f"{root}/{folder}") as it:
        return [e.name for e in it if not e.name.startswith(".") and e.is_file(follow_symlinks=False)]


def _still(root: Path, recorded: dict[str, int], samples: int = 32) -> bool:
    """Whether the tree's files are still the inodes its manifest recorded, by a few of them spread
    over it: a copied or restored tree (cp -r, a backup) has new ones, and is then read anew."""
    paths = [p for p in recorded if not is_bundle(p)]  # in path order, as the manifest lists them
    for p in paths[:: max(1, len(paths) // samples)]:
        try:
            if os.stat(f"{root}/{p}").st_ino != recorded[p]:
                return False
        except OSError:
            return False
    return True


def _same_fs(a: Path, b: Path) -> bool:
    """Inode numbers identify a file within one file system only."""
    return os.stat(a).st_dev == os.stat(b).st_dev


def walk(root: Path) -> list[str]:
    """Site-relative paths of every file under `root`, dot paths (state, marker) left out, sorted."""
    return sorted(inodes(root))


def inodes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Every file under `root` (dot paths and the top folders `skip` left out) with its inode
    number, as the folder listings give it (no stat per file). Breadth first until there are
    folders enough to share out, then their subtrees in threads: reading a folder the cache has lost
    waits on the disk (at 100,000 permits, 320,000 folders), and a listing releases the GIL while it
    waits."""
    found: dict[str, int] = {}
    level = [("", str(root))]
    while level and len(level) < WALK_SPLIT:
        below: list[tuple[str, str]] = []
        for prefix, folder in level:
            below += _scan(prefix, folder, found)
        level = [b for b in below if b[0] not in skip]
    if level:
        shares = [level[i :: WALK_THREADS * 4] for i in range(WALK_THREADS * 4)]
        with ThreadPoolExecutor(WALK_THREADS) as pool:
            for part in pool.map(_walk, shares):
                found.update(part)
    return found


def _scan(prefix: str, folder: str, found: dict[str, int]) -> list[tuple[str, str]]:
    """One folder's files into `found`; returns its subfolders."""
    below = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            if e.is_dir(follow_symlinks=False):
                below.append((prefix + e.name + "/", e.path))
            else:
                found[prefix + e.name] = e.inode()
    return below


def _walk(folders: list[tuple[str, str]]) -> dict[str, int]:
    found: dict[str, int] = {}
    stack = list(folders)
    while stack:
        stack += _scan(*stack.pop(), found)
    return found


def _sha256_all(root: Path, paths: list[str]) -> list[str]:
    """The files' sha256s, in order. Reads and hashing release the GIL: several in flight keep the
    disk busy (a cold build reads back 430,000 files at 100,000 permits, most of them no longer in
    the page cache). A task per batch of paths, not per file: 430,000 futures and Paths held at once
    weighed 800 MB, which the process kept to the end of the run (and its verifiers shared)."""

    def batch(part: list[str]) -> list[str]:
        return [_sha256(f"{root}/{p}") for p in part]

    parts = [paths[i : i + HASH_BATCH] for i in range(0, len(paths), HASH_BATCH)]
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        return [digest for part in pool.map(batch, parts) for digest in part]


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
