"""Chinese fonts for the contract PDF.

Default: reportlab's built-in CID font STSong-Light (Adobe-GB1). It needs no font file and is not embedded, so
the contract renders identically (and hashes identically) on every machine; PDF viewers substitute a
Song/Ming face. Optionally a TrueType CJK font can be embedded instead (e.g. Debian's fonts-wqy-zenhei):
pass its path, or "auto" to use the first one found. reportlab cannot embed CFF-flavoured OpenType
(fonts-noto-cjk's .ttc), so candidates it cannot load are skipped.
"""

from __future__ import annotations

import threading
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont

BUILTIN_CJK_FONT = "STSong-Light"
AUTO = "auto"
SYSTEM_CJK_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/arphic/ukai.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansSC-Regular.ttf",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
_lock = threading.Lock()
_loaded: dict[str, str | None] = {}


def _register_builtin() -> str:
    if BUILTIN_CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(BUILTIN_CJK_FONT))
    return BUILTIN_CJK_FONT


def _register_ttf(path: Path) -> str | None:
    """Register a TrueType CJK font under a name derived from its file; None if reportlab cannot use it."""
    key = str(path)
    if key in _loaded:
        return _loaded[key]
    name: str | None = "EchainCJK-" + path.stem
    try:
        font = TTFont(name, key, subfontIndex=0)
        if ord("合") not in (font.face.charToGlyph or {}):  # not a CJK font after all
            name = None
        else:
            pdfmetrics.registerFont(font)
    except (TTFError, OSError, ValueError):
        name = None
    _loaded[key] = name
    return name


def find_system_cjk_font() -> Path | None:
    """The first installed TrueType CJK font reportlab can embed, if any."""
    for candidate in SYSTEM_CJK_FONT_CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            with _lock:
                if _register_ttf(path):
                    return path
    return None


def register_cjk_font(font: str | Path | None = None) -> str:
    """Register and return the reportlab font name to use.

    None or "STSong-Light": the built-in CID font. "auto": a system TrueType CJK font when one is installed,
    else the built-in one. A path: that TrueType font (ValueError if reportlab cannot use it).
    """
    with _lock:
        if font is None or font == BUILTIN_CJK_FONT:
            return _register_builtin()
        if font == AUTO:
            for candidate in SYSTEM_CJK_FONT_CANDIDATES:
                path = Path(candidate)
                if path.is_file() and (name := _register_ttf(path)):
                    return name
            return _register_builtin()
        path = Path(font)
        name = _register_ttf(path) if path.is_file() else None
        if name is None:
            raise ValueError(f"{path} is not a TrueType CJK font reportlab can embed")
        return name
