"""One exported file → a validated record, its problems, and the small `Entry` the build keeps.

Everything here decides what validation accepts or what the cache holds of a record, so its code is
part of the record cache's key (load.FINGERPRINT); the orchestration in load.py is not, so that
changing how files are read in parallel does not make every record new again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from . import explain, yamlread
from .errors import Problem
from .identifiers import uscc_check_ok
from .public import secrets
from .schema import SCHEMA_VERSION, EnterpriseFile

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Entry:
    """What the build keeps in memory for each good record."""

    file: str
    digest: str
    permit_no: str
    name: str
    uscc: str
    region: str
    category: str
    credit_level: str | None
    # The values its public view withholds (public.secrets), for the verifier to look for in the
    # output. Never written anywhere: the manifest leaves them out (pipeline._ENTRY).
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)


def read_model(raw: bytes, model: type[M]) -> tuple[M | None, list[Problem]]:
    """Bytes → a validated model, or the problems that stop it (file names left blank)."""
    try:
        text, had_bom = yamlread.decode(raw)
        data = yamlread.parse(text)
    except yamlread.YamlProblem as err:
        return None, [Problem("", err.line, "", err.message)]
    notes = [Problem("", 1, "", "文件以 UTF-8 BOM 开头，已忽略（建议导出时不写 BOM）", "warning")] if had_bom else []
    if not isinstance(data, dict):
        return None, [*notes, Problem("", 1, "", "文件内容应为“键: 值”映射，而不是空文件或列表")]
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        line = yamlread.line_at(yamlread.compose(text), ("schema_version",))
        return None, [
            *notes,
            Problem("", line, "schema_version", f"不支持的格式版本 {version!r}，本程序读取 {SCHEMA_VERSION}"),
        ]
    try:
        record = model.model_validate(data)
    except ValidationError as err:
        return None, [*notes, *explain.problems(err.errors(), model, yamlread.compose(text))]
    checks = record_checks(record) if isinstance(record, EnterpriseFile) else []
    if checks:
        tree = yamlread.compose(text)
        notes += [
            Problem("", yamlread.line_at(tree, loc), explain.field_path(loc), msg, sev) for loc, msg, sev in checks
        ]
    if any(p.severity == "error" for p in notes):
        return None, notes
    return record, notes


Check = tuple[tuple[str | int, ...], str, str]


def record_checks(rec: EnterpriseFile) -> list[Check]:
    """Rules across blocks of one file, which a JSON Schema cannot express."""
    out: list[Check] = []
    if not rec.permit_no.startswith(rec.enterprise.uscc):
        out.append((("permit_no",), f"前 18 位应与 enterprise.uscc（{rec.enterprise.uscc}）一致", "error"))
    if not uscc_check_ok(rec.enterprise.uscc):
        out.append((("enterprise", "uscc"), "统一社会信用代码校验位不符（仍予发布，请核实）", "warning"))
    outlets = {o.code for o in rec.permit.outlets}
    refs: list[tuple[tuple[str | int, ...], str]] = [
        *((("self_monitoring", "plan", i, "outlet"), p.outlet) for i, p in enumerate(rec.self_monitoring.plan)),
        *((("self_monitoring", "series", i, "outlet"), s.outlet) for i, s in enumerate(rec.self_monitoring.series)),
        *((("online_monitoring", "series", i, "outlet"), s.outlet) for i, s in enumerate(rec.online_monitoring.series)),
        *(
            (("online_monitoring", "warnings", i, "outlet"), w.outlet)
            for i, w in enumerate(rec.online_monitoring.warnings)
        ),
    ]
    out += [(loc, f"排放口 {code} 不在 permit.outlets 中", "error") for loc, code in refs if code not in outlets]
    for i, o in enumerate(rec.permit.outlets):
        prefix = {"air": "DA", "water": "DW"}.get(o.kind)
        if (prefix and not o.code.startswith(prefix)) or (not prefix and o.code[:2] in ("DA", "DW")):
            out.append(
                (
                    ("permit", "outlets", i, "code"),
                    f"编号 {o.code} 与类型 {o.kind} 不符（废气 DA、废水 DW、固废设施其他两字母）",
                    "error",
                )
            )
        for j, p in enumerate(o.pollutants):
            if p.limit is not None and p.limit_min is not None and p.limit_min > p.limit:
                out.append((("permit", "outlets", i, "pollutants", j, "limit_min"), "下限大于上限", "error"))
    letter = rec.permit_no[-1]
    if (rec.permit.kind == "permit") != (letter == "P"):
        out.append(
            (
                ("permit_no",),
                f"末位字母 {letter} 与 permit.kind（{rec.permit.kind}）不符：许可证通常为 P，登记为其他字母",
                "warning",
            )
        )
    if rec.enterprise.status == "deregistered" and rec.permit.status == "valid":
        out.append((("permit", "status"), "企业已注销，但许可证仍为有效", "warning"))
    for i, r in enumerate(rec.rectifications.items):
        if r.closed and r.closed < r.found:
            out.append((("rectifications", "items", i, "closed"), "销号日期早于发现日期", "error"))
    return out


def entry_of(record: EnterpriseFile, file: str, digest: str, view: dict[str, Any] | None = None) -> Entry:
    e = record.enterprise
    level = record.credit.level if record.credit else None
    hidden = tuple(sorted(secrets(record, view)))
    return Entry(file, digest, record.permit_no, e.name, e.uscc, e.region, record.permit.category, level, hidden)
