"""The exporter docs and JSON Schemas come from the model, and agree with the loader."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from yimatong.docs import SCHEMAS, export_format_markdown, json_schema_files
from yimatong.load import read_model
from yimatong.pages import CONTENT
from yimatong.schema import EnterpriseFile

from .conftest import CORPUS, SAMPLE


def test_committed_export_format_page_matches_the_model() -> None:
    committed = (CONTENT / "export-format.md").read_text(encoding="utf-8")
    assert committed == export_format_markdown(), "run: python build.py docs"


def test_every_field_of_the_model_is_documented() -> None:
    text = export_format_markdown()
    for model in SCHEMAS.values():
        for name, info in model.model_fields.items():
            assert f"| `{name}` |" in text
            assert info.description, f"{model.__name__}.{name} has no description"


def _json_ready(value: Any) -> Any:
    """YAML as an exporter's JSON Schema validator sees it: dates as ISO strings."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value.isoformat() if isinstance(value, dt.date) else value


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(json_schema_files("https://x.example/")["enterprise-file-v1.json"])
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _files() -> list[Path]:
    return [*sorted((SAMPLE / "enterprises").glob("*.yaml"))[:20], CORPUS / "enterprises" / "good_minimal.yaml"]


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_published_schema_accepts_what_the_loader_accepts(path: Path) -> None:
    raw = path.read_bytes()
    record, problems = read_model(raw, EnterpriseFile)
    assert record is not None, problems
    _validator().validate(_json_ready(yaml.load(raw, Loader=yaml.CSafeLoader)))


@pytest.mark.parametrize(
    "name",
    [
        "bad_type.yaml",
        "bad_missing.yaml",
        "bad_unknown_field.yaml",
        "bad_permit_no.yaml",
        "bad_outlet_code.yaml",
        "bad_path_escape.yaml",
        "bad_schema_version.yaml",
    ],
)
def test_published_schema_rejects_what_the_loader_rejects(name: str) -> None:
    raw = (CORPUS / "enterprises" / name).read_bytes()
    record, _ = read_model(raw, EnterpriseFile)
    assert record is None
    errors = list(_validator().iter_errors(_json_ready(yaml.load(raw, Loader=yaml.CSafeLoader))))
    assert errors
