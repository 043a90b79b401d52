"""Exported YAML → validated records and a list of problems. Never stops at the first bad file.

Files are parsed with libyaml in parallel worker processes. Each validated record is pickled into a
content-addressed cache (the key also covers this validation code), so an unchanged file is never
parsed twice: a night with few changes costs a read and a hash per file. Workers hand back only a
small `Entry` per record. What the cache keeps is the record's public view (public.py), made once per
content hash: the later stages read only that, one record at a time, so nothing confidential can
reach them and memory stays flat however many enterprises there are. (Plain dicts also unpickle
several times faster than pydantic models.)
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from . import explain, heap, yamlread
from .errors import Problem, YimatongError
from .identifiers import city_code
from .public import public_view
from .schema import EnterpriseFile, Regions, Site
from .validate import Entry, entry_of, read_model, record_checks

__all__ = ["Entry", "Loaded", "RecordStore", "entry_of", "iter_views", "load", "read_model", "record_checks"]

Progress = Callable[[int, int], None]
M = TypeVar("M", bound=BaseModel)

# Anything that changes what validation accepts, what the public view holds or how the cache keeps
# it changes the cache key (and so every record's digest). How the files are read does not.
_SOURCES = ("schema.py", "identifiers.py", "yamlread.py", "explain.py", "validate.py", "public.py")
_CODE = [Path(__file__).with_name(n) for n in _SOURCES]
STORE_FORMAT = b"store 1: pickle of (view, sorted secrets); index 1: (outcomes, signatures)"
FINGERPRINT = hashlib.blake2b(b"".join(p.read_bytes() for p in _CODE) + STORE_FORMAT, digest_size=8).hexdigest()


@dataclass
class Loaded:
    site: Site
    regions: Regions
    entries: list[Entry]
    problems: list[Problem]
    files: int
    store: RecordStore
    parsed: int = 0  # files parsed this run (the rest came from the cache)

    @property
    def rejected(self) -> list[str]:
        return sorted({p.file for p in self.problems if p.severity == "error"})


class ConfigInvalid(YimatongError):
    """site.yaml or regions.yaml is unusable: nothing can be built."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{problems[0].file} 无效，无法构建")
        self.problems = problems


class RecordStore:
    """The public views of validated records, pickled under their content digest."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "records"

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.pickle"

    def put(self, digest: str, view: dict[str, Any], secrets: set[str]) -> None:
        path = self.path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps((view, sorted(secrets)), protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)

    def get(self, digest: str) -> dict[str, Any]:
        return pickle.loads(self.path(digest).read_bytes())[0]

    def secrets(self, digest: str) -> list[str]:
        """The record's withheld values (public.secrets), for the verifier."""
        return pickle.loads(self.path(digest).read_bytes())[1]

    def prune(self, keep: set[str]) -> int:
        """Remove the views of records no file and no kept page refers to any more."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for folder in self.root.iterdir():
            for f in folder.iterdir():
                if f.name.split(".")[0] not in keep:
                    f.unlink(missing_ok=True)
                    removed += 1
        return removed

    def has(self, digest: str) -> bool:
        return os.path.exists(f"{self.root}/{digest[:2]}/{digest}.pickle")

    def digests(self) -> set[str]:
        """Every digest held, from the folder listings: 256 listings instead of a stat per record
        (100,000 of them a night, each a wait on the disk once the page cache has let them go)."""
        found: set[str] = set()
        if not self.root.is_dir():
            return found
        for folder in os.scandir(self.root):
            if folder.is_dir():
                found.update(n[:-7] for n in os.listdir(folder.path) if n.endswith(".pickle"))
        return found


# --- many files, in parallel, through the cache -------------------------------------------------

Outcome = tuple[Entry | None, list[Problem]]  # the entry names the file it was last read from


Signature = tuple[int, int, int, int, int]  # size, mtime, ctime (ns), inode, device


@dataclass
class _Job:
    data_dir: Path
    store: RecordStore
    known: frozenset[str]
    max_bytes: int
    seen: dict[str, tuple[Signature, str]]  # file -> its stat signature and digest last time
    started_ns: int


# A file changed within this long before the run may change again within the file system's clock
# tick without a new signature (git's "racily clean" entries): its signature is not remembered.
_RACY_NS = 2_000_000_000


_JOB: _Job | None = None  # set before the pool forks, read by the workers


Done = tuple[str, str | None, Outcome | None, Signature | None]


def _work(batch: list[str]) -> list[Done]:
    """For each file: (file, digest, outcome, signature); outcome None when the cache already has it.
    A file whose stat signature (size, times, inode) is the one it had last run is not read again
    (rsync's and git's quick check); the others are read and hashed, and parsed when new."""
    job = _JOB
    assert job is not None
    out: list[Done] = []
    for rel in batch:
        path = job.data_dir / rel
        st = path.stat()
        if st.st_size > job.max_bytes:
            too_big = Problem(
                "", None, "", f"文件过大（{st.st_size:,} 字节，上限 {job.max_bytes:,}；见 site.yaml max_file_bytes）"
            )
            out.append((rel, None, (None, [too_big]), None))
            continue
        sig = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
        if job.started_ns - max(st.st_mtime_ns, st.st_ctime_ns) < _RACY_NS:
            sig = None
        last = job.seen.get(rel)
        if sig is not None and last is not None and last[0] == sig and last[1] in job.known:
            out.append((rel, last[1], None, sig))
            continue
        raw = path.read_bytes()
        digest = hashlib.blake2b(raw, digest_size=16, person=FINGERPRINT.encode()[:16]).hexdigest()
        if digest in job.known:
            out.append((rel, digest, None, sig))
            continue
        record, problems = read_model(raw, EnterpriseFile)
        entry = None
        if record is not None:
            view = public_view(record)
            entry = entry_of(record, "", digest, view)
            job.store.put(digest, view, set(entry.secrets))
        out.append((rel, digest, (entry, problems), sig))
    return out


def _batches(items: list[str], workers: int) -> list[list[str]]:
    size = max(20, min(500, len(items) // (workers * 8) or 1))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _run(batches: list[list[str]], workers: int, meanwhile: Callable[[], None] | None) -> Iterator[list[Done]]:
    if workers <= 1 or len(batches) <= 1:
        if meanwhile:
            meanwhile()
        yield from map(_work, batches)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.imap(_work, batches)
        if meanwhile:  # after the fork: the workers hold no copy of what it reads
            meanwhile()
        yield from results


def _config(path: Path, model: type[M]) -> M:
    name = path.name
    if not path.is_file():
        raise ConfigInvalid([Problem(name, None, "", "文件不存在")])
    record, problems = read_model(path.read_bytes(), model)
    if record is None:
        raise ConfigInvalid([p.at(name) for p in problems])
    return record


def site_settings(data_dir: Path) -> Site:
    """data/site.yaml, validated."""
    return _config(data_dir / "site.yaml", Site)


def _index_path(cache_dir: Path) -> Path:
    return cache_dir / f"index-{FINGERPRINT}.pickle"


def load(
    data_dir: Path,
    cache_dir: Path,
    workers: int | None = None,
    progress: Progress | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> Loaded:
    """Read, validate and cross-check every export under `data_dir`. `meanwhile` is run once, by
    this process while the workers read the files (it would only wait for them)."""
    global _JOB
    site = _config(data_dir / "site.yaml", Site)
    regions = _config(data_dir / "regions.yaml", Regions)
    problems: list[Problem] = []
    folder = data_dir / "enterprises"
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    files = [f"enterprises/{n}" for n in names if n.endswith(".yaml")]
    problems += [
        Problem(f"enterprises/{n}", None, "", "已忽略：不是 .yaml 文件", "warning")
        for n in names
        if not n.endswith(".yaml")
    ]
    if not files:
        problems.append(Problem("enterprises/", None, "", "没有找到任何 .yaml 导出文件"))

    cache_dir.mkdir(parents=True, exist_ok=True)
    store = RecordStore(cache_dir)
    index, seen = _read_index(cache_dir)
    heap.keep()  # last run's outcomes, kept all run: not walked by collections, shared by the workers
    held = store.digests()
    known = frozenset(d for d in index if index[d][0] is None or d in held)
    _JOB = _Job(data_dir, store, known, site.max_file_bytes, seen, time.time_ns())
    workers = workers or os.cpu_count() or 1
    done, parsed = 0, 0
    fresh: dict[str, Outcome] = {}
    signatures: dict[str, tuple[Signature, str]] = {}
    entries: list[Entry] = []
    try:
        for batch in _run(_batches(files, workers), workers, meanwhile):
            for rel, digest, outcome, sig in batch:
                if sig is not None and digest is not None:
                    signatures[rel] = (sig, digest)
                if outcome is None:
                    assert digest is not None
                    outcome = index[digest]
                else:
                    parsed += 1
                entry, found = outcome
                problems += [p.at(rel) for p in found]
                if entry is not None:
                    if entry.file != rel:  # the same bytes may move (a new entry has no file yet)
                        entry = replace(entry, file=rel)
                    entries.append(entry)
                if digest:
                    fresh[digest] = (entry, found)
            done += len(batch)
            if progress:
                progress(done, len(files))
    finally:
        _JOB = None
    _write_index(cache_dir, fresh, signatures)  # stale views are pruned after the build (it may still show them)
    entries, cross = cross_checks(entries, site, regions, data_dir)
    problems += cross
    return Loaded(site, regions, entries, sorted(problems), len(files), store, parsed)


def _read_index(cache_dir: Path) -> tuple[dict[str, Outcome], dict[str, tuple[Signature, str]]]:
    """digest -> outcome, and file -> (stat signature, digest), from the last run."""
    try:
        index, seen = pickle.loads(_index_path(cache_dir).read_bytes())
        return index, seen
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError):
        return {}, {}


def _write_index(cache_dir: Path, index: dict[str, Outcome], seen: dict[str, tuple[Signature, str]]) -> None:
    path = _index_path(cache_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps((index, seen), protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(path)


# --- rules across files ------------------------------------------------------------------------


def cross_checks(
    entries: list[Entry], site: Site, regions: Regions, data_dir: Path
) -> tuple[list[Entry], list[Problem]]:
    """Duplicate permit numbers, unknown regions, unknown credit levels: the offenders are rejected."""
    problems: list[Problem] = []
    by_permit: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_permit[e.permit_no].append(e)
    known = {c.code for c in regions.cities} | {k.code for c in regions.cities for k in c.counties}
    cities = {c.code for c in regions.cities}
    levels = {c.level for c in site.credit_scale}
    bad: set[str] = set()
    for e in entries:
        found: list[tuple[tuple[str, ...], str]] = []
        twins = [t.file for t in by_permit[e.permit_no] if t is not e]
        if twins:
            found.append((("permit_no",), f"许可证编号与 {', '.join(twins)} 重复，均未发布"))
        if e.region not in known or city_code(e.region) not in cities:
            found.append((("enterprise", "region"), f"行政区划代码 {e.region} 不在 regions.yaml 中"))
        if e.credit_level is not None and e.credit_level not in levels:
            allowed = "、".join(c.level for c in site.credit_scale)
            found.append(
                (("credit", "level"), f"信用等级“{e.credit_level}”不在 site.yaml 的 credit_scale（{allowed}）中")
            )
        if found:
            bad.add(e.file)
            problems += _located(data_dir, e.file, found)
    good = sorted((e for e in entries if e.file not in bad), key=lambda e: e.permit_no)
    return good, problems


def _located(data_dir: Path, file: str, found: list[tuple[tuple[str, ...], str]]) -> list[Problem]:
    """Problems found after parsing: read the file once more to say on which line."""
    text, _ = yamlread.decode((data_dir / file).read_bytes())
    tree = yamlread.compose(text)
    return [Problem(file, yamlread.line_at(tree, loc), explain.field_path(loc), msg) for loc, msg in found]


def iter_views(loaded: Loaded, entries: Iterable[Entry] | None = None) -> Iterator[tuple[Entry, dict[str, Any]]]:
    """Each good record's public view, in permit-number order, one at a time."""
    for e in entries if entries is not None else loaded.entries:
        yield e, loaded.store.get(e.digest)
