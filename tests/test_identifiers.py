import pytest

from yimatong import urls
from yimatong.identifiers import city_code, normalise_code, uscc_check_char, uscc_check_ok


@pytest.mark.parametrize(
    "uscc",
    ["91350100M000100Y43", "91130200699229617X", "91450600MA5K3XY21D"],  # GB 32100 example, DOMAIN example, ours
)
def test_valid_uscc_check_characters(uscc: str) -> None:
    assert uscc_check_char(uscc[:17]) == uscc[17]
    assert uscc_check_ok(uscc)


def test_wrong_check_character_and_bad_alphabet_are_not_ok() -> None:
    assert not uscc_check_ok("91350100M000100Y44")
    assert not uscc_check_ok("91350100M000100YZ3")  # Z is not in the alphabet
    assert not uscc_check_ok("9135")


def test_codes_as_people_paste_them() -> None:
    assert normalise_code(" 9145 0600-ma5k3xy21d 001p ") == "91450600MA5K3XY21D001P"
    assert city_code("450602") == "450600"


def test_permanent_addresses() -> None:
    assert urls.enterprise_path("91450600MA5K3XY21D001P") == "P/91450600MA5K3XY21D001P/"
    assert urls.outlet_path("91450600MA5K3XY21D001P", "DA001") == "P/91450600MA5K3XY21D001P/DA001/"
    assert urls.qr_url("https://ymt.example.gov.cn/", "P/91450600MA5K3XY21D001P/") == (
        "HTTPS://YMT.EXAMPLE.GOV.CN/P/91450600MA5K3XY21D001P/"
    )
    for bad in ("../etc", "91450600MA5K3XY21D001P/../x", ""):
        with pytest.raises(ValueError):
            urls.enterprise_path(bad)
    with pytest.raises(ValueError):
        urls.outlet_path("91450600MA5K3XY21D001P", "../DA001")
