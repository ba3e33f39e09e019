"""Shared helpers for the face tests (no tests here): the real photos, synthetic head turns, one warm pool.

The photos live outside the repository (../shared/testdata/faces, see its README.md); every test that needs
them is skipped with a clear reason when they are absent.
"""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from biometric.pool import FacePool
from tests.conftest import SHARED

FACES = SHARED / "testdata" / "faces"
HAVE_FACES = (FACES / "obama" / "obama.jpg").is_file()
needs_faces = pytest.mark.skipif(
    not HAVE_FACES, reason=f"real face photos not found at {FACES} (../shared/testdata/faces, outside the repo)"
)


def photo(name: str) -> bytes:
    """A test photo's bytes, e.g. photo("obama/obama.jpg")."""
    return (FACES / name).read_bytes()


def rgb(data: bytes) -> Image.Image:
    """Decode to an RGB image (alpha flattened on white)."""
    image = Image.open(io.BytesIO(data))
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        white.alpha_composite(image)
        image = white
    return image.convert("RGB")


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    """Encode as JPEG."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def png(image: Image.Image) -> bytes:
    """Encode as PNG."""
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def downsized(data: bytes, max_side: int) -> bytes:
    """A smaller JPEG of the same photo (e.g. an ID-card image under the upload limit)."""
    image = rgb(data)
    image.thumbnail((max_side, max_side))
    return jpeg(image)


def mirrored(data: bytes) -> bytes:
    """The photo flipped left-right: a face turned one way now looks turned the other way."""
    return jpeg(rgb(data).transpose(Image.Transpose.FLIP_LEFT_RIGHT))


def tilted(data: bytes, k: float, *, right_side: bool = True) -> bytes:
    """A flat photo seen at an angle (keystone): one side `k` (fraction of the height) shorter."""
    image = rgb(data)
    if not right_side:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    w, h = image.size
    d = k * h / 2
    out = image.transform((w, h), Image.Transform.QUAD, (0, 0, 0, h, w, h + d, w, -d), Image.Resampling.BILINEAR)
    if not right_side:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return jpeg(out)


def nose_pushed(data: bytes, centre_x: float, width: float, shift: float) -> bytes:
    """Shift a narrow vertical band around `centre_x` sideways by `shift` px (Gaussian falloff): the nose
    moves against the eyes the way it does in a small head turn (identity suffers, so keep it small)."""
    pixels = np.asarray(rgb(data))
    x = np.arange(pixels.shape[1], dtype=float)
    source = np.clip(np.rint(x - shift * np.exp(-((x - centre_x) ** 2) / (2 * width**2))), 0, pixels.shape[1] - 1)
    return jpeg(Image.fromarray(np.ascontiguousarray(pixels[:, source.astype(int)])))


def head_turn_frames(sequence: tuple[str, ...], *, rgba: bool = False) -> list[bytes]:
    """Three real frames of Obama whose yaw proxy moves as `sequence` asks (un-mirrored convention).

    Measured yaw: obama.jpg −0.019, its mirror +0.03, obama2.jpg −0.13, its mirror +0.145. "left" means the
    person turns to their left, i.e. the nose moves towards the image's right (yaw grows). With `rgba`, the
    turned frame is the same photo as a 32-bit RGBA PNG.
    """
    front, front_mirror = photo("obama/obama.jpg"), mirrored(photo("obama/obama.jpg"))
    turned = photo("obama/32bit.png" if rgba else "obama/obama2.jpg")
    turned_mirror = mirrored(turned)
    if sequence == ("left", "right"):
        return [front, turned_mirror, turned]
    if sequence == ("right", "left"):
        return [front_mirror, turned, turned_mirror]
    raise ValueError(f"no synthetic frames for {sequence}")


# ---- one warm pool for the whole session -------------------------------------------------------------

_POOL: FacePool | None = None


def shared_pool() -> FacePool:
    """A started 1-worker FacePool shared by every test (spawning and warming costs ~2 s)."""
    global _POOL
    if _POOL is None:
        pool = FacePool(1, timeout=60.0)
        # The pool holds no loop-bound state, so every test's loop can use it; concurrent.futures stops the
        # workers at interpreter exit.
        asyncio.run(pool.start())
        _POOL = pool
    return _POOL
