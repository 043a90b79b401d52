"""Synthetic export data at any scale: the committed sample and the benchmark corpus.

`generate(n, seed, out)` writes `site.yaml`, `regions.yaml` and n enterprise files that validate
against `yimatong.schema`. Enterprise i depends only on (seed, i, as_of): the 60-file sample is the
start of every larger run, and the edge cases that tests and pages rely on sit at fixed low indices
(`FIXED`), so every run with n >= 60 holds all of them.

The enterprises, trade names and numbers are invented; the regions, industry codes, pollutant
codes, standards and source systems are real, so that pages and signs look like the real thing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from random import Random
from typing import Any

import yaml

from .identifiers import USCC_ALPHABET, uscc_check_char

Doc = dict[str, Any]  # a YAML-bound document, keys in schema order

SAMPLE_N = 60
SAMPLE_SEED = 2026
DEFAULT_AS_OF = dt.date(2026, 11, 20)
KEY, SIMPLE, REG = "重点管理", "简化管理", "登记管理"
CATEGORIES = (KEY, SIMPLE, REG)
CATEGORY_WEIGHTS = (25, 35, 40)

# Source systems named in seed 000, Art. 8 (each block names where it comes from, Art. 10).
SRC_PERMIT = "全国排污许可证管理信息平台"
SRC_EIA = "全国建设项目环评统一审批系统"
SRC_LICENSE = "广西环保审批信息系统"
SRC_SELF = "全国排污单位自行监测信息公开平台"
SRC_ONLINE = "广西固定污染源自动监控平台"
SRC_ONLINE_WTE = "全国生活垃圾焚烧发电厂自动监测数据公开平台"
SRC_INSPECTION = "广西环境监管移动执法系统"
SRC_PENALTY = "广西环境违法案件查处系统"
SRC_CREDIT = "广西企业生态环境信用评价系统"
SRC_TOTAL = "广西固定污染源管理系统"
SRC_WASTE = "全国固体废物管理信息系统"
SRC_RECTIFICATION = "广西“生态云”平台"
PROVINCE_DEPT = "广西壮族自治区生态环境厅"

# Planted values that tests look for in the output: they must never be published.
PLANTED_MOBILE = "13877012345"
PLANTED_FINE = 386400.0
SECRET_MARK = "机密"


# --- regions (GB/T 2260) ---------------------------------------------------------------------


@dataclass(frozen=True)
class City:
    code: str
    name: str
    doc: str  # abbreviation in document numbers: 防 in 防环罚〔2025〕15号
    area: str  # telephone area code
    lon: float
    lat: float
    river: str
    weight: int  # relative share of permit holders
    counties: tuple[tuple[str, str], ...]

    @property
    def short(self) -> str:
        return self.name.removesuffix("市")

    @property
    def bureau(self) -> str:
        return f"{self.name}生态环境局"


# code name doc area lon lat river weight | county code, county name ...
_CITY_ROWS = """
450100 南宁市 邕 0771 108.37 22.82 邕江 14 | 450102 兴宁区 450103 青秀区 450105 江南区 450107 西乡塘区
  450108 良庆区 450109 邕宁区 450110 武鸣区 450123 隆安县 450124 马山县 450125 上林县 450126 宾阳县 450181 横州市
450200 柳州市 柳 0772 109.42 24.33 柳江 12 | 450202 城中区 450203 鱼峰区 450204 柳南区 450205 柳北区
  450206 柳江区 450222 柳城县 450223 鹿寨县 450224 融安县 450225 融水苗族自治县 450226 三江侗族自治县
450300 桂林市 桂林 0773 110.29 25.27 漓江 9 | 450302 秀峰区 450303 叠彩区 450304 象山区 450305 七星区
  450311 雁山区 450312 临桂区 450321 阳朔县 450323 灵川县 450324 全州县 450325 兴安县 450326 永福县
  450327 灌阳县 450328 龙胜各族自治县 450329 资源县 450330 平乐县 450332 恭城瑶族自治县 450381 荔浦市
450400 梧州市 梧 0774 111.28 23.48 西江 6 | 450403 万秀区 450405 长洲区 450406 龙圩区 450421 苍梧县
  450422 藤县 450423 蒙山县 450481 岑溪市
450500 北海市 北 0779 109.12 21.48 南流江 6 | 450502 海城区 450503 银海区 450512 铁山港区 450521 合浦县
450600 防城港市 防 0770 108.35 21.69 防城江 5 | 450602 港口区 450603 防城区 450621 上思县 450681 东兴市
450700 钦州市 钦 0777 108.65 21.98 钦江 7 | 450702 钦南区 450703 钦北区 450721 灵山县 450722 浦北县
450800 贵港市 贵 0775 109.60 23.11 郁江 7 | 450802 港北区 450803 港南区 450804 覃塘区 450821 平南县
  450881 桂平市
450900 玉林市 玉 0775 110.18 22.65 南流江 9 | 450902 玉州区 450903 福绵区 450921 容县 450922 陆川县
  450923 博白县 450924 兴业县 450981 北流市
451000 百色市 百 0776 106.62 23.90 右江 7 | 451002 右江区 451003 田阳区 451022 田东县 451024 德保县
  451026 那坡县 451027 凌云县 451028 乐业县 451029 田林县 451030 西林县 451031 隆林各族自治县
  451081 靖西市 451082 平果市
451100 贺州市 贺 0774 111.57 24.40 贺江 4 | 451102 八步区 451103 平桂区 451121 昭平县 451122 钟山县
  451123 富川瑶族自治县
451200 河池市 河 0778 108.09 24.69 龙江 5 | 451202 金城江区 451203 宜州区 451221 南丹县 451222 天峨县
  451223 凤山县 451224 东兰县 451225 罗城仫佬族自治县 451226 环江毛南族自治县 451227 巴马瑶族自治县
  451228 都安瑶族自治县 451229 大化瑶族自治县
451300 来宾市 来 0772 109.22 23.75 红水河 5 | 451302 兴宾区 451321 忻城县 451322 象州县 451323 武宣县
  451324 金秀瑶族自治县 451381 合山市
451400 崇左市 崇 0771 107.36 22.38 左江 5 | 451402 江州区 451421 扶绥县 451422 宁明县 451423 龙州县
  451424 大新县 451425 天等县 451481 凭祥市
"""


def _parse_cities(rows: str) -> tuple[City, ...]:
    cities = []
    for record in rows.replace("\n  ", " ").strip().splitlines():
        head, tail = record.split(" | ")
        code, name, doc, area, lon, lat, river, weight = head.split()
        words = tail.split()
        counties = tuple(zip(words[::2], words[1::2], strict=True))
        cities.append(City(code, name, doc, area, float(lon), float(lat), river, int(weight), counties))
    return tuple(cities)


CITIES = _parse_cities(_CITY_ROWS)
CITY_BY_NAME = {c.short: c for c in CITIES}


def county_short(name: str) -> str:
    """横州市 → 横州, 融水苗族自治县 → 融水; one-character names keep their suffix (藤县)."""
    if name.endswith("自治县"):
        return name[:2]
    stem = name[:-1]
    return stem if len(stem) > 1 else name


# --- pollutants and standards (HJ 212-2017 codes) ----------------------------------------------

POLLUTANTS: dict[str, tuple[str, str]] = {
    "a21026": ("二氧化硫", "mg/m³"),
    "a21002": ("氮氧化物", "mg/m³"),
    "a34013": ("颗粒物", "mg/m³"),
    "a24088": ("非甲烷总烃", "mg/m³"),
    "a21001": ("氨", "mg/m³"),
    "a21024": ("氯化氢", "mg/m³"),
    "a21022": ("氟化物", "mg/m³"),
    "a20057": ("汞及其化合物", "mg/m³"),
    "w00000": ("废水流量", "m³/d"),
    "w01001": ("pH值", "无量纲"),
    "w01018": ("化学需氧量", "mg/L"),
    "w21003": ("氨氮", "mg/L"),
    "w21011": ("总磷", "mg/L"),
    "w21001": ("总氮", "mg/L"),
    "w01012": ("悬浮物", "mg/L"),
    "w01017": ("五日生化需氧量", "mg/L"),
    "w01002": ("色度", "倍"),
    "w22001": ("石油类", "mg/L"),
    "w22002": ("动植物油", "mg/L"),
    "w20116": ("总铬", "mg/L"),
    "w20117": ("六价铬", "mg/L"),
    "w20121": ("总镍", "mg/L"),
    "w20122": ("总铜", "mg/L"),
    "w20123": ("总锌", "mg/L"),
    "w20120": ("总铅", "mg/L"),
    "w20115": ("总镉", "mg/L"),
    "w20119": ("总砷", "mg/L"),
    "w02003": ("粪大肠菌群数", "MPN/L"),
}
PH, FLOW = "w01001", "w00000"
# Pollutants with automatic analysers on main outlets (HJ 75 / HJ 353 practice).
ONLINE_CODES = frozenset({"a34013", "a21026", "a21002", "a24088", "w01018", "w21003", "w21011", "w21001", PH})
# Pollutants for which a 重点管理 permit sets annual tonnes (and 两高 totals are reported).
ANNUAL_CODES = {"a21026": 0.7, "a21002": 1.0, "a34013": 0.2, "a24088": 0.3, "w01018": 1.0, "w21003": 0.1}


@dataclass(frozen=True)
class Standard:
    """An emission standard and the permitted concentrations it sets (pH is always 6–9)."""

    name: str
    limits: tuple[tuple[str, float | None], ...]


def _std(name: str, **limits: float | None) -> Standard:
    return Standard(name, tuple(limits.items()))


BOILER = _std("GB 13271-2014", a34013=30, a21026=200, a21002=200)
GAS_BOILER = _std("GB 13271-2014", a34013=20, a21026=50, a21002=200)
COAL_POWER = _std("GB 13223-2011", a34013=10, a21026=35, a21002=50, a20057=0.03)
CEMENT_KILN = _std("GB 4915-2013", a34013=20, a21026=100, a21002=320, a21001=8, a21022=3, a20057=0.05)
CEMENT_HEAD = _std("GB 4915-2013", a34013=20)
CEMENT_DUST = _std("GB 4915-2013", a34013=10)
REF_HEATER = _std("GB 31570-2015", a34013=20, a21026=50, a21002=100)
REF_FCC = _std("GB 31570-2015", a34013=30, a21026=50, a21002=100)
REF_SULFUR = _std("GB 31570-2015", a21026=100)
REF_VOC = _std("GB 31570-2015", a24088=120)
SINTER = _std("GB 28662-2012", a34013=10, a21026=35, a21002=50)
STEELMAKING = _std("GB 28664-2012", a34013=10)
IRONMAKING = _std("GB 28663-2012", a34013=10)
LEADZINC_AIR = _std("GB 25466-2010", a34013=10, a21026=100)
LEADZINC_DUST = _std("GB 25466-2010", a34013=10)
ALU_AIR = _std("GB 25465-2010", a34013=10, a21026=100, a21022=3)
TIN_AIR = _std("GB 30770-2014", a34013=10, a21026=100)
FERRO_AIR = _std("GB 28666-2012", a34013=30)
SULFURIC_AIR = _std("GB 26132-2010", a21026=200)
UREA_AIR = _std("GB 13458-2013", a34013=30, a21001=30)
PROCESS_VOC = _std("GB 16297-1996", a24088=120)
PROCESS_DUST = _std("GB 16297-1996", a34013=120)
PROCESS_HCL = _std("GB 16297-1996", a24088=120, a21024=100)
PHARMA_AIR = _std("GB 37823-2019", a24088=100)
WTE_AIR = _std("GB 18485-2014", a34013=20, a21026=80, a21002=250, a21024=50, a20057=0.05)
HWI_AIR = _std("GB 18484-2020", a34013=20, a21026=80, a21002=250, a21024=50)
PLATING_AIR = _std("GB 21900-2008", a21024=30)
BRICK_AIR = _std("GB 29620-2013", a34013=30, a21026=300, a21002=200, a21022=3)
GB8978_1 = _std("GB 8978-1996", w01001=9, w01018=100, w21003=15, w01012=70, w22001=5)
GB8978_3 = _std("GB 8978-1996", w01001=9, w01018=500, w01017=300, w01012=400, w22001=20)
OIL_W = _std("GB 8978-1996", w01001=9, w01018=500, w01012=400, w22002=100)
SUGAR_W = _std("GB 21909-2008", w01001=9, w01018=100, w01017=20, w01012=70, w21003=10, w21001=15, w21011=0.5)
REF_W = _std("GB 31570-2015", w01001=9, w01018=50, w21003=5, w21001=30, w21011=0.5, w22001=3, w01012=50)
PAPER_W = _std("GB 3544-2008", w01001=9, w01018=80, w01017=20, w01012=30, w01002=50, w21003=8, w21001=12, w21011=0.8)
STEEL_W = _std("GB 13456-2012", w01001=9, w01018=50, w21003=5, w21001=15, w21011=0.5, w01012=30, w22001=3)
LEADZINC_W = _std(
    "GB 25466-2010", w01001=9, w01018=60, w21003=8, w21011=1, w20123=1.5, w20120=0.5, w20115=0.05, w20119=0.3
)
ALU_W = _std("GB 25465-2010", w01001=9, w01018=60, w21003=8, w01012=30, w22001=3)
TIN_W = _std("GB 30770-2014", w01001=9, w01018=60, w21003=8, w20120=0.5, w20119=0.3, w20115=0.05)
INORGANIC_W = _std("GB 31573-2015", w01001=9, w01018=50, w21003=10, w21001=20, w21011=0.5, w01012=50)
NH3_W = _std("GB 13458-2013", w01001=9, w01018=80, w21003=25, w21001=35, w21011=0.5, w01012=50)
ORGANIC_W = _std("GB 31571-2015", w01001=9, w01018=60, w21003=8, w21001=40, w21011=1, w01012=70)
PHARMA_W = _std("GB 21904-2008", w01001=9, w01018=120, w01017=25, w01012=50, w21003=25, w21001=35, w21011=1)
SEWAGE_W = _std("GB 18918-2002", w01001=9, w01018=50, w01017=10, w01012=10, w21003=5, w21001=15, w21011=0.5)
LEACHATE_W = _std("GB 16889-2008", w01001=9, w01018=100, w21003=25, w21001=40, w21011=3)
LIVESTOCK_W = _std("GB 18596-2001", w01018=400, w21003=80, w21011=8, w01017=150, w01012=200)
HOSPITAL_W = _std("GB 18466-2005", w01001=9, w01018=250, w01017=100, w01012=60, w02003=5000)
PLATING_W = _std(
    "GB 21900-2008",
    w01001=9,
    w01018=80,
    w21003=15,
    w21001=20,
    w21011=1,
    w20116=1,
    w20117=0.2,
    w20121=0.5,
    w20122=0.5,
    w20123=1.5,
)
DYE_W = _std("GB 4287-2012", w01001=9, w01018=80, w01017=20, w01012=50, w01002=50, w21003=10, w21001=15, w21011=0.5)
STARCH_W = _std("GB 25461-2010", w01001=9, w01018=100, w01017=20, w01012=30, w21003=15, w21001=30, w21011=1)
ALCOHOL_W = _std("GB 27631-2011", w01001=9, w01018=100, w01017=30, w01012=50, w21003=10, w21001=20, w21011=1)
SLAUGHTER_W = _std("GB 13457-1992", w01001=9, w01018=80, w01017=30, w01012=60, w21003=15, w22002=15)
RAIN = _std("", w01018=None)


@dataclass(frozen=True)
class OutletTemplate:
    kind: str  # air | water
    name: str  # "{n}#" is replaced by the unit number
    type: str  # main | general
    standard: Standard
    count: tuple[int, int] = (1, 1)
    height: tuple[int, int] = (15, 30)


def _air(
    name: str, type_: str, standard: Standard, count: tuple[int, int] = (1, 1), height: tuple[int, int] = (15, 30)
) -> OutletTemplate:
    return OutletTemplate("air", name, type_, standard, count, height)


def _water(name: str, type_: str, standard: Standard) -> OutletTemplate:
    return OutletTemplate("water", name, type_, standard)


# --- hazardous waste (国家危险废物名录 2021) -------------------------------------------------------

WASTES: dict[str, tuple[str, str]] = {
    "oil": ("HW08 900-249-08", "废矿物油"),
    "engine_oil": ("HW08 900-214-08", "废机油"),
    "oily_sludge": ("HW08 900-210-08", "含油污泥"),
    "packaging": ("HW49 900-041-49", "废包装桶、废含油抹布及手套"),
    "carbon": ("HW49 900-039-49", "废活性炭"),
    "lab": ("HW49 900-047-49", "实验室废液"),
    "scr": ("HW50 772-007-50", "废脱硝催化剂"),
    "fcc": ("HW50 251-017-50", "废催化剂"),
    "acid_tar": ("HW11 251-013-11", "酸焦油"),
    "plating_sludge": ("HW17 336-064-17", "电镀污泥"),
    "paint": ("HW12 900-252-12", "废漆渣"),
    "infectious": ("HW01 841-001-01", "感染性废物"),
    "sharps": ("HW01 841-002-01", "损伤性废物"),
    "fly_ash": ("HW18 772-002-18", "焚烧飞灰"),
    "smelt": ("HW48", "有色金属冶炼废渣"),
    "acid": ("HW34 900-300-34", "废酸"),
    "pharma": ("HW02 271-001-02", "蒸馏及反应残余物"),
    "pesticide": ("HW04", "农药生产废物"),
}


# --- industries (GB/T 4754-2017) ---------------------------------------------------------------


@dataclass(frozen=True)
class Industry:
    code: str
    name: str
    words: tuple[str, ...]  # what the trade part of a name says: 糖业, 发电 …
    weights: tuple[int, int, int]  # relative frequency among 重点, 简化, 登记
    outlets: tuple[OutletTemplate, ...] = ()
    projects: tuple[str, ...] = ()
    waste: tuple[str, ...] = ("oil", "packaging")
    cities: tuple[str, ...] = ()  # where this industry clusters
    scale: float = 20  # typical annual tonnes of the main pollutant
    two_high: bool = False  # "两高": total emissions are disclosed
    seasonal: bool = False  # runs in the cane/cassava season only (Nov–Apr)
    naming: str = "company"
    radiation: bool = False  # nuclear gauges or medical devices: 辐射安全许可证


# fmt: off
_BOILER_OUT = _air("{n}#锅炉废气排放口", "main", BOILER, (1, 2), (35, 60))
_WATER_MAIN = _water("废水总排放口", "main", GB8978_1)

INDUSTRIES: tuple[Industry, ...] = (
    Industry(
        "C1340", "制糖业", ("糖业", "制糖", "糖业集团"), (10, 6, 0),
        outlets=(_air("{n}#蔗渣锅炉烟气排放口", "main", BOILER, (1, 2), (45, 80)),
                 _water("废水总排放口", "main", SUGAR_W)),
        projects=("日榨甘蔗1万吨技术改造项目", "日榨甘蔗6000吨生产线扩建项目", "糖厂锅炉烟气超低排放改造项目"),
        waste=("oil", "packaging", "lab"), cities=("崇左", "来宾", "南宁", "柳州", "百色", "防城港"),
        scale=40, seasonal=True,
    ),
    Industry(
        "D4411", "火力发电", ("发电", "电力", "电厂", "能源"), (5, 0, 0),
        outlets=(_air("{n}#机组锅炉烟气排放口", "main", COAL_POWER, (1, 2), (180, 240)),
                 _water("废水总排放口", "general", GB8978_1)),
        projects=("2×660MW超超临界燃煤发电机组工程", "2×1000MW燃煤发电机组扩建工程", "燃煤机组超低排放改造工程"),
        waste=("scr", "oil", "packaging"), cities=("北海", "钦州", "防城港", "贵港", "来宾", "百色"),
        scale=800, two_high=True, radiation=True,
    ),
    Industry(
        "D4412", "热电联产", ("热电", "能源", "热力"), (3, 1, 0),
        outlets=(_air("{n}#锅炉烟气排放口", "main", COAL_POWER, (1, 3), (80, 120)),
                 _water("废水总排放口", "general", GB8978_1)),
        projects=("园区热电联产项目", "热电联产机组扩建工程"),
        waste=("scr", "oil", "packaging"), scale=200, two_high=True,
    ),
    Industry(
        "C3011", "水泥制造", ("水泥", "建材"), (5, 1, 0),
        outlets=(_air("水泥窑窑尾排放口", "main", CEMENT_KILN, (1, 1), (90, 120)),
                 _air("窑头排放口", "main", CEMENT_HEAD, (1, 1), (30, 45)),
                 _air("{n}#水泥磨排放口", "general", CEMENT_DUST, (1, 3), (20, 35)),
                 _water("雨水排放口", "general", RAIN)),
        projects=("日产4500吨新型干法水泥熟料生产线项目", "水泥窑协同处置固体废物项目", "年产200万吨水泥粉磨站项目"),
        waste=("oil", "packaging", "scr"), cities=("贵港", "百色", "河池", "来宾", "崇左", "桂林"),
        scale=300, two_high=True, radiation=True,
    ),
    Industry(
        "C2511", "原油加工及石油制品制造", ("石化", "炼化", "石油化工"), (2, 0, 0),
        outlets=(_air("{n}#加热炉烟气排放口", "main", REF_HEATER, (2, 3), (60, 100)),
                 _air("催化裂化再生烟气排放口", "main", REF_FCC, (1, 1), (80, 120)),
                 _air("硫磺回收尾气排放口", "main", REF_SULFUR, (1, 1), (80, 100)),
                 _air("有机废气排放口", "general", REF_VOC),
                 _water("污水处理场排放口", "main", REF_W)),
        projects=("1000万吨/年炼油工程", "炼油结构调整及质量升级项目", "配套30万吨级原油码头工程"),
        waste=("fcc", "acid_tar", "oily_sludge", "oil", "packaging", "lab"), cities=("钦州", "北海", "防城港"),
        scale=900, two_high=True, radiation=True,
    ),
    Industry(
        "C2221", "机制纸及纸板制造", ("纸业", "浆纸", "造纸"), (5, 3, 0),
        outlets=(_BOILER_OUT, _water("废水总排放口", "main", PAPER_W)),
        projects=("年产30万吨高档包装纸项目", "年产10万吨生活用纸项目", "碱回收及中段水深度处理改造工程"),
        waste=("oil", "packaging"), cities=("贵港", "南宁", "梧州", "钦州", "来宾"),
        scale=150, two_high=True, radiation=True,
    ),
    Industry(
        "C1331", "食用植物油加工", ("粮油工业", "油脂", "粮油"), (2, 4, 1),
        outlets=(_air("{n}#锅炉废气排放口", "main", GAS_BOILER, (1, 1), (35, 60)),
                 _air("浸出车间废气排放口", "general", PROCESS_VOC),
                 _water("废水总排放口", "main", OIL_W)),
        projects=("年产30万吨大豆加工项目", "日处理5000吨油料压榨浸出项目", "年产20万吨小包装食用油灌装项目"),
        cities=("防城港", "钦州", "北海", "南宁", "玉林"),
    ),
    Industry(
        "C3120", "炼钢", ("钢铁", "特钢", "钢业"), (3, 1, 0),
        outlets=(_air("{n}#烧结机机头烟气排放口", "main", SINTER, (1, 2), (100, 150)),
                 _air("{n}#转炉二次烟气除尘排放口", "main", STEELMAKING, (1, 2), (30, 50)),
                 _air("{n}#高炉出铁场除尘排放口", "main", IRONMAKING, (1, 2), (30, 50)),
                 _water("综合废水总排放口", "main", STEEL_W)),
        projects=("钢铁基地项目（一期）", "年产200万吨热轧带钢项目", "烧结烟气超低排放改造项目"),
        waste=("oil", "packaging", "acid", "lab"), cities=("柳州", "防城港", "贵港", "玉林"),
        scale=1200, two_high=True, radiation=True,
    ),
    Industry(
        "C3212", "铅锌冶炼", ("有色金属", "冶炼", "锌业"), (2, 1, 0),
        outlets=(_air("冶炼烟气制酸尾气排放口", "main", LEADZINC_AIR, (1, 1), (80, 100)),
                 _air("{n}#环境集烟排放口", "general", LEADZINC_DUST, (1, 2), (30, 50)),
                 _water("废水总排放口", "main", LEADZINC_W)),
        projects=("年产10万吨电解锌项目", "铅锌冶炼烟气治理改造工程"),
        waste=("smelt", "acid", "oil", "packaging"), cities=("河池", "百色", "来宾"), scale=300, two_high=True,
    ),
    Industry(
        "C3216", "铝冶炼", ("铝业", "氧化铝", "铝材"), (2, 1, 0),
        outlets=(_air("{n}#电解槽烟气净化排放口", "main", ALU_AIR, (1, 2), (60, 90)),
                 _water("废水总排放口", "general", ALU_W)),
        projects=("年产40万吨电解铝项目", "年产100万吨氧化铝项目"),
        waste=("smelt", "oil", "packaging"), cities=("百色", "来宾", "河池"), scale=500, two_high=True,
    ),
    Industry(
        "C3214", "锡冶炼", ("锡业", "有色冶炼"), (1, 1, 0),
        outlets=(_air("冶炼烟气排放口", "main", TIN_AIR, (1, 1), (60, 80)), _water("废水总排放口", "main", TIN_W)),
        projects=("年产2万吨精锡冶炼项目", "锡冶炼烟气综合治理项目"),
        waste=("smelt", "oil", "packaging"), cities=("河池", "来宾"), scale=120, two_high=True,
    ),
    Industry(
        "C3140", "铁合金冶炼", ("锰业", "铁合金", "冶金"), (2, 2, 0),
        outlets=(_air("{n}#矿热炉烟气排放口", "main", FERRO_AIR, (1, 3), (30, 50)),
                 _water("废水总排放口", "general", GB8978_1)),
        projects=("年产10万吨硅锰合金项目", "年产6万吨电解金属锰项目"),
        cities=("崇左", "百色", "来宾", "钦州"), scale=200, two_high=True,
    ),
    Industry(
        "C2611", "无机酸制造", ("化工", "化学"), (2, 2, 0),
        outlets=(_air("硫酸尾气排放口", "main", SULFURIC_AIR, (1, 1), (50, 80)),
                 _water("废水总排放口", "main", INORGANIC_W)),
        projects=("年产20万吨硫磺制酸项目", "年产30万吨硫铁矿制酸项目"),
        waste=("oil", "packaging", "lab", "acid"), scale=150, two_high=True,
    ),
    Industry(
        "C2621", "氮肥制造", ("化肥", "化工"), (1, 1, 0),
        outlets=(_air("造粒塔废气排放口", "main", UREA_AIR, (1, 1), (60, 100)), _BOILER_OUT,
                 _water("废水总排放口", "main", NH3_W)),
        projects=("年产30万吨合成氨项目", "年产52万吨尿素技术改造项目"),
        waste=("oil", "packaging", "scr"), scale=200, two_high=True,
    ),
    Industry(
        "C2631", "化学农药制造", ("农药", "化工", "生物科技"), (2, 1, 0),
        outlets=(_air("{n}#工艺废气排放口", "main", PROCESS_HCL, (1, 2), (20, 30)), _WATER_MAIN),
        projects=("年产5000吨农药原药项目", "农药制剂生产线技术改造项目"),
        waste=("pesticide", "carbon", "packaging", "lab"), scale=30,
    ),
    Industry(
        "C2614", "有机化学原料制造", ("化工", "新材料"), (2, 2, 0),
        outlets=(_air("{n}#工艺废气排放口", "main", PROCESS_VOC, (1, 2), (25, 40)), _BOILER_OUT,
                 _water("废水总排放口", "main", ORGANIC_W)),
        projects=("年产30万吨乙二醇项目", "年产10万吨醋酸乙烯项目"),
        waste=("carbon", "packaging", "lab", "oil"), cities=("钦州", "北海", "防城港", "南宁"),
        scale=120, two_high=True,
    ),
    Industry(
        "C2710", "化学药品原料药制造", ("制药", "药业"), (2, 2, 0),
        outlets=(_air("{n}#工艺废气排放口", "main", PHARMA_AIR, (1, 2), (20, 30)),
                 _water("废水总排放口", "main", PHARMA_W)),
        projects=("原料药生产线建设项目", "原料药车间GMP技术改造项目"),
        waste=("pharma", "carbon", "lab", "packaging"), scale=15,
    ),
    Industry(
        "D4620", "污水处理及其再生利用", ("水务", "污水处理"), (4, 3, 1),
        outlets=(_water("污水处理厂出水口", "main", SEWAGE_W),),
        projects=("城市污水处理厂一期工程（处理规模5万立方米/日）", "污水处理厂提标改造工程", "污水处理厂二期扩建工程"),
        waste=("lab", "oil"), scale=100, naming="sewage",
    ),
    Industry(
        "D4417", "生物质能发电", ("环保能源", "再生能源", "环境能源"), (2, 0, 0),
        outlets=(_air("{n}#焚烧炉烟气排放口", "main", WTE_AIR, (2, 3), (80, 80)),
                 _water("渗滤液处理站排放口", "main", LEACHATE_W)),
        projects=("生活垃圾焚烧发电项目（日处理1200吨）", "生活垃圾焚烧发电厂二期工程"),
        waste=("fly_ash", "oil", "packaging", "lab"), scale=150,
    ),
    Industry(
        "N7724", "危险废物治理", ("环保科技", "环境服务", "固废处置"), (2, 1, 0),
        outlets=(_air("焚烧炉烟气排放口", "main", HWI_AIR, (1, 1), (50, 60)), _WATER_MAIN),
        projects=("危险废物综合处置中心项目", "年处置5万吨工业危险废物项目"),
        waste=("fly_ash", "packaging", "lab"), scale=40,
    ),
    Industry(
        "A0313", "猪的饲养", ("农牧", "畜牧", "生态养殖"), (1, 3, 10),
        outlets=(_water("养殖废水排放口", "main", LIVESTOCK_W),),
        projects=("年出栏生猪1万头标准化养殖项目", "年存栏母猪3000头养殖项目"),
        waste=("packaging",), cities=("玉林", "贵港", "南宁", "桂林"), naming="farm",
    ),
    Industry(
        "A0321", "鸡的饲养", ("禽业", "农牧"), (0, 1, 5),
        projects=("年出栏肉鸡100万羽养殖项目",), waste=("packaging",), cities=("玉林", "南宁"), naming="farm",
    ),
    Industry(
        "Q8411", "综合医院", ("医院",), (2, 5, 4),
        outlets=(_water("医疗废水总排放口", "main", HOSPITAL_W),),
        projects=("门诊住院综合楼建设项目", "住院部扩建工程"),
        waste=("infectious", "sharps", "lab"), scale=10, naming="hospital", radiation=True,
    ),
    Industry(
        "Q8412", "中医医院", ("中医医院",), (0, 2, 2),
        outlets=(_water("医疗废水总排放口", "general", HOSPITAL_W),),
        projects=("中医医院整体搬迁建设项目",), waste=("infectious", "sharps"), scale=5, naming="hospital",
    ),
    Industry(
        "C3610", "汽柴油车整车制造", ("汽车", "汽车制造"), (2, 1, 0),
        outlets=(_air("{n}#涂装车间废气排放口", "main", PROCESS_VOC, (1, 3), (25, 35)),
                 _water("废水总排放口", "main", GB8978_3)),
        projects=("年产20万辆乘用车技术改造项目", "涂装车间VOCs治理改造项目"),
        waste=("paint", "oil", "packaging", "carbon", "plating_sludge"), cities=("柳州", "南宁", "桂林"), scale=80,
    ),
    Industry(
        "C3620", "新能源车整车制造", ("新能源汽车", "汽车"), (1, 1, 0),
        outlets=(_air("{n}#涂装车间废气排放口", "main", PROCESS_VOC, (1, 2), (25, 35)),
                 _water("废水总排放口", "main", GB8978_3)),
        projects=("年产10万辆新能源汽车项目",),
        waste=("paint", "oil", "packaging", "carbon"), cities=("柳州", "南宁"), scale=40,
    ),
    Industry(
        "C3360", "金属表面处理及热处理加工", ("表面处理", "电镀", "五金"), (3, 1, 0),
        outlets=(_air("{n}#酸雾废气排放口", "general", PLATING_AIR, (1, 2)),
                 _water("电镀废水总排放口", "main", PLATING_W)),
        projects=("电镀集中加工区项目", "电镀生产线技术改造项目"),
        waste=("plating_sludge", "acid", "packaging"), cities=("玉林", "梧州", "南宁", "柳州"), scale=5,
    ),
    Industry(
        "C1713", "棉印染精加工", ("纺织印染", "印染", "纺织"), (2, 2, 0),
        outlets=(_BOILER_OUT, _water("废水总排放口", "main", DYE_W)),
        projects=("年产3000万米棉布印染项目",), cities=("玉林", "梧州", "贵港"), scale=30,
    ),
    Industry(
        "C1391", "淀粉及淀粉制品制造", ("淀粉", "木薯开发", "生物科技"), (1, 4, 2),
        outlets=(_air("干燥废气排放口", "general", PROCESS_DUST), _water("废水总排放口", "main", STARCH_W)),
        projects=("年产5万吨木薯淀粉项目", "变性淀粉生产线扩建项目"),
        cities=("南宁", "崇左", "百色", "钦州", "北海"), scale=25, seasonal=True,
    ),
    Industry(
        "C1511", "酒精制造", ("酒精", "生物化工"), (2, 2, 0),
        outlets=(_BOILER_OUT, _water("废水总排放口", "main", ALCOHOL_W)),
        projects=("年产5万吨糖蜜酒精项目",), cities=("崇左", "来宾", "南宁"), scale=40,
    ),
    Industry(
        "C2021", "胶合板制造", ("木业", "板业", "人造板"), (0, 3, 6),
        outlets=(_air("热压废气排放口", "general", PROCESS_VOC),
                 _air("{n}#锅炉废气排放口", "general", BOILER, (1, 1), (25, 35))),
        projects=("年产10万立方米胶合板项目",), cities=("贵港", "玉林", "南宁", "梧州", "来宾"),
    ),
    Industry(
        "C1351", "牲畜屠宰", ("食品", "肉类联合加工"), (1, 3, 3),
        outlets=(_water("废水总排放口", "main", SLAUGHTER_W),), projects=("年屠宰生猪30万头项目",), scale=15,
    ),
    Industry(
        "C1311", "稻谷加工", ("米业", "粮食"), (0, 0, 5),
        outlets=(_air("粉尘排放口", "general", PROCESS_DUST),), projects=("年产5万吨大米加工项目",), waste=("oil",),
    ),
    Industry(
        "C2110", "木质家具制造", ("家具",), (0, 1, 4),
        outlets=(_air("喷漆废气排放口", "general", PROCESS_VOC),), projects=("年产5万套实木家具项目",),
        waste=("paint", "carbon", "packaging"),
    ),
    Industry(
        "C3021", "水泥制品制造", ("混凝土", "建材"), (0, 1, 5),
        outlets=(_air("搅拌楼粉尘排放口", "general", CEMENT_DUST),), projects=("年产60万立方米商品混凝土项目",),
        waste=("oil",),
    ),
    Industry(
        "C3031", "粘土砖瓦及建筑砌块制造", ("新型建材", "砖业"), (0, 2, 3),
        outlets=(_air("隧道窑烟气排放口", "general", BRICK_AIR, (1, 1), (25, 35)),),
        projects=("年产1.2亿块页岩烧结砖项目",), waste=("oil",),
    ),
    Industry(
        "C2319", "包装装潢及其他印刷", ("印务", "包装"), (0, 1, 4),
        outlets=(_air("印刷废气排放口", "general", PROCESS_VOC),), projects=("包装印刷生产线项目",),
        waste=("carbon", "packaging"),
    ),
    Industry(
        "F5265", "机动车燃油零售", ("石油",), (0, 0, 6),
        projects=("加油站建设项目",), waste=("oil",), naming="station",
    ),
    Industry(
        "O8111", "汽车修理与维护", ("汽车服务", "汽修"), (0, 0, 4),
        outlets=(_air("喷漆房废气排放口", "general", PROCESS_VOC),), projects=("汽车维修及喷漆项目",),
        waste=("engine_oil", "paint", "packaging"),
    ),
    Industry(
        "C1329", "其他饲料加工", ("饲料",), (0, 1, 4),
        outlets=(_air("粉尘排放口", "general", PROCESS_DUST),), projects=("年产20万吨配合饲料项目",), waste=("oil",),
    ),
)
# fmt: on

INDUSTRY = {i.code: i for i in INDUSTRIES}

# --- names ------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


TRADE_NAMES = _words(
    "鑫源 桂润 恒达 丰泽 南星 华凯 锦江 金穗 宏桂 永盛 鼎力 广源 正和 泰华 盛隆 裕丰 联发 兴桂 福临 长荣 汇通 瑞丰"
    " 嘉禾 康宁 凯华 信达 宝桂 天成 华荣 东鸿 新宇 荣昌 巨丰 骏达 润泽 益丰 振华 海晟 宏远 桂华 祥和 绿源 清源"
    " 蓝海 大海 红日 远航 昌盛 茂源 富邦 天和 弘昌 同益 晟达 佳美 利丰 安泰 德润 泓源 聚源 铭泰 众诚 康达 华晟"
    " 恒丰 盛源 锦盛 百川 壮乡 八桂 邕桂 漓源 桂中 桂东 桂西 金田 万和 隆泰 合盛 立信 恒升 桂能 海桂 嘉裕"
)
SURNAMES = _words("黄 李 韦 陈 梁 刘 莫 覃 蒙 卢 陆 农 蓝 廖 周 张 王 杨 罗 谭 潘 何 吴 林 邓 苏 唐 蒋 甘 龙")
GIVEN = _words("伟 强 军 华 明 海 林 勇 斌 涛 峰 俊 杰 宁 志 敏 丽 芳 红 玲 燕 雄 桂 宏 建 国 平 文 春 庆")
SUFFIXES = (("有限公司", 60), ("有限责任公司", 20), ("股份有限公司", 15), ("集团有限公司", 5))
NAME_STYLES = (("city", 35), ("province", 30), ("county", 22), ("paren", 8), ("dot", 2), ("long", 3))
ROADS = _words(
    "工业大道 创业路 兴业路 园区大道 科技路 长江路 滨江路 环城北路 城南大道 金桥路 新兴路 东环路 西环大道 发展大道"
    " 建设路 朝阳路 河西路 友谊路 迎宾大道 振兴路 工业园一路 工业园二路 明月路 沿江路 站前路"
)
COASTAL_ROADS = _words("港口大道 滨海大道 临港大道 海景大道")
CHINESE_NUMERALS = "一二三四五六七八九"
COAST = frozenset({"北海", "钦州", "防城港"})


def _weighted(rng: Random, pairs: Sequence[tuple[str, int]]) -> str:
    return rng.choices([p[0] for p in pairs], [p[1] for p in pairs])[0]


def _person(rng: Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


def _local(city: City, county: str) -> str:
    """How a county-level body is named: 宾阳县…, but 南宁市青秀区… for a city district."""
    return f"{city.name}{county}" if county.endswith("区") else county


def _company_name(rng: Random, ind: Industry, city: City, county: str, style: str) -> tuple[str, str]:
    """(name, USCC registration prefix): 91 enterprise, 12 public institution, 52 private non-profit."""
    trade, word, suffix = rng.choice(TRADE_NAMES), rng.choice(ind.words), _weighted(rng, SUFFIXES)
    place = county_short(county)
    if ind.naming == "hospital":
        if ind.code == "Q8412":
            return f"{_local(city, county)}中医医院", "12"
        return rng.choice(
            (
                (f"{city.name}第{rng.choice(CHINESE_NUMERALS[:5])}人民医院", "12"),
                (f"{_local(city, county)}人民医院", "12"),
                (f"{city.short}{trade}医院", "52"),
            )
        )
    if ind.naming == "sewage" and style != "long":
        return rng.choice(((f"{city.short}{trade}水务有限公司", "91"), (f"{city.name}{place}污水处理厂", "91")))
    if ind.naming == "station":
        return f"广西{trade}石油有限公司{place}{rng.choice(('城东', '城西', '城南', '城北', '高速'))}加油站", "91"
    if ind.naming == "farm" and style in ("province", "city"):
        return f"广西{trade}{word}有限公司{place}分公司", "91"
    return {
        "city": f"{city.short}{trade}{word}{suffix}",
        "province": f"广西{trade}{word}{suffix}",
        "county": f"{place}{trade}{word}{suffix}",
        "paren": f"{trade}{word}（{city.short}）{suffix}",
        "dot": f"{trade}·{city.short}{word}{suffix}",
        "long": f"广西壮族自治区{city.name}{trade}{word}实业集团股份有限公司",
    }[style], "91"


# --- identifiers --------------------------------------------------------------------------------

# Organisation parts are bijections of the company index (x -> a*x + b mod m, a coprime to m), so
# codes never collide at any n; a near m/golden ratio spreads neighbouring indices across the space.
_MA_LETTERS = "KLMNPQ"  # Guangxi's post-2015 codes mostly read 91450…MA5K…, MA5L…
_MA_SPACE = len(_MA_LETTERS) * 31**5
_MA_STEP = 106_162_733
_OLD_SPACE = 10**8
_OLD_STEP = 61_803_399


def _org_ma(k: int, seed: int) -> str:
    x = (k * _MA_STEP + seed * 7_919) % _MA_SPACE
    letter, x = divmod(x, 31**5)
    tail = ""
    for _ in range(5):
        x, d = divmod(x, 31)
        tail += USCC_ALPHABET[d]
    return "MA5" + _MA_LETTERS[letter] + tail


def _org_old(k: int, seed: int) -> str:
    """A pre-2015 organisation code: 8 digits and its GB 11714-1997 check character."""
    digits = f"{(k * _OLD_STEP + seed * 104_729) % _OLD_SPACE:08d}"
    total = sum(int(d) * w for d, w in zip(digits, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    check = 11 - total % 11
    return digits + {10: "X", 11: "0"}.get(check, str(check))


def make_uscc(prefix: str, region: str, org: str, *, bad_check: bool = False) -> str:
    first17 = prefix + region + org
    check = uscc_check_char(first17)
    if bad_check:  # some real codes carry a wrong check character; the loader only warns
        check = USCC_ALPHABET[(USCC_ALPHABET.index(check) + 7) % 31]
    return first17 + check


def id_card(first17: str) -> str:
    """A resident ID number (GB 11643-1999) with its check character."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return first17 + "10X98765432"[sum(int(c) * w for c, w in zip(first17, weights, strict=True)) % 11]


PLANTED_ID = id_card("45010219850715331")  # valid check digit, so a scrubber cannot skip it as noise


# --- which enterprise is which -----------------------------------------------------------------


@dataclass(frozen=True)
class Fixed:
    """What an edge-case index must be; fields left None are drawn at random."""

    city: str | None = None
    category: str | None = None
    industry: str | None = None
    style: str | None = None
    edges: frozenset[str] = frozenset()


def _fx(
    city: str | None = None,
    category: str | None = None,
    *edges: str,
    industry: str | None = None,
    style: str | None = None,
) -> Fixed:
    return Fixed(city, category, industry, style, frozenset(edges))


# Indices 0–14 cover the 14 cities (6 is the second site of 5, in 防城港 too).
FIXED: dict[int, Fixed] = {
    0: _fx("南宁", KEY, industry="C1340"),
    1: _fx("柳州", SIMPLE, "expired"),
    2: _fx("桂林", KEY, "expiring"),
    3: _fx("梧州", SIMPLE, "revoked"),
    4: _fx("北海", SIMPLE, "deregistered"),
    5: _fx("防城港", KEY, "first_site", industry="C1331", style="province"),
    6: _fx(None, None, "second_site"),
    7: _fx("钦州", KEY, "no_online"),
    8: _fx("贵港", KEY, "exceedance"),
    9: _fx("玉林", KEY, "penalised", "fine_withheld"),
    10: _fx("百色", SIMPLE, "failed_inspection", "mobile_in_text", "open_rectification"),
    11: _fx("贺州", KEY, "closed_rectification", "id_in_text"),
    12: _fx("河池", KEY, "confidential_block"),
    13: _fx("来宾", SIMPLE, "confidential_item"),
    14: _fx("崇左", KEY, style="long"),
    15: _fx("防城港", SIMPLE, industry="C1331", style="paren"),
    16: _fx("北海", KEY, industry="D4411", style="dot"),
    17: _fx(None, REG, "bad_check"),
    18: _fx(None, REG),
}
_NOT_FIXED = Fixed()
SECOND_SITE = (5, 2)  # index 6 is site 002 of the company of index 5
CHAIN_FROM = 20  # random further sites only after the fixed indices
CHAIN_SHARE = 0.02


@dataclass(frozen=True)
class Company:
    index: int
    uscc: str
    name: str
    category: str
    industry: Industry
    city: City
    home: tuple[str, str]  # registration county (code, name)
    legal_representative: str


def _pick_industry(rng: Random, category: str) -> Industry:
    col = CATEGORIES.index(category)
    return rng.choices(INDUSTRIES, [i.weights[col] for i in INDUSTRIES])[0]


def _pick_city(rng: Random, ind: Industry) -> City:
    if ind.cities and rng.random() < 0.7:
        return CITY_BY_NAME[rng.choice(ind.cities)]
    return rng.choices(CITIES, [c.weight for c in CITIES])[0]


@lru_cache(maxsize=256)
def company(seed: int, k: int) -> Company:
    """The legal entity behind site k (and behind any later sites chained to it)."""
    rng = Random(f"{seed}:{k}:company")
    fixed = FIXED.get(k, _NOT_FIXED)
    category = fixed.category or rng.choices(CATEGORIES, CATEGORY_WEIGHTS)[0]
    ind = INDUSTRY[fixed.industry] if fixed.industry else _pick_industry(rng, category)
    city = CITY_BY_NAME[fixed.city] if fixed.city else _pick_city(rng, ind)
    home = rng.choice(city.counties)
    style = fixed.style or _weighted(rng, NAME_STYLES)
    if style == "county" and home[1].endswith("区"):  # companies in a city district take the city's name
        style = "city"
    name, prefix = _company_name(rng, ind, city, home[1], style)
    region = home[0] if rng.random() < 0.6 else city.code  # registered by the county or the city
    org = _org_ma(k, seed) if prefix == "91" and rng.random() < 0.7 else _org_old(k, seed)
    bad = "bad_check" in fixed.edges or rng.random() < 0.01
    return Company(k, make_uscc(prefix, region, org, bad_check=bad), name, category, ind, city, home, _person(rng))


def site_of(seed: int, i: int) -> tuple[int, int]:
    """(company index, site sequence) of enterprise i: most companies hold one permit."""
    if i in FIXED:
        return SECOND_SITE if "second_site" in FIXED[i].edges else (i, 1)
    if i >= CHAIN_FROM and Random(f"{seed}:{i}:chain").random() < CHAIN_SHARE:
        k, seq = site_of(seed, i - 1)
        if seq < 3:
            return k, seq + 1
    return i, 1


# --- the per-enterprise context -----------------------------------------------------------------


def _add_years(d: dt.date, years: int) -> dt.date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


@dataclass
class Ctx:
    """Everything the block builders share for one enterprise."""

    rng: Random
    as_of: dt.date
    company: Company
    seq: int
    category: str
    county: tuple[str, str]
    edges: frozenset[str]
    outlets: list[Doc] = field(default_factory=list)
    online_pairs: set[tuple[str, str]] = field(default_factory=set)
    rectifications: list[Doc] = field(default_factory=list)
    deregistered: dt.date | None = None
    lon: float = 0.0
    lat: float = 0.0

    @property
    def ind(self) -> Industry:
        return self.company.industry

    @property
    def city(self) -> City:
        return self.company.city

    def source(self, system: str, lag: tuple[int, int] = (1, 6)) -> Doc:
        return {"system": system, "extracted": self.as_of - dt.timedelta(days=self.rng.randint(*lag))}

    def day(self, lo: dt.date, hi: dt.date) -> dt.date:
        return lo + dt.timedelta(days=self.rng.randint(0, max(0, (hi - lo).days)))

    def last_day(self, source: Doc) -> dt.date:
        """The last day an event can carry: before the extract, and before deregistration."""
        extracted: dt.date = source["extracted"]
        return min(extracted, self.deregistered or extracted) - dt.timedelta(days=1)

    def days_ago(self, lo: int, hi: int) -> dt.date:
        return self.as_of - dt.timedelta(days=self.rng.randint(lo, hi))

    def doc_no(self, kind: str, year: int, *, province: bool = False) -> str:
        prefix = "桂" if province else self.city.doc
        return f"{prefix}{kind}〔{year}〕{self.rng.randint(1, 180)}号"

    def inspector(self, level: str) -> str:
        if level == "province":
            return PROVINCE_DEPT
        if level == "county":
            return f"{self.city.bureau}{self.county[1]}分局"
        return self.city.bureau


def _new_ctx(seed: int, i: int, as_of: dt.date) -> Ctx:
    k, seq = site_of(seed, i)
    comp = company(seed, k)
    rng = Random(f"{seed}:{i}")
    edges = FIXED.get(i, _NOT_FIXED).edges
    if seq == 1:  # the first site is where the company is registered (and often named after)
        category, county = comp.category, comp.home
    else:  # a further site of the same company: same city, another county
        allowed = [c for c, w in zip(CATEGORIES, comp.industry.weights, strict=True) if w]
        category = comp.category if "second_site" in edges else rng.choice(allowed)
        county = rng.choice([c for c in comp.city.counties if c != comp.home])
    return Ctx(rng, as_of, comp, seq, category, county, edges)


# --- 1. enterprise -----------------------------------------------------------------------------


def _address(ctx: Ctx) -> str:
    rng, city, county = ctx.rng, ctx.city, ctx.county[1]
    roads = ROADS + COASTAL_ROADS if city.short in COAST else ROADS
    street = f"{rng.choice(roads)}{rng.randint(1, 399)}号"
    if ctx.ind.naming in ("hospital", "station"):
        return f"{city.name}{county}{street}"
    park = rng.choice(("工业园区", "产业园", "工业集中区", ""))
    if park and county_short(county) != county:  # 藤县产业园, not 藤县藤县产业园
        park = county_short(county) + park
    return f"{city.name}{county}{park}{street}"


def _enterprise(ctx: Ctx) -> Doc:
    rng, comp, city = ctx.rng, ctx.company, ctx.city
    ctx.lon = round(city.lon + rng.uniform(-0.35, 0.35), 5)
    ctx.lat = round(city.lat + rng.uniform(-0.3, 0.3), 5)
    region = ctx.county[0] if ctx.seq > 1 or "first_site" in ctx.edges or rng.random() < 0.95 else city.code
    status = "operating"
    if "deregistered" in ctx.edges:
        status, ctx.deregistered = "deregistered", ctx.days_ago(90, 300)
    elif rng.random() < 0.015:
        status = "suspended"
    doc: Doc = {
        "source": ctx.source(SRC_PERMIT, (1, 3)),
        "uscc": comp.uscc,
        "name": comp.name,
        "region": region,
        "address": _address(ctx),
        "industry": {"code": ctx.ind.code, "name": ctx.ind.name},
        "status": status,
    }
    if ctx.deregistered:
        doc["deregistered"] = ctx.deregistered
    doc["legal_representative"] = comp.legal_representative
    doc["phone"] = f"{city.area}-{rng.randint(2_000_000, 8_999_999)}"
    doc["longitude"], doc["latitude"] = ctx.lon, ctx.lat
    return doc


# --- 2. permit ----------------------------------------------------------------------------------


def _pollutants(ctx: Ctx, tpl: OutletTemplate, outlet_type: str | None) -> list[Doc]:
    items: list[Doc] = []
    for code, limit in tpl.standard.limits:
        name, unit = POLLUTANTS[code]
        item: Doc = {"code": code, "name": name}
        if tpl.standard.name:
            item["standard"] = tpl.standard.name
        if code == PH:
            item["limit"], item["limit_min"] = 9.0, 6.0
        elif limit is not None:
            item["limit"] = float(limit)
        if limit is not None:
            item["unit"] = unit
        if ctx.category == KEY and outlet_type == "main" and code in ANNUAL_CODES:
            tonnes = ctx.ind.scale * ANNUAL_CODES[code] * ctx.rng.uniform(0.4, 1.6)
            item["annual_tonnes"] = round(tonnes, 2 if tonnes < 10 else 1)
        items.append(item)
    return items


def _outlet(ctx: Ctx, tpl: OutletTemplate, code: str, unit_no: int) -> Doc:
    rng = ctx.rng
    outlet_type: str | None = tpl.type
    if ctx.category == REG:
        outlet_type = None  # registration forms do not classify outlets
    elif ctx.category == SIMPLE and outlet_type == "main" and rng.random() < 0.7:
        outlet_type = "general"
    doc: Doc = {"code": code, "name": tpl.name.replace("{n}", str(unit_no)), "kind": tpl.kind}
    if outlet_type:
        doc["type"] = outlet_type
    doc["longitude"] = round(ctx.lon + rng.uniform(-0.003, 0.003), 6)
    doc["latitude"] = round(ctx.lat + rng.uniform(-0.003, 0.003), 6)
    if tpl.kind == "air":
        doc["height_m"] = float(rng.randint(*tpl.height))
    else:
        doc["receiving_water"] = ctx.city.river
    doc["pollutants"] = _pollutants(ctx, tpl, outlet_type)
    return doc


def _outlets(ctx: Ctx) -> list[Doc]:
    rng, templates = ctx.rng, ctx.ind.outlets
    if ctx.category == REG:
        templates = templates[: rng.randint(0, 2)]
    counters = {"air": 0, "water": 0}
    outlets = []
    for tpl in templates:
        for unit_no in range(1, rng.randint(*tpl.count) + 1):
            counters[tpl.kind] += 1
            code = ("DA" if tpl.kind == "air" else "DW") + f"{counters[tpl.kind]:03d}"
            outlets.append(_outlet(ctx, tpl, code, unit_no))
    if ctx.category != REG and rng.random() < 0.6:
        outlets.append({"code": "TS001", "name": "危险废物贮存库", "kind": "solid_waste"})
        if rng.random() < 0.4:
            outlets.append({"code": "TS002", "name": "一般工业固体废物贮存场", "kind": "solid_waste"})
    return outlets


def _permit_dates(ctx: Ctx) -> tuple[dt.date, dt.date]:
    """(issued, valid_until): permits and registrations run five years (排污许可管理条例, Art. 14)."""
    if "expired" in ctx.edges or ctx.rng.random() < 0.01:
        issued = _add_years(ctx.days_ago(10, 200), -5)
    elif "expiring" in ctx.edges:
        issued = _add_years(ctx.as_of + dt.timedelta(days=ctx.rng.randint(20, 80)), -5)
    else:
        issued = ctx.days_ago(30, 5 * 365 - 1)
    return issued, _add_years(issued, 5) - dt.timedelta(days=1)


def _permit(ctx: Ctx) -> Doc:
    rng = ctx.rng
    issued, until = _permit_dates(ctx)
    doc: Doc = {
        "source": ctx.source(SRC_PERMIT, (1, 3)),
        "kind": "registration" if ctx.category == REG else "permit",
        "category": ctx.category,
        "issued": issued,
        "valid_from": issued,
        "valid_until": until,
    }
    if "revoked" in ctx.edges:
        doc["status"], doc["status_date"] = "revoked", ctx.days_ago(40, 200)
        doc["status_reason"] = "排污单位以提供虚假材料的不正当手段取得排污许可证，依据《排污许可管理条例》予以撤销"
    elif ctx.deregistered:
        doc["status"], doc["status_date"] = "cancelled", ctx.deregistered + dt.timedelta(days=rng.randint(5, 30))
        doc["status_reason"] = "排污单位依法终止，依申请注销排污许可证"
    else:
        doc["status"] = "valid"
    doc["authority"] = ctx.city.bureau if rng.random() < 0.85 else f"{ctx.city.name}行政审批局"
    ctx.outlets = _outlets(ctx)
    doc["outlets"] = ctx.outlets
    return doc


# --- 1/3. EIA approvals and licences -------------------------------------------------------------


FOLLOW_UP_PROJECTS = ("环保设施提标改造项目", "锅炉烟气治理改造项目", "污水处理站扩建工程", "生产线技术改造项目")


def _acceptance(ctx: Ctx, approved: dt.date) -> Doc | None:
    done = approved + dt.timedelta(days=ctx.rng.randint(300, 1100))
    if done > ctx.as_of - dt.timedelta(days=30):
        return None  # still being built or under trial operation
    # Acceptance by the authority ended on 2017-11-20 (国环规环评〔2017〕4号); since then it is self-run.
    if done < dt.date(2017, 11, 20):
        return {"date": done, "kind": "authority", "document": ctx.doc_no("环验", done.year)}
    return (
        {"date": done, "kind": "self", "document": "竣工环境保护验收意见"}
        if ctx.rng.random() < 0.5
        else {"date": done, "kind": "self"}
    )


def _eia(ctx: Ctx) -> Doc:
    rng, ind = ctx.rng, ctx.ind
    count = {KEY: rng.randint(2, 3), SIMPLE: rng.randint(1, 2), REG: rng.randint(0, 1)}[ctx.category]
    first = ctx.days_ago(5 * 365, 18 * 365)
    items = []
    for n in range(count):
        approved = first if n == 0 else ctx.day(first, ctx.as_of - dt.timedelta(days=60))
        big = ctx.category == KEY and n == 0
        project = ind.projects[n] if n < len(ind.projects) else rng.choice(FOLLOW_UP_PROJECTS)
        kind = "report" if big or rng.random() < 0.3 else "table"
        if "码头" in project and ctx.city.short in COAST:
            kind = "marine"
        item: Doc = {"project": project, "kind": kind}
        province = big and ind.two_high
        item["document"] = ctx.doc_no("环审", approved.year, province=province)
        item["authority"] = PROVINCE_DEPT if province else ctx.city.bureau
        item["date"] = approved
        acceptance = _acceptance(ctx, approved)
        if acceptance:
            item["acceptance"] = acceptance
        items.append(item)
    if ind.naming == "hospital" and ctx.category != REG:
        approved = ctx.days_ago(200, 3000)
        items.append(
            {
                "project": rng.choice(("医用直线加速器核技术利用项目", "数字减影血管造影装置（DSA）核技术利用项目")),
                "kind": "nuclear_radiation",
                "document": ctx.doc_no("环审", approved.year, province=True),
                "authority": PROVINCE_DEPT,
                "date": approved,
            }
        )
    if "confidential_item" in ctx.edges:
        approved = ctx.days_ago(400, 900)
        items.append(
            {
                "confidential": True,
                "project": f"年产3000吨特种材料{SECRET_MARK}扩建项目",
                "kind": "report",
                "document": ctx.doc_no("环审", approved.year, province=True),
                "authority": PROVINCE_DEPT,
                "date": approved,
            }
        )
    items.sort(key=lambda it: it["date"])
    return {"source": ctx.source(SRC_EIA), "items": items}


def _licenses(ctx: Ctx) -> Doc:
    rng, items = ctx.rng, []
    if ctx.category != REG and (ctx.ind.naming == "hospital" or (ctx.ind.radiation and rng.random() < 0.4)):
        granted = ctx.days_ago(30, 1700)
        items.append(
            {
                "name": "辐射安全许可证",
                "number": f"桂环辐证[{rng.choice('ABCDEF')}{rng.randint(1, 9999):04d}]",
                "authority": PROVINCE_DEPT,
                "date": granted,
                "valid_until": _add_years(granted, 5) - dt.timedelta(days=1),
            }
        )
    if ctx.ind.code == "N7724":
        granted = ctx.days_ago(30, 1700)
        items.append(
            {
                "name": "危险废物经营许可证",
                "number": f"GX{ctx.city.code[:4]}{rng.randint(1, 99):03d}",
                "authority": PROVINCE_DEPT,
                "date": granted,
                "valid_until": _add_years(granted, 5) - dt.timedelta(days=1),
            }
        )
    return {"source": ctx.source(SRC_LICENSE), "items": items}


# --- 4. monitoring ------------------------------------------------------------------------------

SERIES_DAYS = 365
MAX_SERIES = 10


@lru_cache(maxsize=8)
def _in_season(as_of: dt.date) -> tuple[bool, ...]:
    """Whether each day of the series falls in the cane crushing season (about 10 Nov – 15 Apr)."""
    start = as_of - dt.timedelta(days=SERIES_DAYS)
    days = (start + dt.timedelta(days=k) for k in range(SERIES_DAYS))
    return tuple((d.month, d.day) >= (11, 10) or (d.month, d.day) <= (4, 15) for d in days)


def _run(flags: list[str], rng: Random, flag: str, lo: int, hi: int) -> None:
    length = rng.randint(lo, hi)
    start = rng.randrange(len(flags) - length)
    for k in range(start, start + length):
        if flags[k] == "N":
            flags[k] = flag


def _outlet_flags(ctx: Ctx) -> list[str]:
    """The HJ 212 flags that a whole outlet shares: shutdowns (F), faults (D), link losses (B)."""
    rng = ctx.rng
    if ctx.ind.seasonal:
        shift = rng.randint(-12, 12)  # each mill starts and ends its campaign on its own dates
        season = _in_season(ctx.as_of)
        flags = ["N" if season[(k + shift) % SERIES_DAYS] else "F" for k in range(SERIES_DAYS)]
    else:
        flags = ["N"] * SERIES_DAYS
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        _run(flags, rng, "F", 2, 15)
    for _ in range(rng.randint(0, 2)):
        _run(flags, rng, "D", 1, 4)
    for _ in range(rng.randint(0, 3)):
        _run(flags, rng, "B", 1, 2)
    return flags


def _analyser_flags(rng: Random, outlet_flags: list[str]) -> str:
    """One analyser's flags: the outlet's, plus its own calibrations (C) and maintenance (M)."""
    flags = outlet_flags.copy()
    for k in rng.sample(range(SERIES_DAYS), rng.randint(6, 14)):
        if flags[k] == "N":
            flags[k] = "C"
    for _ in range(rng.randint(0, 3)):
        _run(flags, rng, "M", 1, 2)
    return "".join(flags)


def _daily_values(rng: Random, flags: str, code: str, limit: float | None, flow: float) -> list[float | None]:
    """An AR(1) walk around a level well under the limit; no value where the flag says none."""
    if code == PH:
        level, spread, lo, hi, digits = 7.2 + rng.uniform(-0.4, 0.5), 0.02, 6.3, 8.7, 2
    elif limit is None:
        level, spread, lo, hi, digits = flow, 0.08, 0.0, flow * 3, 1
    else:
        level, spread, lo, hi, digits = limit * rng.uniform(0.2, 0.6), 0.15, 0.0, limit * 0.92, 2 if limit < 10 else 1
    gauss, sigma, x = rng.gauss, spread * level, level
    values: list[float | None] = []
    for flag in flags:
        x = level + 0.6 * (x - level) + gauss(0.0, sigma)
        values.append(round(min(max(x, lo), hi), digits) if flag in "NC" else None)
    return values


def _plant_exceedances(ctx: Ctx, series: Doc, limit: float, recent: bool) -> list[Doc]:
    """Turn a few normal days into exceedances (N-flagged values over the limit) and warn about them."""
    rng, values = ctx.rng, series["values"]
    flags: str = series["flags"]
    normal = [k for k, f in enumerate(flags) if f == "N"]
    chosen = set(rng.sample(normal, min(len(normal), rng.randint(1, 3))))
    if recent:  # two days within the last 30, whatever the plant was doing then
        chosen |= set(rng.sample(range(SERIES_DAYS - 30, SERIES_DAYS), 2))
        series["flags"] = "".join("N" if k in chosen else f for k, f in enumerate(flags))
    warnings = []
    start: dt.date = series["start"]
    digits = 2 if limit < 10 else 1
    for k in sorted(chosen):
        value = round(limit * rng.uniform(1.08, 1.7), digits)
        values[k] = value
        day = start + dt.timedelta(days=k)
        warning: Doc = {
            "outlet": series["outlet"],
            "pollutant": series["pollutant"],
            "date": day,
            "value": value,
            "limit": limit,
        }
        if (ctx.as_of - day).days > 10:
            warning["handled"] = rng.choice(
                (
                    "已核实，企业已说明原因并完成整改",
                    "已责令企业立即改正，并立案调查",
                    "经现场核查，已督促企业调整治理设施运行参数",
                    "已转交执法部门依法处理",
                )
            )
        warnings.append(warning)
    return warnings


def _online_installed(ctx: Ctx) -> bool:
    if "exceedance" in ctx.edges:
        return True
    if "no_online" in ctx.edges or ctx.deregistered or ctx.category == REG:
        return False
    return ctx.rng.random() < (0.93 if ctx.category == KEY else 0.06)


def _online_targets(ctx: Ctx) -> list[tuple[Doc, Doc]]:
    """(outlet, pollutant) pairs with analysers: main outlets, or any outlet of a 简化 plant."""
    outlets = [o for o in ctx.outlets if o.get("type") == "main"]
    outlets = outlets or [o for o in ctx.outlets if o["kind"] != "solid_waste"]
    pairs = [(o, p) for o in outlets for p in o.get("pollutants", ()) if p["code"] in ONLINE_CODES and "limit" in p]
    return pairs[:MAX_SERIES]


def _series(outlet: str, pollutant: str, unit: str, start: dt.date, values: list[float | None], flags: str) -> Doc:
    return {
        "outlet": outlet,
        "pollutant": pollutant,
        "unit": unit,
        "start": start,
        "step": "day",
        "values": values,
        "flags": flags,
    }


def _online_series(ctx: Ctx, targets: list[tuple[Doc, Doc]]) -> list[Doc]:
    rng, start = ctx.rng, ctx.as_of - dt.timedelta(days=SERIES_DAYS)
    series: list[Doc] = []
    outlet_flags: dict[str, list[str]] = {}
    for outlet, pol in targets:
        code = outlet["code"]
        shared = outlet_flags.setdefault(code, _outlet_flags(ctx))
        flags = _analyser_flags(rng, shared)
        values = _daily_values(rng, flags, pol["code"], pol["limit"], 0.0)
        series.append(_series(code, pol["code"], pol["unit"], start, values, flags))
        ctx.online_pairs.add((code, pol["code"]))
        if outlet["kind"] == "water" and pol["code"] == PH:  # the flow meter sits beside the pH probe
            flags = _analyser_flags(rng, shared)
            values = _daily_values(rng, flags, FLOW, None, ctx.ind.scale * rng.uniform(20, 200))
            series.append(_series(code, FLOW, POLLUTANTS[FLOW][1], start, values, flags))
            ctx.online_pairs.add((code, FLOW))
    return series


def _exceedances(ctx: Ctx, series: list[Doc], limits: dict[tuple[str, str], float]) -> list[Doc]:
    """Exceedances in a few enterprises' series (always in the edge case's, twice in the last 30 days)."""
    rng, edge = ctx.rng, "exceedance" in ctx.edges
    candidates = [s for s in series if s["pollutant"] not in (PH, FLOW)]
    if not candidates or not (edge or rng.random() < 0.05):
        return []
    warnings: list[Doc] = []
    for s in rng.sample(candidates, min(len(candidates), rng.randint(1, 2))):
        limit = limits[s["outlet"], s["pollutant"]]
        warnings += _plant_exceedances(ctx, s, limit, recent=edge and not warnings)
    warnings.sort(key=lambda w: w["date"])
    if edge:
        last = warnings[-1]
        name = POLLUTANTS[last["pollutant"]][0]
        problem = f"{last['outlet']}排放口{name}日均值超标（{last['value']}，限值{last['limit']}）"
        measures = "已排查治理设施并调整运行参数"
        ctx.rectifications.append(_rectification(ctx, last["date"], "online_monitoring", problem, measures, "open"))
    return warnings


def _online(ctx: Ctx) -> Doc:
    targets = _online_targets(ctx) if _online_installed(ctx) else []
    system = SRC_ONLINE_WTE if ctx.ind.code == "D4417" else SRC_ONLINE
    doc: Doc = {"source": ctx.source(system, (0, 0)), "installed": bool(targets)}
    doc["series"] = _online_series(ctx, targets)
    doc["warnings"] = _exceedances(ctx, doc["series"], {(o["code"], p["code"]): p["limit"] for o, p in targets})
    return doc


FREQUENCIES = {"1次/月": 12, "1次/季度": 4, "1次/半年": 2, "1次/年": 1}


def _frequency(ctx: Ctx, outlet: Doc) -> str:
    if ctx.category == KEY and outlet.get("type") == "main":
        return "1次/月" if outlet["kind"] == "water" else "1次/季度"
    return "1次/季度" if outlet["kind"] == "water" else ctx.rng.choice(("1次/半年", "1次/年"))


def _self_monitoring(ctx: Ctx) -> Doc:
    rng = ctx.rng
    source = ctx.source(SRC_SELF)
    if ctx.category == REG or ctx.deregistered:  # registrations carry no self-monitoring duty
        return {"source": source, "plan": [], "series": []}
    plan: list[Doc] = []
    series: list[Doc] = []
    extracted: dt.date = source["extracted"]
    for outlet in ctx.outlets:
        for pol in outlet.get("pollutants", ()):
            pair = (outlet["code"], pol["code"])
            if pair in ctx.online_pairs:
                plan.append({"outlet": pair[0], "pollutant": pair[1], "frequency": "自动监测", "method": "automatic"})
                if (pair[0], FLOW) in ctx.online_pairs and pair[1] == PH:
                    plan.append({"outlet": pair[0], "pollutant": FLOW, "frequency": "自动监测", "method": "automatic"})
                continue
            frequency = _frequency(ctx, outlet)
            plan.append({"outlet": pair[0], "pollutant": pair[1], "frequency": frequency, "method": "manual"})
            if "limit" in pol and len(series) < 6:
                series.append(_manual_series(rng, pol, pair[0], FREQUENCIES[frequency], extracted))
    return {"source": source, "plan": plan, "series": series}


def _sampling_dates(rng: Random, per_year: int, extracted: dt.date) -> list[dt.date]:
    """One sampling day per period over the twelve months before the extract's month."""
    dates = []
    for back in range(12, 0, -12 // per_year):
        year, month = divmod(extracted.year * 12 + extracted.month - 1 - back, 12)
        dates.append(dt.date(year, month + 1, rng.randint(3, 26)))
    return dates


def _manual_series(rng: Random, pol: Doc, outlet: str, per_year: int, extracted: dt.date) -> Doc:
    dates = _sampling_dates(rng, per_year, extracted)
    limit: float = pol["limit"]
    values: list[float | None] = []
    for _ in dates:
        if pol["code"] == PH:
            values.append(round(rng.uniform(6.6, 8.4), 2))
        elif rng.random() < 0.06:
            values.append(None)  # not detected
        else:
            values.append(round(limit * rng.uniform(0.08, 0.7), 3 if limit < 1 else 2 if limit < 10 else 1))
    return {
        "outlet": outlet,
        "pollutant": pol["code"],
        "unit": pol["unit"],
        "limit": limit,
        "dates": dates,
        "values": values,
    }


# --- 5. inspections and penalties ---------------------------------------------------------------

# What inspectors find, and what the enterprise reports having done about it.
FINDINGS = (
    ("危险废物贮存场所未按规定设置识别标志", "已按规范设置危险废物识别标志"),
    ("自动监测设备运维记录不完整", "已完善自动监测设备运维台账"),
    ("未按排污许可证规定开展自行监测", "已委托第三方机构按监测方案补测"),
    ("雨污分流不彻底，雨水排放口检出化学需氧量", "已完成雨污分流改造"),
    ("废气收集设施破损，存在无组织排放", "已修复废气收集设施并加强巡检"),
    ("环境管理台账记录不规范", "已规范环境管理台账并落实专人管理"),
    ("一般工业固体废物露天堆放，未采取防扬散措施", "已建设防雨防扬散贮存场所"),
    ("排放口标志牌缺失", "已按规范设置排放口标志牌"),
    ("未按规定提交排污许可证执行报告", "已补交排污许可证执行报告"),
    ("污染防治设施运行参数与设计不符", "已调整治理设施运行参数并加强监控"),
)
VIOLATIONS = (
    ("超过大气污染物排放标准排放大气污染物", "《中华人民共和国大气污染防治法》第九十九条第二项", (100_000, 1_000_000)),
    ("超过水污染物排放标准排放水污染物", "《中华人民共和国水污染防治法》第八十三条第二项", (100_000, 1_000_000)),
    ("未按照排污许可证规定开展自行监测", "《排污许可管理条例》第三十六条第六项", (20_000, 200_000)),
    (
        "未按照规定贮存危险废物",
        "《中华人民共和国固体废物污染环境防治法》第一百一十二条第一款第六项",
        (100_000, 1_000_000),
    ),
    ("未按照规定与生态环境主管部门的监控设备联网", "《中华人民共和国大气污染防治法》第一百条第三项", (20_000, 200_000)),
    (
        "建设项目配套的环境保护设施未经验收即投入生产",
        "《建设项目环境保护管理条例》第二十三条第一款",
        (200_000, 1_000_000),
    ),
)


def _inspection(ctx: Ctx, day: dt.date, findings: str) -> Doc:
    rng = ctx.rng
    level = rng.choices(("province", "city", "county"), (15, 50, 35))[0]
    kind = rng.choices(("double_random", "special", "complaint", "routine"), (55, 20, 10, 15))[0]
    doc: Doc = {
        "date": day,
        "level": level,
        "kind": kind,
        "authority": ctx.inspector(level),
        "result": "problems_found" if findings else "compliant",
    }
    if findings:
        doc["findings"] = findings
    return doc


def _inspections(ctx: Ctx) -> Doc:
    rng = ctx.rng
    source = ctx.source(SRC_INSPECTION)
    end = ctx.last_day(source)
    begin = ctx.as_of - dt.timedelta(days=3 * 365)
    count = {KEY: rng.randint(1, 3), SIMPLE: rng.randint(0, 2), REG: rng.choice((0, 0, 1))}[ctx.category]
    items = []
    for _ in range(count):
        day = ctx.day(begin, end)
        problems = rng.sample(FINDINGS, rng.randint(1, 2)) if rng.random() < 0.15 else []
        findings = "；".join(p for p, _ in problems)
        items.append(_inspection(ctx, day, findings))
        if problems:
            measures = "；".join(m for _, m in problems)
            ctx.rectifications.append(_rectification(ctx, day, "inspection", findings, measures))
    if "failed_inspection" in ctx.edges:
        day = ctx.days_ago(40, 90)
        # A careless export: the inspector typed the contact's personal mobile into the findings.
        findings = (
            "危险废物贮存场所未按规定设置识别标志，废气收集设施破损；"
            f"企业环保负责人王某（手机{PLANTED_MOBILE}）现场签字确认"
        )
        items.append(_inspection(ctx, day, findings))
        status = "open" if "open_rectification" in ctx.edges else None
        ctx.rectifications.append(
            _rectification(ctx, day, "inspection", findings, "已设置识别标志，正在修复收集设施", status)
        )
    items.sort(key=lambda it: it["date"])
    return {"source": source, "items": items}


def _penalty(ctx: Ctx, day: dt.date, *, withhold_fine: bool = False) -> Doc:
    rng = ctx.rng
    violation, basis, (lo, hi) = rng.choice(VIOLATIONS)
    fine = PLANTED_FINE if withhold_fine else float(round(rng.uniform(lo, hi), -4))
    return {
        **({"confidential_fields": ["fine_yuan"]} if withhold_fine else {}),  # schema order: withholding first
        "decision_no": ctx.doc_no("环罚", day.year),
        "date": day,
        "authority": ctx.city.bureau,
        "violation": violation,
        "basis": basis,
        "penalty": rng.choice(("罚款", "责令改正，罚款", "责令限制生产，罚款")),
        "fine_yuan": fine,
        "status": "executing" if (ctx.as_of - day).days < 120 else "completed",
    }


def _penalties(ctx: Ctx) -> Doc:
    rng = ctx.rng
    source = ctx.source(SRC_PENALTY)
    share = {KEY: 0.1, SIMPLE: 0.06, REG: 0.02}[ctx.category]
    begin, end = ctx.as_of - dt.timedelta(days=5 * 365), ctx.last_day(source)
    days = [ctx.day(begin, end) for _ in range(rng.randint(1, 2))] if rng.random() < share else []
    if "penalised" in ctx.edges:
        days = [ctx.days_ago(60, 300), ctx.days_ago(400, 900)]
    days.sort()
    withheld = len(days) - 1 if "fine_withheld" in ctx.edges else -1  # the latest fine is withheld
    items = [_penalty(ctx, d, withhold_fine=k == withheld) for k, d in enumerate(days)]
    for item in items:
        problem = f"{item['violation']}（{item['decision_no']}）"
        ctx.rectifications.append(
            _rectification(ctx, item["date"], "inspection", problem, "已缴纳罚款，违法行为已改正")
        )
    return {"source": source, "items": items}


# --- 6/7. credit and totals -----------------------------------------------------------------------

CREDIT_SCALE = (
    ("守信", "good", "环境信用良好，依法享受激励措施"),
    ("普通", "neutral", "环境信用一般，按常规频次监管"),
    ("一般失信", "warning", "存在环境违法行为，加大检查频次"),
    ("严重失信", "bad", "存在严重环境违法行为，依法实施联合惩戒"),
)


def _credit(ctx: Ctx, penalties: Doc) -> Doc | None:
    rng = ctx.rng
    if rng.random() > {KEY: 0.9, SIMPLE: 0.7, REG: 0.25}[ctx.category]:
        return None
    source = ctx.source(SRC_CREDIT)
    year = ctx.as_of.year - 1 if ctx.as_of.month >= 7 else ctx.as_of.year - 2
    recent = any((ctx.as_of - p["date"]).days < 730 for p in penalties["items"])
    level = rng.choices([c[0] for c in CREDIT_SCALE], (5, 45, 40, 10) if recent else (22, 70, 6, 2))[0]
    rated = dt.date(year + 1, rng.randint(3, 6), rng.randint(1, 28))
    return {"source": source, "level": level, "year": year, "rated": rated}


def _total_emissions(ctx: Ctx) -> Doc | None:
    if not (ctx.ind.two_high and ctx.category == KEY):
        return None
    rng = ctx.rng
    permitted: dict[str, float] = {}
    for outlet in ctx.outlets:
        for pol in outlet.get("pollutants", ()):
            if "annual_tonnes" in pol:
                permitted[pol["code"]] = permitted.get(pol["code"], 0.0) + pol["annual_tonnes"]
    items = [
        {
            "pollutant": code,
            "name": POLLUTANTS[code][0],
            "year": year,
            "tonnes": round(tonnes * rng.uniform(0.35, 0.92), 2),
            "permitted_tonnes": round(tonnes, 2),
        }
        for year in (ctx.as_of.year - 2, ctx.as_of.year - 1)
        for code, tonnes in permitted.items()
    ]
    return {"source": ctx.source(SRC_TOTAL), "items": items} if items else None


# --- 8. hazardous waste and rectification -------------------------------------------------------------


def _receiver(rng: Random, city: City) -> str:
    trade = rng.choice(TRADE_NAMES)
    return rng.choice(
        (f"广西{trade}环保科技有限公司", f"{city.short}{trade}危险废物处置有限公司", f"广西{trade}环境服务有限公司")
    )


def _hazardous_waste(ctx: Ctx) -> Doc:
    rng = ctx.rng
    keys = (
        ctx.ind.waste[: rng.randint(0, 1)]
        if ctx.category == REG
        else ctx.ind.waste[: rng.randint(1, len(ctx.ind.waste))]
    )
    items = []
    for key in keys:
        code, name = WASTES[key]
        generated = round(ctx.ind.scale * rng.uniform(0.005, 0.2) + rng.uniform(0.05, 2), 3)
        transferred = round(generated * rng.uniform(0.8, 1.0), 3)
        utilised = round((generated - transferred) * rng.uniform(0.5, 1.0), 3) if rng.random() < 0.1 else 0.0
        item: Doc = {
            "code": code,
            "name": name,
            "year": ctx.as_of.year - 1,
            "generated_t": generated,
            "transferred_t": transferred,
            "utilised_t": utilised,
            "stored_t": round(max(generated - transferred - utilised, 0.0), 3),
            "receiver": _receiver(rng, ctx.city),
        }
        items.append(item)
    doc: Doc = {
        "source": ctx.source(SRC_WASTE),
        "key_supervision": ctx.category == KEY and rng.random() < 0.5,
        "items": items,
    }
    if "confidential_block" in ctx.edges:
        # Withheld as a trade secret (Art. 7); the planted receiver proves it never reaches a page.
        items[0]["receiver"] = f"{SECRET_MARK}·广西某危险废物处置有限公司"
        doc = {"confidential": True, **doc}
    return doc


def _rectification(
    ctx: Ctx, found: dt.date, origin: str, problem: str, measures: str, status: str | None = None
) -> Doc:
    """A problem to put right (seed 000, Art. 16); measures are reported once work is submitted."""
    rng = ctx.rng
    deadline = found + dt.timedelta(days=rng.choice((30, 60, 90)))
    closed = found + dt.timedelta(days=rng.randint(15, 120))
    latest = ctx.as_of - dt.timedelta(days=7)  # the extract lags the platform by a few days
    if status is None:
        settled = closed <= latest and ((ctx.as_of - found).days > 150 or rng.random() < 0.3)
        status = "closed" if settled else rng.choice(("open", "submitted"))
    doc: Doc = {
        "id": f"ZG-{found.year}-{rng.randint(1, 9999):04d}",
        "found": found,
        "origin": origin,
        "problem": problem,
        "deadline": deadline,
        "status": status,
    }
    if status == "closed":
        doc["closed"] = max(found, min(closed, latest))
    if status != "open":
        doc["measures"] = measures
    return doc


def _rectifications(ctx: Ctx) -> Doc:
    items = ctx.rectifications
    if "closed_rectification" in ctx.edges:
        # A careless export: the complainant's ID number copied into the problem text.
        problem = f"群众投诉反映厂区夜间异味扰民（投诉人陈某某，身份证号{PLANTED_ID}），经核实废气处理设施未正常运行"
        measures = "已更换废气处理设施活性炭并加强运行管理"
        items.append(_rectification(ctx, ctx.days_ago(200, 300), "complaint", problem, measures, "closed"))
    items.sort(key=lambda it: (it["found"], it["id"]))
    return {"source": ctx.source(SRC_RECTIFICATION), "items": items}


# --- one enterprise ---------------------------------------------------------------------------------


def permit_number(comp: Company, seq: int, category: str) -> str:
    """HJ 608-2017: USCC + site sequence + P (permit) or W (registration)."""
    return f"{comp.uscc}{seq:03d}{'W' if category == REG else 'P'}"


def enterprise_doc(seed: int, i: int, as_of: dt.date = DEFAULT_AS_OF) -> Doc:
    """Enterprise i's export record, keys in schema order; a function of (seed, i, as_of) only."""
    ctx = _new_ctx(seed, i, as_of)
    enterprise = _enterprise(ctx)
    permit = _permit(ctx)
    eia, licenses = _eia(ctx), _licenses(ctx)
    online = _online(ctx)  # before self-monitoring: automatic pairs are not sampled by hand
    self_monitoring = _self_monitoring(ctx)
    inspections, penalties = _inspections(ctx), _penalties(ctx)
    doc: Doc = {
        "schema_version": 1,
        "permit_no": permit_number(ctx.company, ctx.seq, ctx.category),
        "enterprise": enterprise,
        "permit": permit,
        "eia": eia,
        "licenses": licenses,
        "self_monitoring": self_monitoring,
        "online_monitoring": online,
        "inspections": inspections,
        "penalties": penalties,
    }
    credit = _credit(ctx, penalties)
    if credit:
        doc["credit"] = credit
    totals = _total_emissions(ctx)
    if totals:
        doc["total_emissions"] = totals
    doc["hazardous_waste"] = _hazardous_waste(ctx)
    doc["rectifications"] = _rectifications(ctx)
    return doc


# --- site and regions ---------------------------------------------------------------------------------


def site_doc(as_of: dt.date = DEFAULT_AS_OF) -> Doc:
    return {
        "schema_version": 1,
        "base_url": "https://ymt.example.gov.cn/",
        "province": "广西壮族自治区",
        "program_name": "广西生态环保“一码通”",
        "authority": PROVINCE_DEPT,
        "hotline": "12345",
        "as_of": as_of,
        "credit_scale": [{"level": level, "tone": tone, "description": text} for level, tone, text in CREDIT_SCALE],
        "max_file_bytes": 16_000_000,
    }


def regions_doc() -> Doc:
    return {
        "schema_version": 1,
        "cities": [
            {
                "code": c.code,
                "name": c.name,
                "bureau": c.bureau,
                "counties": [{"code": k, "name": n} for k, n in c.counties],
            }
            for c in CITIES
        ],
    }


# --- YAML emitter -------------------------------------------------------------------------------------
# A small emitter instead of yaml.dump: about ten times faster, and its layout (flow lists for
# series, block style elsewhere) is fixed by this code, not by a library version.

_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"
_NO_PLAIN_START = frozenset("-?:,[]{}#&*!|>'\"%@` ")
_NO_PLAIN_ANYWHERE = frozenset(",[]{}")


@lru_cache(maxsize=1 << 16)
def _str(s: str) -> str:
    """Plain when YAML reads it back as this same string; JSON-quoted (valid YAML) otherwise."""
    plain = (
        s
        and s.isprintable()
        and s[0] not in _NO_PLAIN_START
        and s[-1] not in " :"
        and ": " not in s
        and " #" not in s
        and _NO_PLAIN_ANYWHERE.isdisjoint(s)
        and _RESOLVER.resolve(yaml.ScalarNode, s, (True, False)) == _STR_TAG
    )
    return s if plain else json.dumps(s, ensure_ascii=False)


def _float(v: float) -> str:
    text = repr(v)
    if "e" in text or "n" in text:  # YAML 1.1 needs a dot in floats; inf and nan never occur
        raise ValueError(f"cannot write {v!r} as a plain YAML float")
    return text


_SCALARS: dict[type, Callable[[object], str]] = {
    type(None): lambda v: "null",
    bool: lambda v: "true" if v else "false",
    int: str,
    float: _float,
    str: _str,
    dt.date: dt.date.isoformat,
}


def _emit(doc: Doc, indent: str, out: list[str]) -> None:
    for key, value in doc.items():
        if isinstance(value, dict):
            out.append(f"{indent}{key}:\n")
            _emit(value, indent + "  ", out)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out.append(f"{indent}{key}:\n")
            for item in value:
                start = len(out)
                _emit(item, indent + "    ", out)
                out[start] = f"{indent}  - {out[start][len(indent) + 4 :]}"
        elif isinstance(value, list):
            out.append(f"{indent}{key}: [{', '.join([_SCALARS[type(v)](v) for v in value])}]\n")
        else:
            out.append(f"{indent}{key}: {_SCALARS[type(value)](value)}\n")


def dump(doc: Doc) -> str:
    out: list[str] = []
    _emit(doc, "", out)
    return "".join(out)


# --- writing ------------------------------------------------------------------------------------------

CHUNK = 250
PARALLEL_FROM = 2_000


def _write_range(seed: int, as_of: dt.date, folder: str, bounds: tuple[int, int]) -> int:
    for i in range(*bounds):
        doc = enterprise_doc(seed, i, as_of)
        Path(folder, f"{doc['permit_no']}.yaml").write_bytes(dump(doc).encode())
    return bounds[1] - bounds[0]


def generate(
    n: int,
    seed: int,
    out: Path,
    *,
    as_of: dt.date = DEFAULT_AS_OF,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> None:
    """Write a complete data directory: site.yaml, regions.yaml and n files in enterprises/.

    Earlier *.yaml files in out/enterprises are removed, so the tree is exactly this run's.
    """
    out = Path(out)
    folder = out / "enterprises"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.yaml"):
        stale.unlink()
    (out / "site.yaml").write_bytes(dump(site_doc(as_of)).encode())
    (out / "regions.yaml").write_bytes(dump(regions_doc()).encode())
    ranges = [(a, min(a + CHUNK, n)) for a in range(0, n, CHUNK)]
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if n >= PARALLEL_FROM else 1
    task = partial(_write_range, seed, as_of, str(folder))
    done = 0
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        for count in pool.map(task, ranges) if pool else map(task, ranges):
            done += count
            if progress:
                progress(done, n)
