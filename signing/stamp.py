"""The visible appearance of a signature: a small red-framed stamp with Chinese text.

pyHanko's own text stamps need a font file for non-Latin text. This stamp instead references the standard
Adobe-GB1 CID font STSong-Light (not embedded, like the contract body), so Chinese names render without any
font file. Latin characters are given half width.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.content import ResourceType
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp.base import BaseStamp, BaseStampStyle

FONT_RESOURCE = "/EchainSong"
_RED = (0.75, 0.08, 0.08)


def _cid_font() -> generic.DictionaryObject:
    descriptor = generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/FontDescriptor"),
        pdf_name("/FontName"): pdf_name("/STSong-Light"),
        pdf_name("/Flags"): generic.NumberObject(6),
        pdf_name("/FontBBox"): generic.ArrayObject(generic.NumberObject(v) for v in (-25, -254, 1000, 880)),
        pdf_name("/ItalicAngle"): generic.NumberObject(0),
        pdf_name("/Ascent"): generic.NumberObject(752),
        pdf_name("/Descent"): generic.NumberObject(-271),
        pdf_name("/CapHeight"): generic.NumberObject(737),
        pdf_name("/StemV"): generic.NumberObject(58),
    })
    descendant = generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Font"),
        pdf_name("/Subtype"): pdf_name("/CIDFontType0"),
        pdf_name("/BaseFont"): pdf_name("/STSong-Light"),
        pdf_name("/CIDSystemInfo"): generic.DictionaryObject({
            pdf_name("/Registry"): pdf_string("Adobe"),
            pdf_name("/Ordering"): pdf_string("GB1"),
            pdf_name("/Supplement"): generic.NumberObject(2),
        }),
        pdf_name("/FontDescriptor"): descriptor,
        pdf_name("/DW"): generic.NumberObject(1000),
        # CIDs 1-95 are the printable ASCII glyphs in Adobe-GB1: give them half width
        pdf_name("/W"): generic.ArrayObject(
            [generic.NumberObject(1), generic.NumberObject(95), generic.NumberObject(500)]
        ),
    })
    return generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Font"),
        pdf_name("/Subtype"): pdf_name("/Type0"),
        pdf_name("/BaseFont"): pdf_name("/STSong-Light-UniGB-UCS2-H"),
        pdf_name("/Encoding"): pdf_name("/UniGB-UCS2-H"),
        pdf_name("/DescendantFonts"): generic.ArrayObject([descendant]),
    })


def _em_width(text: str) -> float:
    return sum(0.5 if " " <= ch <= "~" else 1.0 for ch in text)


def _encode(text: str) -> bytes:
    # UCS-2: characters outside the BMP cannot be shown with this CMap; replace them
    safe = "".join(ch if ord(ch) <= 0xFFFF else "?" for ch in text)
    return b"<" + safe.encode("utf-16-be").hex().upper().encode() + b">"


@dataclass(frozen=True)
class ChineseStampStyle(BaseStampStyle):
    """Lines of text (first line larger) centred in a red frame on a white ground."""

    lines: tuple[str, ...] = ()
    font_size: float = 8.5
    border_width: int = 1
    border_color: tuple[float, float, float] | None = _RED

    def create_stamp(self, writer: BasePdfFileWriter, box: layout.BoxConstraints,
                     text_params: dict) -> ChineseStamp:
        return ChineseStamp(writer, self, box)


class ChineseStamp(BaseStamp):
    style: ChineseStampStyle

    def _render_inner_content(self) -> list[bytes]:
        font_ref = self.writer.add_object(_cid_font())
        self.set_resource(ResourceType.FONT, pdf_name(FONT_RESOURCE), font_ref)
        width, height = self.box.width, self.box.height
        pad = 4.0
        lines = [line for line in self.style.lines if line]
        sizes = []
        for index, line in enumerate(lines):
            size = self.style.font_size * (1.25 if index == 0 else 1.0)
            fits = (width - 2 * pad) / max(_em_width(line), 1.0)
            sizes.append(max(4.0, min(size, fits)))
        leading = [s * 1.3 for s in sizes]
        total = sum(leading)
        y = height / 2 + total / 2
        ops = [b"q 1 1 1 rg 0 0 %g %g re f Q" % (width, height)]  # white ground hides the field's placeholder
        ops.append(b"q %g %g %g rg BT" % _RED)
        for line, size, lead in zip(lines, sizes, leading, strict=True):
            y -= lead
            x = (width - _em_width(line) * size) / 2
            ops.append(b"/%s %g Tf 1 0 0 1 %g %g Tm %s Tj" % (
                FONT_RESOURCE[1:].encode(), size, round(x, 2), round(y + (lead - size) / 2, 2), _encode(line)))
        ops.append(b"ET Q")
        return ops
