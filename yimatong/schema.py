"""The export format's one definition.

Validation, the exporter documentation (content/), the data dictionary and the published JSON
Schemas are all generated from these models, so they cannot disagree with the code.

One file per permit holder (`data/enterprises/*.yaml`) is an `EnterpriseFile`; `data/site.yaml` is a
`Site`; `data/regions.yaml` is `Regions`. Every disclosure block names its source system and extract
date (seed 000, Art. 10) and can be withheld as confidential (Art. 7), as can each list item and
the fields a block lists in `confidential_fields`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .identifiers import OUTLET_PATTERN, PERMIT_PATTERN, REGION_PATTERN, USCC_PATTERN

SCHEMA_VERSION = 1

# --- value types -------------------------------------------------------------------------------

Uscc = Annotated[str, StringConstraints(pattern=USCC_PATTERN)]
PermitNo = Annotated[str, StringConstraints(pattern=PERMIT_PATTERN)]
OutletCode = Annotated[str, StringConstraints(pattern=OUTLET_PATTERN)]
RegionCode = Annotated[str, StringConstraints(pattern=REGION_PATTERN)]
# HJ 212-2017 pollutant codes: a (air) or w (water) + 5 digits, e.g. a21026 SO2, w01018 COD.
PollutantCode = Annotated[str, StringConstraints(pattern=r"^[aw][0-9]{5}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# Free text written by people: the public view scrubs personal data (ID and mobile numbers) from it.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
NonNegative = Annotated[float, Field(ge=0)]
# HJ 212 data flags, one character per value: N normal, F stopped, M maintenance, S manual,
# D fault, C calibration, T over range, B communication error. Only N values count.
Flags = Annotated[str, StringConstraints(pattern=r"^[NFMSDCTB]*$")]
HJ212_FLAGS = {
    "N": "正常",
    "F": "停运",
    "M": "维护",
    "S": "手工输入",
    "D": "故障",
    "C": "校准",
    "T": "超量程",
    "B": "通讯异常",
}


def _field(description: str, example: object = None, **kw: object) -> object:
    """A documented field: the description and example feed the exporter docs and JSON Schema."""
    extra = {"examples": [example]} if example is not None else {}
    return Field(description=description, **extra, **kw)  # type: ignore[arg-type]


class Strict(BaseModel):
    """Unknown keys are errors: a typo in an export must not pass silently."""

    # NaN and infinity are not data, and would make the published JSON invalid.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Source(Strict):
    """数据来源：系统名称与抽取日期（《办法》第十条：数据提供部门对其负责）。"""

    system: Name = _field("源系统名称", "全国排污许可证管理信息平台")
    extracted: dt.date = _field("数据抽取日期（YYYY-MM-DD）", "2026-11-20")


class Withholdable(Strict):
    """A block or list item that may be withheld in whole or in part (seed 000, Art. 7)."""

    # Fields that identify the record or the item stay visible even when it is withheld.
    always_public: ClassVar[frozenset[str]] = frozenset()
    # The identity and the permit are what the signs show: they cannot be withheld as a whole.
    withholdable_whole: ClassVar[bool] = True

    confidential: bool = _field(
        "整体不予公开（经生态环境厅同意的商业秘密，或涉及国家秘密、个人隐私）", False, default=False
    )
    confidential_fields: list[str] = _field("本块（或本条）中不予公开的字段名", ["fine_yuan"], default_factory=list)

    @model_validator(mode="after")
    def _check_confidential_fields(self) -> Withholdable:
        if self.confidential and not self.withholdable_whole:
            raise ValueError("本块必须公开，不能整体标记 confidential（可用 confidential_fields 列出个别字段）")
        for name in self.confidential_fields:
            info = type(self).model_fields.get(name)
            if info is None or name in ("confidential", "confidential_fields"):
                raise ValueError(f"confidential_fields 中的“{name}”不是本块的字段")
            if name in self.always_public or info.is_required():
                raise ValueError(f"字段“{name}”必须公开，不能列入 confidential_fields")
            if info.default_factory is list:  # a list is withheld item by item, or the whole block
                raise ValueError(
                    f"列表“{name}”不能列入 confidential_fields；请在条目上写 confidential: true，或整块不予公开"
                )
        return self


class Block(Withholdable):
    source: Source = _field("本块数据的来源系统与抽取日期")


# --- 1. enterprise identity ------------------------------------------------------------------


class Industry(Strict):
    code: Annotated[str, StringConstraints(pattern=r"^[A-T][0-9]{2,4}$")] = _field(
        "国民经济行业分类代码（GB/T 4754-2017）", "C1331"
    )
    name: Name = _field("行业名称", "食用植物油加工")


class Enterprise(Block):
    always_public: ClassVar[frozenset[str]] = frozenset({"uscc", "name", "region", "address"})
    withholdable_whole: ClassVar[bool] = False

    uscc: Uscc = _field("统一社会信用代码（18 位，GB 32100-2015）", "91450600MA5K3XY21D")
    name: Name = _field("排污单位名称，与排污许可证一致", "大海粮油工业（防城港）有限公司")
    region: RegionCode = _field("所在县（区）或市的行政区划代码，须在 regions.yaml 中", "450602")
    address: Name = _field("生产经营场所地址", "防城港市港口区渔澫岛企沙大道 88 号")
    industry: Industry = _field("行业类别")
    status: Literal["operating", "suspended", "deregistered"] = _field(
        "经营状态：operating 在营，suspended 停产，deregistered 已注销", "operating"
    )
    deregistered: dt.date | None = _field("注销日期（status 为 deregistered 时必填）", None, default=None)
    legal_representative: Name | None = _field("法定代表人", "张三", default=None)
    phone: Name | None = _field("单位对外联系电话（不得填写个人手机号）", "0770-1234567", default=None)
    longitude: float | None = _field("经度（WGS-84）", 108.35, default=None, ge=104, le=113)
    latitude: float | None = _field("纬度（WGS-84）", 21.61, default=None, ge=20, le=27)

    @model_validator(mode="after")
    def _deregistration_dated(self) -> Enterprise:
        if (self.status == "deregistered") != (self.deregistered is not None):
            raise ValueError("status 为 deregistered 时须填写 deregistered 日期，反之不应填写")
        return self


# --- 2. discharge permit / registration --------------------------------------------------------


class PollutantLimit(Withholdable):
    always_public: ClassVar[frozenset[str]] = frozenset({"code", "name"})

    code: PollutantCode = _field("污染物代码（HJ 212-2017）", "a21026")
    name: Name = _field("污染物名称", "二氧化硫")
    standard: Name | None = _field("执行标准", "GB 13223-2011", default=None)
    limit: NonNegative | None = _field("许可排放浓度限值", 35, default=None)
    limit_min: float | None = _field("下限（如 pH 的 6）", None, default=None)
    unit: Name | None = _field("浓度单位", "mg/m³", default=None)
    annual_tonnes: NonNegative | None = _field("许可年排放量（吨/年）", 120.5, default=None)


class Outlet(Withholdable):
    always_public: ClassVar[frozenset[str]] = frozenset({"code", "name", "kind"})

    code: OutletCode = _field("排放口编号：DA### 废气，DW### 废水，固废设施两字母+三位数", "DA001")
    name: Name = _field("排放口名称（与排污许可证一致）", "1#锅炉废气排放口")
    kind: Literal["air", "water", "solid_waste"] = _field(
        "air 大气，water 水，solid_waste 固体废物贮存/处置设施", "air"
    )
    type: Literal["main", "general", "special"] | None = _field(
        "排放口类型：main 主要，general 一般，special 特殊", "main", default=None
    )
    longitude: float | None = _field("经度", 108.351, default=None, ge=104, le=113)
    latitude: float | None = _field("纬度", 21.612, default=None, ge=20, le=27)
    height_m: NonNegative | None = _field("排气筒高度（米）", 45, default=None)
    receiving_water: Name | None = _field("受纳水体", "钦江", default=None)
    pollutants: list[PollutantLimit] = _field("许可排放的污染物及限值", default_factory=list)


class Permit(Block):
    always_public: ClassVar[frozenset[str]] = frozenset({"kind", "category", "issued"})
    withholdable_whole: ClassVar[bool] = False

    kind: Literal["permit", "registration"] = _field("permit 排污许可证，registration 排污登记", "permit")
    category: Literal["重点管理", "简化管理", "登记管理"] = _field("管理类别", "重点管理")
    issued: dt.date = _field("核发日期或登记日期（标识牌上的“xxxx年xx月”）", "2023-06-15")
    valid_from: dt.date = _field("有效期起", "2023-06-15")
    valid_until: dt.date = _field("有效期至", "2028-06-14")
    status: Literal["valid", "revoked", "cancelled"] = _field(
        "许可状态：valid 有效，revoked 撤销，cancelled 注销（过期由有效期推算，不填）", "valid"
    )
    status_date: dt.date | None = _field("撤销或注销日期", None, default=None)
    status_reason: Text | None = _field("撤销或注销原因", None, default=None)
    authority: Name = _field("发证机关", "防城港市行政审批局")
    outlets: list[Outlet] = _field("排放口与固废设施", default_factory=list)

    @model_validator(mode="after")
    def _dates(self) -> Permit:
        if self.valid_until < self.valid_from:
            raise ValueError("valid_until 早于 valid_from")
        if (self.category == "登记管理") != (self.kind == "registration"):
            raise ValueError("登记管理 与 kind: registration 须同时出现")
        if self.status != "valid" and self.status_date is None:
            raise ValueError(f"status 为 {self.status} 时须填写 status_date")
        codes = [o.code for o in self.outlets]
        dup = sorted({c for c in codes if codes.count(c) > 1})
        if dup:
            raise ValueError(f"排放口编号重复：{', '.join(dup)}")
        return self


# --- 1. EIA approvals and completion acceptance; 3. other administrative licences -------------


class Acceptance(Strict):
    date: dt.date = _field("竣工环保验收日期", "2021-03-10")
    kind: Literal["self", "authority"] = _field("self 企业自主验收，authority 部门验收", "self")
    document: Name | None = _field("验收意见或批复文号", "桂环验〔2021〕12号", default=None)


class EiaApproval(Withholdable):
    always_public: ClassVar[frozenset[str]] = frozenset({"date"})

    project: Name = _field("建设项目名称", "年产 30 万吨大豆加工项目")
    kind: Literal["report", "table", "marine", "nuclear_radiation"] = _field(
        "report 报告书，table 报告表，marine 海洋工程，nuclear_radiation 核与辐射", "report"
    )
    document: Name = _field("批复文号", "防环审〔2019〕8号")
    authority: Name = _field("审批部门", "防城港市生态环境局")
    date: dt.date = _field("批复日期", "2019-05-20")
    acceptance: Acceptance | None = _field("竣工环保验收（未验收不填）", None, default=None)


class Eia(Block):
    items: list[EiaApproval] = _field("环评批复", default_factory=list)


class License(Withholdable):
    always_public: ClassVar[frozenset[str]] = frozenset({"date"})

    name: Name = _field("许可事项名称", "危险废物经营许可证")
    number: Name | None = _field("许可证号", "GX4506001", default=None)
    authority: Name = _field("许可机关", "广西壮族自治区生态环境厅")
    date: dt.date = _field("决定日期", "2022-01-08")
    valid_until: dt.date | None = _field("有效期至", "2027-01-07", default=None)


class Licenses(Block):
    items: list[License] = _field("运营期间取得的生态环境行政许可结果", default_factory=list)


# --- 4. self-monitoring and online monitoring --------------------------------------------------


class PlanItem(Strict):
    outlet: OutletCode = _field("排放口编号", "DW001")
    pollutant: PollutantCode = _field("污染物代码", "w01018")
    frequency: Name = _field("监测频次", "1次/季度")
    method: Literal["manual", "automatic"] = _field("manual 手工，automatic 自动", "manual")


class SelfSeries(Strict):
    """自行监测（手工）结果：日期与数值两个等长列表。"""

    # Sparse data: explicit dates. Flow lists of plain scalars keep a year of data fast to parse.

    outlet: OutletCode = _field("排放口编号", "DW001")
    pollutant: PollutantCode = _field("污染物代码", "w01018")
    unit: Name = _field("单位", "mg/L")
    limit: NonNegative | None = _field("限值（缺省取许可限值）", None, default=None)
    dates: list[dt.date] = _field("采样日期", ["2026-03-15", "2026-06-14"])
    values: list[float | None] = _field("监测值，null 表示未检出或缺测", [23.5, 31.0])

    @model_validator(mode="after")
    def _lengths(self) -> SelfSeries:
        if len(self.dates) != len(self.values):
            raise ValueError(f"dates 有 {len(self.dates)} 个，values 有 {len(self.values)} 个，应一致")
        return self


class SelfMonitoring(Block):
    plan: list[PlanItem] = _field("自行监测方案", default_factory=list)
    series: list[SelfSeries] = _field("自行监测数据", default_factory=list)


class OnlineSeries(Strict):
    """在线监测日均值：从 start 起每天一个值，flags 中每个字符是对应值的 HJ 212 数据标记。"""

    # Regular data: start + step instead of a date per value; flags as one string, not a list.

    outlet: OutletCode = _field("排放口编号", "DA001")
    pollutant: PollutantCode = _field("污染物代码", "a21026")
    unit: Name = _field("单位", "mg/m³")
    limit: NonNegative | None = _field("限值（缺省取许可限值）", None, default=None)
    start: dt.date = _field("第一个值的日期", "2025-11-21")
    step: Literal["day"] = _field("间隔：day（日均值）", "day")
    values: list[float | None] = _field("日均值，null 表示无数据", [12.1, 13.4, None])
    flags: Flags = _field("HJ 212 数据标记，每个值一个字符（N 正常、F 停运、M 维护、D 故障…）", "NNF")

    @model_validator(mode="after")
    def _lengths(self) -> OnlineSeries:
        if len(self.flags) != len(self.values):
            raise ValueError(f"values 有 {len(self.values)} 个，flags 有 {len(self.flags)} 个字符，应一致")
        return self


class ExceedanceWarning(Strict):
    outlet: OutletCode = _field("排放口编号", "DA001")
    pollutant: PollutantCode = _field("污染物代码", "a21026")
    date: dt.date = _field("预警日期", "2026-10-03")
    value: float = _field("超标值", 48.2)
    limit: NonNegative = _field("限值", 35)
    handled: Text | None = _field("处理情况", "已核实，企业已说明原因", default=None)


class OnlineMonitoring(Block):
    installed: bool = _field("是否安装自动监控设施并联网", True)
    series: list[OnlineSeries] = _field("自动监测日均值", default_factory=list)
    warnings: list[ExceedanceWarning] = _field("超标预警", default_factory=list)


# --- 5. inspections and penalties --------------------------------------------------------------


class Inspection(Withholdable):
    always_public: ClassVar[frozenset[str]] = frozenset({"date"})

    date: dt.date = _field("检查日期", "2026-04-18")
    level: Literal["province", "city", "county"] = _field("检查层级：province 省，city 市，county 县（区）", "city")
    kind: Literal["double_random", "special", "complaint", "routine"] = _field(
        "double_random 双随机抽查，special 专项，complaint 信访举报，routine 日常", "double_random"
    )
    authority: Name = _field("检查部门", "防城港市生态环境局")
    result: Literal["compliant", "problems_found"] = _field(
        "compliant 未发现问题，problems_found 发现问题", "compliant"
    )
    findings: Text | None = _field("发现的问题", None, default=None)


class Inspections(Block):
    items: list[Inspection] = _field("“双随机、一公开”等检查结果", default_factory=list)


class Penalty(Withholdable):
    always_public: ClassVar[frozenset[str]] = frozenset({"decision_no", "date"})

    decision_no: Name = _field("处罚决定书文号", "防环罚〔2025〕15号")
    date: dt.date = _field("处罚决定日期", "2025-08-02")
    authority: Name = _field("处罚机关", "防城港市生态环境局")
    violation: Text = _field("违法事实", "超过排放标准排放大气污染物")
    basis: Text | None = _field("处罚依据", "《大气污染防治法》第九十九条", default=None)
    penalty: Text = _field("处罚内容", "罚款")
    fine_yuan: NonNegative | None = _field("罚款金额（元）", 200000, default=None)
    status: Literal["executing", "completed"] = _field("executing 执行中，completed 执行完毕", "completed")


class Penalties(Block):
    items: list[Penalty] = _field("环境行政处罚结果", default_factory=list)


# --- 6. credit; 7. totals for "两高" projects ----------------------------------------------------


class Credit(Block):
    level: Name = _field("信用评价等级，须为 site.yaml 中 credit_scale 的一级", "守信")
    year: int = _field("评价年度", 2025, ge=2000, le=2100)
    rated: dt.date = _field("评价发布日期", "2026-03-31")


class TotalItem(Strict):
    pollutant: PollutantCode = _field("污染物代码", "a21002")
    name: Name = _field("污染物名称", "氮氧化物")
    year: int = _field("年度", 2025, ge=2000, le=2100)
    tonnes: NonNegative = _field("实际排放量（吨）", 812.4)
    permitted_tonnes: NonNegative | None = _field("许可排放量（吨）", 1200, default=None)


class TotalEmissions(Block):
    items: list[TotalItem] = _field("“两高”项目主要污染物排放总量", default_factory=list)


# --- 8. hazardous waste; rectification -------------------------------------------------------


class WasteItem(Withholdable):
    always_public: ClassVar[frozenset[str]] = frozenset({"year"})

    code: Annotated[str, StringConstraints(pattern=r"^HW[0-9]{2}( [0-9]{3}-[0-9]{3}-[0-9]{2})?$")] = _field(
        "危险废物类别与代码（《国家危险废物名录》）", "HW08 900-249-08"
    )
    name: Name = _field("危险废物名称", "废矿物油")
    year: int = _field("年度", 2025, ge=2000, le=2100)
    generated_t: NonNegative = _field("产生量（吨）", 12.5)
    transferred_t: NonNegative = _field("转移量（吨）", 11.0)
    utilised_t: NonNegative = _field("自行利用处置量（吨）", 0)
    stored_t: NonNegative = _field("年末贮存量（吨）", 1.5)
    receiver: Name | None = _field("接收单位", "广西某环保科技有限公司", default=None)


class HazardousWaste(Block):
    key_supervision: bool = _field("是否为危险废物重点监管单位", False)
    items: list[WasteItem] = _field("危险废物产生、转移、利用处置情况", default_factory=list)


class Rectification(Withholdable):
    always_public: ClassVar[frozenset[str]] = frozenset({"id", "found", "status"})

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-]{1,40}$")] = _field("问题编号", "ZG-2026-0031")
    found: dt.date = _field("发现日期", "2026-05-12")
    origin: Literal["inspection", "online_monitoring", "complaint", "other"] = _field(
        "问题来源：inspection 检查，online_monitoring 在线监控，complaint 投诉，other 其他", "inspection"
    )
    problem: Text = _field("问题描述", "危险废物贮存场所标识不规范")
    deadline: dt.date | None = _field("整改期限", "2026-07-31", default=None)
    status: Literal["open", "submitted", "closed"] = _field(
        "open 整改中，submitted 已提交待审核，closed 已整改销号", "open"
    )
    closed: dt.date | None = _field("销号日期（status 为 closed 时必填）", None, default=None)
    measures: Text | None = _field("整改措施", None, default=None)

    @model_validator(mode="after")
    def _closed_dated(self) -> Rectification:
        if (self.status == "closed") != (self.closed is not None):
            raise ValueError("status 为 closed 时须填写 closed 日期，反之不应填写")
        return self


class Rectifications(Block):
    items: list[Rectification] = _field("环境问题整改（seed 000 第十六条）", default_factory=list)


# --- the file -------------------------------------------------------------------------------


class EnterpriseFile(Strict):
    """一个持证（登记）单位的导出文件：`data/enterprises/<许可证编号>.yaml`。"""

    schema_version: Literal[1] = _field("导出格式版本", 1)
    permit_no: PermitNo = _field(
        "排污许可证编号或登记编号（HJ 608-2017：信用代码+3 位序号+1 位字母）；页面的永久地址由它生成",
        "91450600MA5K3XY21D001P",
    )
    enterprise: Enterprise = _field("单位基本信息（来自排污许可证）")
    permit: Permit = _field("排污许可证或排污登记，含排放口、污染物、执行标准与许可限值")
    eia: Eia = _field("环评批复与竣工环保验收（含海洋工程、核与辐射类）")
    licenses: Licenses = _field("运营期间取得的生态环境行政许可结果")
    self_monitoring: SelfMonitoring = _field("自行监测方案与自行监测数据")
    online_monitoring: OnlineMonitoring = _field("自动监测（在线监控）数据与超标预警")
    inspections: Inspections = _field("“双随机、一公开”等检查结果")
    penalties: Penalties = _field("环境行政处罚结果")
    credit: Credit | None = _field("企业生态环境信用评价（尚未评价不填）", None, default=None)
    total_emissions: TotalEmissions | None = _field("“两高”项目排放总量（非两高项目不填）", None, default=None)
    hazardous_waste: HazardousWaste = _field("危险废物产生、转移、利用处置与重点监管情况")
    rectifications: Rectifications = _field("环境问题整改及其状态（《办法》第十六条）")


# --- site and regions -----------------------------------------------------------------------


class CreditLevel(Strict):
    level: Name = _field("等级名称", "守信")
    tone: Literal["good", "neutral", "warning", "bad"] = _field("页面上的色调", "good")
    description: Text | None = _field("说明", None, default=None)


class Site(Strict):
    """`data/site.yaml`：网站信息。"""

    schema_version: Literal[1] = _field("格式版本", 1)
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[A-Za-z0-9.\-:]+/([A-Za-z0-9._~\-]+/)*$")] = _field(
        "网站根地址（可含子路径），以 / 结尾；二维码与永久链接由它生成", "https://ymt.example.gov.cn/"
    )
    province: Name = _field("省（区）", "广西壮族自治区")
    program_name: Name = _field("程序名称（标识牌第二行）", "广西生态环保“一码通”")
    authority: Name = _field("监制单位（门牌二维码下方，后接“监制”）", "广西壮族自治区生态环境厅")
    hotline: Annotated[str, StringConstraints(pattern=r"^[0-9\-]{3,20}$")] = _field("举报投诉电话", "12345")
    as_of: dt.date = _field("本次导出的数据截止日期；页面上唯一的日期来源", "2026-11-20")
    credit_scale: list[CreditLevel] = _field("信用等级，从好到差", min_length=1)
    max_file_bytes: int = _field("单个导出文件的大小上限（字节）", 16_000_000, default=16_000_000, gt=0)


class County(Strict):
    code: RegionCode = _field("县（区）行政区划代码", "450602")
    name: Name = _field("县（区）名称", "港口区")


class City(Strict):
    code: RegionCode = _field("地级市行政区划代码（以 00 结尾）", "450600")
    name: Name = _field("市名称", "防城港市")
    bureau: Name = _field("市生态环境局名称（排放口标识牌“…监制”）", "防城港市生态环境局")
    counties: list[County] = _field("所辖县（区）", default_factory=list)


class Regions(Strict):
    """`data/regions.yaml`：地级市与县（区）。"""

    schema_version: Literal[1] = _field("格式版本", 1)
    cities: list[City] = _field("地级市", min_length=1)
