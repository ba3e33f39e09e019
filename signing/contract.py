"""The factoring contract (保理合同) as a PDF with three empty signature fields.

The wording lives in `signing/templates/factoring_contract.md`, a plain-text template meant to be reviewed
and edited by non-programmers (see templates/README.md). This module only fills placeholders and lays the
text out. Output is deterministic: the same terms, template and font give the same bytes (reportlab
`invariant=1` fixes the creation date and document ID), so the contract's SHA-256 is reproducible.

Units: every amount is integer fen; rates are Decimal fractions a year (Decimal("0.065") = 6.50 %), the same
convention as models.financing.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfdoc import PDFArray, PDFDictionary, PDFName, PDFString
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from signing.amounts import (
    INTEREST_CONVENTION,
    amount_in_chinese_capital,
    format_percent,
    format_yuan,
    interest,
    interest_days,
)
from signing.fonts import register_cjk_font

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_TEMPLATE = TEMPLATE_DIR / "factoring_contract.md"
SIGNING_ORDER = ("funder", "supplier", "core")
SIGNATURE_FIELDS = {"funder": "Sig_funder", "supplier": "Sig_supplier", "core": "Sig_core"}
PARTY_TITLES = {
    "funder": ("甲方", "保理商/资金方"),
    "supplier": ("乙方", "债权人/供应商"),
    "core": ("丙方", "债务人/核心企业"),
}
_USCC = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_DIRECTIVE = re.compile(r"\[\[([a-z_]+)\]\]")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_ITEM = re.compile(r"\d+\.\s")
SIG_BOX_WIDTH = 150.0
SIG_BOX_HEIGHT = 78.0


class ContractError(ValueError):
    """The terms or the template are unusable; the message says which field or line."""


# ---- terms ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    name: str
    uscc: str  # 统一社会信用代码, 18 characters

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ContractError("party name must not be empty")
        if not _USCC.fullmatch(self.uscc):
            raise ContractError(f"not a unified social credit code: {self.uscc!r}")


@dataclass(frozen=True)
class Attachment:
    name: str
    sha256: str  # hex, lower case

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ContractError("attachment name must not be empty")
        if not _SHA256.fullmatch(self.sha256):
            raise ContractError(f"attachment {self.name!r}: sha256 must be 64 lower-case hex digits")


def _check_fen(label: str, value: object, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError(f"{label} must be integer fen")
    if value < 0 or (positive and value == 0):
        raise ContractError(f"{label} must be {'positive' if positive else 'non-negative'}")


def _check_rate(label: str, value: object, *, allow_zero: bool) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ContractError(f"{label} must be a Decimal fraction (0.065 = 6.5%)")
    if value > 1 or value < 0 or (value == 0 and not allow_zero):
        raise ContractError(f"{label} out of range: {value}")


@dataclass(frozen=True)
class ContractTerms:
    """Everything printed in the contract. Amounts in fen, rates as fractions a year."""

    contract_no: str
    version: int  # contract version; a revision voids earlier signatures
    issue_date: date  # 出具日期
    funder: Party  # 甲方 保理商（资金方）
    supplier: Party  # 乙方 债权人（供应商）
    core: Party  # 丙方 债务人（核心企业）
    invoice_no: str
    trade_contract_no: str
    face_amount: int
    due_date: date  # 应收账款到期日 = 融资到期日
    advance_rate: Decimal
    financing_amount: int
    annual_rate: Decimal  # the final rate fixed by the platform
    fee_rate: Decimal
    fee_amount: int | None = None  # default: financing_amount × fee_rate, half-up to the fen
    value_date: date | None = None  # planned disbursement date, for the worked interest example only
    grace_days: int = 3  # overdue after due date + grace (workflow.financing.scheduler.DEFAULT_GRACE_DAYS)
    attachments: tuple[Attachment, ...] = field(default=())

    def __post_init__(self) -> None:
        for role in SIGNING_ORDER:
            if not isinstance(getattr(self, role), Party):
                raise ContractError(f"{role} must be a Party")
        for label in ("contract_no", "invoice_no", "trade_contract_no"):
            if not str(getattr(self, label)).strip():
                raise ContractError(f"{label} must not be empty")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ContractError("version must be an integer ≥ 1")
        if isinstance(self.grace_days, bool) or not isinstance(self.grace_days, int) or self.grace_days < 0:
            raise ContractError("grace_days must be a non-negative integer")
        _check_fen("face_amount", self.face_amount, positive=True)
        _check_fen("financing_amount", self.financing_amount, positive=True)
        if self.fee_amount is not None:
            _check_fen("fee_amount", self.fee_amount, positive=False)
        _check_rate("advance_rate", self.advance_rate, allow_zero=False)
        _check_rate("annual_rate", self.annual_rate, allow_zero=True)
        _check_rate("fee_rate", self.fee_rate, allow_zero=True)
        if self.financing_amount > self.face_amount:
            raise ContractError("financing_amount exceeds face_amount")
        if self.due_date <= self.issue_date:
            raise ContractError("due_date must be after issue_date")
        if self.value_date is not None and self.value_date >= self.due_date:
            raise ContractError("value_date must be before due_date")
        names = [a.name for a in self.attachments]
        if len(set(names)) != len(names):
            raise ContractError("attachment names must be unique")
        object.__setattr__(self, "attachments", tuple(self.attachments))

    @property
    def fee(self) -> int:
        if self.fee_amount is not None:
            return self.fee_amount
        value = Decimal(self.financing_amount) * self.fee_rate
        return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def party(self, role: str) -> Party:
        return {"funder": self.funder, "supplier": self.supplier, "core": self.core}[role]


# ---- template -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    meta: Mapping[str, str]
    lines: tuple[tuple[int, str], ...]  # (line number in the file, text), comments and front matter removed

    @property
    def template_id(self) -> str:
        return self.meta.get("template_id", "")

    @property
    def version(self) -> str:
        return self.meta.get("template_version", "")

    def placeholders(self) -> set[str]:
        return {m.group(1) for _, line in self.lines for m in _PLACEHOLDER.finditer(line)}


def load_template(path: Path | str = DEFAULT_TEMPLATE) -> Template:
    text = Path(path).read_text(encoding="utf-8")
    meta: dict[str, str] = {}
    raw = text.split("\n")
    start = 0
    if raw and raw[0].strip() == "---":
        try:
            end = next(i for i in range(1, len(raw)) if raw[i].strip() == "---")
        except StopIteration:
            raise ContractError(f"{path}: front matter not closed with ---") from None
        for line in raw[1:end]:
            key, sep, value = line.partition(":")
            if sep:
                meta[key.strip()] = value.strip()
        start = end + 1
    body = "\n".join(raw[start:])
    # blank out comments but keep line numbers stable for error messages
    body = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), body)
    lines = tuple((start + i + 1, line.rstrip()) for i, line in enumerate(body.split("\n")))
    return Template(meta=meta, lines=lines)


def _cn_date(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def contract_values(terms: ContractTerms) -> dict[str, str]:
    """The placeholder values (plain text) a template may use."""
    values = {
        "contract_no": terms.contract_no,
        "contract_version": str(terms.version),
        "issue_date": _cn_date(terms.issue_date),
        "invoice_no": terms.invoice_no,
        "trade_contract_no": terms.trade_contract_no,
        "face_amount": format_yuan(terms.face_amount),
        "face_amount_capital": amount_in_chinese_capital(terms.face_amount),
        "due_date": _cn_date(terms.due_date),
        "advance_rate": format_percent(terms.advance_rate),
        "financing_amount": format_yuan(terms.financing_amount),
        "financing_amount_capital": amount_in_chinese_capital(terms.financing_amount),
        "annual_rate": format_percent(terms.annual_rate),
        "interest_convention": INTEREST_CONVENTION,
        "interest_example": "",
        "fee_rate": format_percent(terms.fee_rate),
        "fee_amount": format_yuan(terms.fee),
        "fee_amount_capital": amount_in_chinese_capital(terms.fee),
        "attachments_count": str(len(terms.attachments)),
        "grace_days": str(terms.grace_days),
    }
    for role in SIGNING_ORDER:
        party = terms.party(role)
        values[f"{role}_name"] = party.name
        values[f"{role}_uscc"] = party.uscc
    if terms.value_date is not None:
        days = interest_days(terms.value_date, terms.due_date)
        amount = interest(terms.financing_amount, terms.annual_rate, days)
        values["interest_example"] = (
            f"例如于{_cn_date(terms.value_date)}放款，计息 {days} 天，利息为人民币 {format_yuan(amount)} 元"
            f"（大写：人民币{amount_in_chinese_capital(amount)}）；实际利息按实际放款日计算。"
        )
    return values


# ---- layout ---------------------------------------------------------------------------------------------------


class _Styles:
    def __init__(self, font: str) -> None:
        base = {"fontName": font, "wordWrap": "CJK", "textColor": colors.black}
        self.title = ParagraphStyle("title", fontSize=18, leading=26, alignment=TA_CENTER, spaceAfter=6, **base)
        self.meta = ParagraphStyle("meta", fontSize=9.5, leading=14, alignment=TA_CENTER, spaceAfter=10, **base)
        self.heading = ParagraphStyle("heading", fontSize=11.5, leading=18, spaceBefore=8, spaceAfter=3, **base)
        self.body = ParagraphStyle("body", fontSize=10.5, leading=17, firstLineIndent=21, alignment=TA_LEFT,
                                   spaceAfter=2, **base)
        self.item = ParagraphStyle("item", fontSize=10.5, leading=17, leftIndent=21, spaceAfter=2, **base)
        self.cell = ParagraphStyle("cell", fontSize=9.5, leading=13, **base)
        self.cell_center = ParagraphStyle("cell_center", fontSize=9.5, leading=13, alignment=TA_CENTER, **base)
        self.hash = ParagraphStyle("hash", fontName="Courier", fontSize=7.0, leading=10)
        self.font = font


class SignatureField(Flowable):
    """A visible, empty PDF signature field (/FT /Sig widget) with a dashed frame."""

    def __init__(self, name: str, label: str, font: str, width: float = SIG_BOX_WIDTH,
                 height: float = SIG_BOX_HEIGHT) -> None:
        super().__init__()
        self.name, self.label, self.font = name, label, font
        self.width, self.height = width, height

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        canv: Canvas = self.canv
        canv.saveState()
        canv.setStrokeColor(colors.Color(0.55, 0.55, 0.55))
        canv.setDash(3, 2)
        canv.rect(0, 0, self.width, self.height, stroke=1, fill=0)
        canv.setFillColor(colors.Color(0.6, 0.6, 0.6))
        canv.setFont(self.font, 9)
        canv.drawCentredString(self.width / 2, self.height / 2 - 3, self.label)
        canv.restoreState()
        x0, y0 = canv.absolutePosition(0, 0)
        x1, y1 = canv.absolutePosition(self.width, self.height)
        _add_signature_widget(canv, self.name, (x0, y0, x1, y1))


def _add_signature_widget(canv: Canvas, name: str, rect: tuple[float, float, float, float]) -> None:
    form = canv.acroForm
    doc = canv._doc
    widget = PDFDictionary({
        "Type": PDFName("Annot"),
        "Subtype": PDFName("Widget"),
        "FT": PDFName("Sig"),
        "T": PDFString(name),
        "Rect": PDFArray([round(v, 2) for v in rect]),
        "F": 4,  # print
        "P": doc.thisPageRef(),
    })
    canv._addAnnotation(widget)
    form.fields.append(form.getRef(widget))


def _table(rows: list[list[Flowable]], widths: list[float], *, header: bool = True) -> Table:
    table = Table(rows, colWidths=widths, hAlign="LEFT")
    commands = [
        ("GRID", (0, 0), (-1, -1), 0.5, colors.Color(0.4, 0.4, 0.4)),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.92, 0.92, 0.92)))
    table.setStyle(TableStyle(commands))
    return table


def _parties_block(terms: ContractTerms, st: _Styles, width: float) -> list[Flowable]:
    rows = [[Paragraph(t, st.cell_center) for t in ("当事人", "名称", "统一社会信用代码")]]
    for role in SIGNING_ORDER:
        party = terms.party(role)
        short, title = PARTY_TITLES[role]
        rows.append([Paragraph(escape(f"{short}（{title}）"), st.cell), Paragraph(escape(party.name), st.cell),
                     Paragraph(escape(party.uscc), st.cell)])
    first = 42 * mm
    third = 46 * mm
    return [_table(rows, [first, width - first - third, third]), Spacer(1, 8)]


def _attachments_block(terms: ContractTerms, st: _Styles, width: float) -> list[Flowable]:
    if not terms.attachments:
        return [Paragraph("（无附件）", st.item)]
    rows = [[Paragraph(t, st.cell_center) for t in ("序号", "附件名称", "SHA-256 摘要")]]
    for index, attachment in enumerate(terms.attachments, start=1):
        rows.append([Paragraph(str(index), st.cell_center), Paragraph(escape(attachment.name), st.cell),
                     Paragraph(attachment.sha256, st.hash)])
    first, third = 12 * mm, 104 * mm
    return [_table(rows, [first, width - first - third, third]), Spacer(1, 4)]


def _signatures_block(terms: ContractTerms, st: _Styles, width: float) -> list[Flowable]:
    labels, boxes, dates = [], [], []
    for role in SIGNING_ORDER:
        short, title = PARTY_TITLES[role]
        labels.append(Paragraph(escape(f"{short}（{title}）：{terms.party(role).name}"), st.cell))
        boxes.append(SignatureField(SIGNATURE_FIELDS[role], "电子签名处", st.font))
        dates.append(Paragraph("签署时间：以电子签名时间为准", st.cell))
    column = width / 3
    table = Table([labels, boxes, dates], colWidths=[column] * 3, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ALIGN", (0, 1), (-1, 1), "CENTER"),
        ("TOPPADDING", (0, 0), (-1, -1), 4),
        ("LEFTPADDING", (0, 0), (-1, -1), 4),
        ("RIGHTPADDING", (0, 0), (-1, -1), 4),
    ]))
    return [table]


_BLOCKS: dict[str, Callable[[ContractTerms, _Styles, float], list[Flowable]]] = {
    "parties": _parties_block,
    "attachments": _attachments_block,
    "signatures": _signatures_block,
}


def _fill(line_no: int, text: str, values: Mapping[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ContractError(f"template line {line_no}: unknown placeholder {{{name}}}")
        return escape(values[name])

    return _PLACEHOLDER.sub(sub, escape(text))


def _story(terms: ContractTerms, template: Template, st: _Styles, width: float) -> list[Flowable]:
    values = contract_values(terms)
    story: list[Flowable] = []
    seen: set[str] = set()
    for line_no, raw in template.lines:
        line = raw.strip()
        if not line:
            continue
        if directive := _DIRECTIVE.fullmatch(line):
            name = directive.group(1)
            if name not in _BLOCKS:
                raise ContractError(f"template line {line_no}: unknown block [[{name}]]")
            seen.add(name)
            block = _BLOCKS[name](terms, st, width)
            if name == "signatures":  # keep the line before the block on the same page
                tail = story.pop() if story else None
                block = [KeepTogether(([tail, Spacer(1, 6)] if tail else []) + block)]
            story.extend(block)
            continue
        if line.startswith("# "):
            story.append(Paragraph(_fill(line_no, line[2:].strip(), values), st.title))
        elif line.startswith("## "):
            story.append(Paragraph(_fill(line_no, line[3:].strip(), values), st.heading))
        elif _ITEM.match(line):
            story.append(Paragraph(_fill(line_no, line, values), st.item))
        elif story and isinstance(story[-1], Paragraph) and story[-1].style is st.title:
            story.append(Paragraph(_fill(line_no, line, values), st.meta))
        else:
            story.append(Paragraph(_fill(line_no, line, values), st.body))
    if "signatures" not in seen:
        raise ContractError("template has no [[signatures]] block: the contract could not be signed")
    return story


def render_contract(terms: ContractTerms, *, template: Path | str | Template | None = None,
                    font: str | Path | None = None) -> bytes:
    """The contract PDF. Pure and deterministic; CPU-bound (run it in a thread or process)."""
    tpl = template if isinstance(template, Template) else load_template(template or DEFAULT_TEMPLATE)
    font_name = register_cjk_font(font)
    st = _Styles(font_name)
    margin = 20 * mm
    width = A4[0] - 2 * margin
    title = f"应收账款保理合同 {terms.contract_no} 第{terms.version}版"
    footer_meta = f"合同编号 {terms.contract_no}｜第 {terms.version} 版｜模板 {tpl.template_id} {tpl.version}".strip()

    def build(total_pages: int | None) -> tuple[bytes, int]:
        buffer = io.BytesIO()
        doc = SimpleDocTemplate(
            buffer, pagesize=A4, leftMargin=margin, rightMargin=margin, topMargin=margin,
            bottomMargin=margin + 4 * mm, title=title, author="echain", subject="保理合同",
            creator="echain signing", invariant=1,
        )

        def footer(canv: Canvas, doc_: SimpleDocTemplate) -> None:
            canv.saveState()
            canv.setFont(font_name, 8)
            canv.setFillColor(colors.Color(0.35, 0.35, 0.35))
            page = canv.getPageNumber()
            pages = f"第 {page} 页 共 {total_pages} 页" if total_pages else f"第 {page} 页"
            canv.drawString(margin, margin - 2 * mm, footer_meta)
            canv.drawRightString(A4[0] - margin, margin - 2 * mm, pages)
            canv.restoreState()

        doc.build(_story(terms, tpl, st, width), onFirstPage=footer, onLaterPages=footer)
        return buffer.getvalue(), doc.page

    _, pages = build(None)
    pdf, pages_again = build(pages)
    if pages_again != pages:  # pragma: no cover - the footer never changes the flow
        raise ContractError("page count changed between layout passes")
    return pdf


def signature_field_names(roles: Iterable[str] = SIGNING_ORDER) -> list[str]:
    return [SIGNATURE_FIELDS[r] for r in roles]
