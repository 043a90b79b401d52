"""Exporter documentation and JSON Schemas, generated from the one model in schema.py.

`content/export-format.md` is this module's output, committed so that it reads on GitHub too; a
test fails when it drifts from the model (`python build.py docs` rewrites it).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from . import schema as schema_module
from .schema import SCHEMA_VERSION, Block, EnterpriseFile, Regions, Site, Withholdable

SCHEMAS: dict[str, type[BaseModel]] = {
    f"enterprise-file-v{SCHEMA_VERSION}.json": EnterpriseFile,
    f"site-v{SCHEMA_VERSION}.json": Site,
    f"regions-v{SCHEMA_VERSION}.json": Regions,
}


def json_schema(model: type[BaseModel], base_url: str, name: str) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{base_url}schema/{name}", **schema}


def json_schema_files(base_url: str) -> dict[str, str]:
    """File name → JSON text, deterministic: the export schemas and the public one."""
    schemas = {name: json_schema(model, base_url, name) for name, model in SCHEMAS.items()}
    schemas[PUBLIC_SCHEMA] = public_json_schema(base_url)
    return {
        name: json.dumps(schema, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
        for name, schema in schemas.items()
    }


# --- the public JSON (P/<permit>/data.json) ----------------------------------------------------

PUBLIC_SCHEMA = f"public-enterprise-v{SCHEMA_VERSION}.json"
_META = ("title", "description", "examples")


def public_json_schema(base_url: str) -> dict[str, Any]:
    """The schema of what the site publishes, derived from the export schema by the same rules
    `public.public_view` applies to a record, so the two cannot drift apart: `confidential*` are
    dropped; a withholdable part says `withheld` (and lists `withheld_fields`); a field that may be
    withheld may be null; a part withheld whole keeps only its identifying fields and its source.
    Every key is always present in the view, so every property is required."""
    schema = EnterpriseFile.model_json_schema()
    models = {c.__name__: c for c in vars(schema_module).values() if isinstance(c, type) and issubclass(c, BaseModel)}
    defs = {name: _public_def(models[name], d) for name, d in schema.pop("$defs").items()}
    top = _public_def(EnterpriseFile, schema)
    top["properties"] |= {
        "url": {"type": "string", "format": "uri", "description": "本页的永久地址（与标识牌二维码指向一致）"},
        "as_of": {
            "type": "string",
            "format": "date",
            "description": "本单位数据的日期：各信息块抽取日期（source.extracted）中最晚的一个；数据不变，文件不变",
        },
    }
    top["required"] = list(top["properties"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base_url}schema/{PUBLIC_SCHEMA}",
        **top,
        "title": "PublicEnterprise",
        "description": "公开数据：一个持证（登记）单位页面上的全部内容（P/<许可证编号>/data.json），"
        "不含不予公开的内容。",
        "$defs": defs,
    }


def _public_def(cls: type[BaseModel], d: dict[str, Any]) -> dict[str, Any]:
    meta = {k: d[k] for k in _META if k in d}
    props = {
        k: {key: v for key, v in p.items() if key != "default"}  # the view writes every key: no defaults
        for k, p in d["properties"].items()
        if k not in ("confidential", "confidential_fields")
    }
    if not issubclass(cls, Withholdable):
        return {**meta, **_closed(props)}
    # What an exporter may list in confidential_fields (the model's own validator decides the same).
    hideable = [k for k in props if k not in cls.always_public and not cls.model_fields[k].is_required()]
    names: dict[str, Any] = {"enum": hideable} if hideable else {"maxItems": 0}
    shown = {
        "withheld": {"const": False, "description": "false：本块（本条）公开"},
        "withheld_fields": {
            "type": "array",
            "items": names,
            "uniqueItems": True,
            "description": "依法不予公开的字段名（这些字段的值为 null）",
        },
        **{k: _nullable(p) if k in hideable else p for k, p in props.items()},
    }
    if not cls.withholdable_whole:
        return {**meta, **_closed(shown)}
    kept = {"withheld": {"const": True, "description": "true：整体依法不予公开，只保留标识字段"}}
    if issubclass(cls, Block):
        kept["source"] = props["source"]
    kept |= {k: p for k, p in props.items() if k in cls.always_public}
    return {**meta, "oneOf": [_closed(shown), _closed(kept)]}


def _closed(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    if any(p.get("type") == "null" for p in prop.get("anyOf", [])):
        return prop
    meta = {k: prop[k] for k in _META if k in prop}
    inner = {k: v for k, v in prop.items() if k not in _META}
    return {**meta, "anyOf": [inner, {"type": "null"}]}


INTRO = f"""\
---
title: 导出格式说明（供数据导出程序开发者）
---
# 导出格式说明

本页由程序根据数据模型自动生成（`python build.py docs`），与校验规则永远一致。格式版本：{SCHEMA_VERSION}。

## 文件与目录

- `data/site.yaml`：网站信息（[Site](#site)）。
- `data/regions.yaml`：地级市与县（区），含各市生态环境局名称（[Regions](#regions)）。
- `data/enterprises/<许可证编号>.yaml`：每个持证（登记）单位一个文件（[EnterpriseFile](#enterprisefile)）。

## 通用规则

- **编码**：只接受 UTF-8。GBK/GB18030 文件会被拒绝并提示转换命令
  （`iconv -f GB18030 -t UTF-8`），因为猜测编码可能在法定公开的页面上发布乱码。文件开头的 UTF-8 BOM
  会被忽略并给出警告。
- **YAML**：不允许重复的键、锚点与别名（`&`、`*`）；单个文件不超过 `site.yaml` 的 `max_file_bytes`。
- **未知字段是错误**：拼错的字段名不会被悄悄忽略，检查结果会提示最接近的正确字段名。
- **日期**写作 `2026-03-15`（不加引号）；**数字样的代码**（行政区划代码、电话）须加引号，如 `"450602"`。
- **每个公开块**（`enterprise`、`permit`、`eia` …）都有 `source`：来源系统与抽取日期（《办法》第十条）。
  没有记录的块也要写出（`items: []`），页面会显示“暂无记录”。
- **不予公开**（《办法》第七条）：任何块或列表中的任何一条可写 `confidential: true`，整体不予公开，页面只显示
  “依法不予公开”；或用 `confidential_fields: [字段名]` 只隐去个别字段。身份信息与许可证本身不能整体隐去。
  自由文本中的身份证号与手机号在发布前会被自动遮盖，但请不要导出它们。
- **时间序列**：在线监测日均值用 `start` + `values` 流式列表 + `flags`（每个值一个 HJ 212 标记字符），
  一年的日数据一行即可读完；自行监测用 `dates` 与 `values` 两个等长列表。只有标记为 `N` 的值参与超标判定。
- **校验**：导出后运行 `python build.py check --data 目录`，或用本站发布的 JSON Schema
  （`/schema/enterprise-file-v{SCHEMA_VERSION}.json`）在发送前自行校验。
  JSON Schema 表达不了的跨字段规则（许可证编号前 18 位与信用代码一致、引用的排放口存在、
  行政区划与信用等级在 `site.yaml`/`regions.yaml` 中、许可证编号不重复）只由 `check` 检查。
- **标识符**：许可证编号（HJ 608-2017）、统一社会信用代码（GB 32100-2015）、排放口编号按格式严格校验；
  信用代码校验位不符只给出警告（确有此类真实编号）。
"""


def export_format_markdown() -> str:
    parts = [INTRO]
    for model in SCHEMAS.values():
        schema = model.model_json_schema()
        defs = schema.get("$defs", {})
        parts.append(_section(model.__name__, schema))
        for name in _order(schema, defs):
            parts.append(_section(name, defs[name]))
    return "\n".join(parts)


def _order(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    """Definitions in the order a reader meets them, depth first from the top."""
    seen: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref:
                name = ref.rsplit("/", 1)[1]
                if name not in seen:
                    seen.append(name)
                    visit(defs[name])
            for key, value in node.items():
                if key != "$defs":
                    visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema.get("properties", {}))
    return seen


def _section(name: str, schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    lines = [f"## {name}", ""]
    if schema.get("description"):
        lines += [" ".join(schema["description"].split()), ""]
    lines += ["| 字段 | 类型 | 必填 | 说明 | 示例 |", "|---|---|---|---|---|"]
    for field, prop in schema.get("properties", {}).items():
        example = prop.get("examples", [None])[0]
        shown = "" if example is None else f"`{json.dumps(example, ensure_ascii=False)}`"
        description = prop.get("description", "").replace("|", "\\|")
        lines.append(f"| `{field}` | {_type(prop)} | {'是' if field in required else '否'} | {description} | {shown} |")
    return "\n".join(lines) + "\n"


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        options = [p for p in prop["anyOf"] if p.get("type") != "null"]
        return " 或 ".join(_type(p) for p in options) + ("，可为 null" if len(options) < len(prop["anyOf"]) else "")
    if "const" in prop:
        return f"固定为 `{prop['const']}`"
    if "enum" in prop:
        return "取值 " + " / ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type")
    if kind == "array":
        return f"列表，每项为 {_type(prop.get('items', {}))}"
    if kind == "string" and prop.get("format") == "date":
        return "日期"
    if kind == "string" and "pattern" in prop:
        return f"文本，格式 `{prop['pattern']}`".replace("|", "\\|")
    names = {"string": "文本", "number": "数字", "integer": "整数", "boolean": "true/false", "null": "null"}
    bounds = [f"{w} {prop[k]}" for k, w in (("minimum", "≥"), ("maximum", "≤"), ("exclusiveMinimum", ">")) if k in prop]
    return names.get(str(kind), str(kind)) + (f"（{'，'.join(bounds)}）" if bounds else "")
