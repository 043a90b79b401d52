"""The public view: withheld parts stay visible as withheld; personal data is masked."""

from __future__ import annotations

import json

import yaml

from yimatong.public import MASK, public_view, scrub
from yimatong.schema import EnterpriseFile

from .conftest import CORPUS

ID_NUMBER = "450602198807154312"  # made up, shaped like a resident ID number


def _record(**patch: object) -> EnterpriseFile:
    data = yaml.load(
        (CORPUS / "enterprises" / "good_minimal.yaml").read_text(encoding="utf-8"), Loader=yaml.CSafeLoader
    )
    for dotted, value in patch.items():
        *path, last = dotted.split("__")
        target = data
        for part in path:
            target = target[part]
        target[last] = value
    return EnterpriseFile.model_validate(data)


def test_scrub_masks_mobiles_and_id_numbers_but_not_codes_or_landlines() -> None:
    text = f"联系人手机 13877012345，+86 138 7701 2345，身份证 {ID_NUMBER}；电话 0770-2812345；文号 防环罚〔2025〕15号"
    out = scrub(text)
    assert "13877012345" not in out and "138 7701 2345" not in out and ID_NUMBER not in out
    assert out.count(MASK) == 3
    assert "0770-2812345" in out and "防环罚〔2025〕15号" in out
    assert scrub("许可证 91130200699229617X001P") == "许可证 91130200699229617X001P"


def test_confidential_block_item_and_field_are_withheld() -> None:
    secret = "机密接收单位"
    record = _record(
        hazardous_waste__confidential=True,
        hazardous_waste__items=[
            {
                "code": "HW08 900-249-08",
                "name": "废矿物油",
                "year": 2025,
                "generated_t": 1,
                "transferred_t": 1,
                "utilised_t": 0,
                "stored_t": 0,
                "receiver": secret,
            }
        ],
        penalties__items=[
            {
                "decision_no": "防环罚〔2025〕15号",
                "date": "2025-08-02",
                "authority": "防城港市生态环境局",
                "violation": "超标排放",
                "penalty": "罚款",
                "fine_yuan": 987654,
                "status": "completed",
                "confidential_fields": ["fine_yuan"],
            },
            {
                "decision_no": "防环罚〔2025〕16号",
                "date": "2025-09-02",
                "authority": "防城港市生态环境局",
                "violation": "秘密违法事实",
                "penalty": "罚款",
                "status": "completed",
                "confidential": True,
            },
        ],
    )
    view = public_view(record)
    text = json.dumps(view, ensure_ascii=False)
    assert secret not in text and "987654" not in text and "秘密违法事实" not in text
    assert view["hazardous_waste"] == {"withheld": True, "source": view["hazardous_waste"]["source"]}
    first, second = view["penalties"]["items"]
    assert first["withheld_fields"] == ["fine_yuan"] and first["fine_yuan"] is None and first["withheld"] is False
    assert second["withheld"] is True and second["decision_no"] == "防环罚〔2025〕16号"
    assert '"confidential' not in text


def test_personal_data_in_free_text_never_reaches_the_view() -> None:
    record = _record(
        rectifications__items=[
            {
                "id": "ZG-1",
                "found": "2026-05-12",
                "origin": "complaint",
                "status": "open",
                "problem": f"举报人王某（身份证 {ID_NUMBER}，手机 13877012345）反映夜间偷排",
            }
        ],
        enterprise__phone="13977012345",
    )
    text = json.dumps(public_view(record), ensure_ascii=False)
    assert ID_NUMBER not in text and "13877012345" not in text and "13977012345" not in text
    assert "夜间偷排" in text
    assert record.enterprise.uscc in text  # identifiers are not masked


def test_identity_and_permit_cannot_be_withheld_whole() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="不能整体标记"):
        _record(permit__confidential=True)
    with pytest.raises(ValidationError, match="必须公开"):
        _record(enterprise__confidential_fields=["name"])
    with pytest.raises(ValidationError, match="不是本块的字段"):
        _record(penalties__confidential_fields=["nonsense"])
    with pytest.raises(ValidationError, match="不能列入 confidential_fields"):
        _record(penalties__confidential_fields=["items"])


def test_nan_and_infinity_are_refused() -> None:
    import pytest
    from pydantic import ValidationError

    def outlets(limit: float) -> list[dict]:
        return [
            {
                "code": "DA001",
                "name": "x",
                "kind": "air",
                "pollutants": [{"code": "a21026", "name": "SO2", "limit": limit}],
            }
        ]

    assert _record(permit__outlets=outlets(35.0)).permit.outlets[0].pollutants[0].limit == 35.0
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValidationError, match="finite"):
            _record(permit__outlets=outlets(bad))
