"""Validation errors in words an operator understands, with the field path and the line."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from .errors import Problem
from .yamlread import Node, line_at

Loc = tuple[str | int, ...]

# What a code must look like, by the field's name: said when a pattern does not match.
FORMAT_HINTS = {
    "permit_no": "应为 18 位统一社会信用代码 + 3 位数字 + 1 位字母，如 91450600MA5K3XY21D001P",
    "uscc": "应为 18 位统一社会信用代码（数字与大写字母，不含 I、O、S、V、Z）",
    "code": "编号格式不符（排放口 DA001/DW001，固废设施两字母加三位数，污染物 a21026/w01018）",
    "outlet": "排放口编号应为 DA 或 DW 加 3 位数字，如 DA001",
    "region": '应为 6 位行政区划代码并加引号，如 "450602"',
    "pollutant": "应为 HJ 212 污染物代码，如 a21026、w01018",
    "flags": "每个字符应为 HJ 212 数据标记 N F M S D C T B 之一",
}


def field_path(loc: Loc) -> str:
    """('permit', 'outlets', 2, 'code') → 'permit.outlets[2].code'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"“{value}”"
    return text if len(text) <= 60 else text[:57] + "…"


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that the mapping at `loc` is validated as (for suggesting field names)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = _unwrap(model.model_fields[part].annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """list[X] / X | None → X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin in (list, typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        elif origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def message(err: ErrorDetails, root: type[BaseModel]) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    loc = tuple(err["loc"])
    last = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "missing":
        return "缺少必填字段"
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        close = difflib.get_close_matches(str(last), list(model.model_fields), n=1) if model else []
        return "未知字段（拼写错误？）" + (f"：是否应为“{close[0]}”？" if close else "")
    if kind == "string_pattern_mismatch":
        escape = isinstance(value, str) and ("/" in value or "\\" in value or ".." in value)
        hint = FORMAT_HINTS.get(str(last), "格式不符")
        return f"{hint}；实际为 {_show(value)}" + ("（含路径字符，不能用作地址）" if escape else "")
    if kind == "literal_error":
        return f"只能取 {ctx.get('expected')}；实际为 {_show(value)}"
    if kind.startswith("date_"):
        return f"应为日期 YYYY-MM-DD；实际为 {_show(value)}"
    if kind == "string_type":
        return f"应为文本；实际为 {_show(value)}（数字样的代码请加引号）"
    if kind.startswith(("int_", "float_")):
        return f"应为数字；实际为 {_show(value)}"
    if kind.startswith("bool_"):
        return f"应为 true 或 false；实际为 {_show(value)}"
    if kind == "list_type":
        return f"应为列表；实际为 {_show(value)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"应为映射（键: 值）；实际为 {_show(value)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), "")
        words = {"greater_than_equal": "不能小于", "greater_than": "应大于", "less_than_equal": "不能大于"}
        return f"{words.get(kind, '应小于')} {bound}；实际为 {_show(value)}"
    if kind == "string_too_short":
        return "不能为空"
    if kind == "string_too_long":
        return f"过长（最多 {ctx.get('max_length')} 个字符）"
    if kind == "too_short":
        return f"至少需要 {ctx.get('min_length')} 项"
    if kind == "value_error":
        return err["msg"].removeprefix("Value error, ")
    return err["msg"]


def problems(errors: list[ErrorDetails], root: type[BaseModel], tree: Node | None) -> list[Problem]:
    """One problem per mistake: a misspelt required key is reported once, as the typo."""
    missing = {tuple(e["loc"]) for e in errors if e["type"] == "missing"}
    typos: set[tuple[str | int, ...]] = set()
    for e in errors:
        loc = tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            siblings = [m[-1] for m in missing if m[:-1] == loc[:-1]]
            typos |= {(*loc[:-1], c) for c in difflib.get_close_matches(str(loc[-1]), [str(x) for x in siblings], n=1)}
    return [
        Problem("", line_at(tree, tuple(e["loc"])), field_path(tuple(e["loc"])), message(e, root))
        for e in errors
        if tuple(e["loc"]) not in typos
    ]
