"""Pure image work for face checks; it runs inside the `FacePool` worker processes, never on the event loop.

Everything here is synchronous and self-contained (bytes in, plain picklable data out): decode → normalise
EXIF orientation and alpha → downsize → HOG detection → 5-point landmarks → 128-d encoding.

Models (DESIGN.md §3 "Faces"): only dlib's 5-point landmark model and the ResNet encoder are ever loaded.
The 68-point model (also shipped in face_recognition_models) is trained on iBUG 300-W, whose licence excludes
commercial use. That is why this module does not import `face_recognition`: its `api` module loads the
68-point predictor at import time. We call dlib directly, exactly as `face_recognition.face_encodings(...,
model="small")` does, and read only the two file paths we need from the face_recognition_models package
directory (without importing it, which would also pull in the deprecated pkg_resources).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Model files we allow ourselves to load. Nothing else from face_recognition_models is ever opened.
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
ENCODER = "dlib_face_recognition_resnet_model_v1.dat"
ALLOWED_MODEL_FILES = frozenset({LANDMARKS_5, ENCODER})

# Refuse absurd images before decoding them (a 20000×20000 PNG is tiny on disk and 1.2 GB in memory).
MAX_SOURCE_PIXELS = 40_000_000
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG"})

# Outcome codes of one analysis; the use cases turn them into Chinese messages.
OK = "ok"
NO_FACE = "no_face"
MULTIPLE_FACES = "multiple_faces"
FACE_TOO_SMALL = "face_too_small"
BAD_IMAGE = "bad_image"
UNSUPPORTED_IMAGE = "unsupported_image"
IMAGE_TOO_LARGE = "image_too_large"


@dataclass(frozen=True)
class AnalyseOptions:
    """How to look for the face in one image."""

    max_side: int = 640  # longest side after downsizing (DESIGN.md §3 timings are per 640×480)
    upsample: int = 0  # HOG at upsample 0: ~30 ms per 640×480; upsample 1 costs ~4×
    retry_upsample: int | None = None  # try again at this upsample when nothing was found (references only)
    min_face: int = 80  # smallest accepted face box side, in pixels of the downsized image
    preview: bool = False  # also return the normalised image as a metadata-free JPEG (operator review)


# Selfies: fast path, the face fills most of the frame.
SELFIE = AnalyseOptions()
# References (ID-card portrait, reference photo): rare, so afford more pixels and a retry at upsample 1.
REFERENCE = AnalyseOptions(max_side=1280, upsample=0, retry_upsample=1, min_face=60)


@dataclass
class FaceAnalysis:
    """What one image showed. `status` is OK or one of the outcome codes above; nothing else is raised."""

    status: str
    faces: int = 0
    width: int = 0
    height: int = 0
    box: tuple[int, int, int, int] | None = None  # (top, right, bottom, left) in the downsized image
    landmarks: tuple[tuple[int, int], ...] = ()  # dlib 5-point order: 0,1 one eye; 2,3 the other; 4 nose
    encoding: tuple[float, ...] | None = None  # 128-d, Euclidean distance compares two faces
    yaw: float | None = None  # see `yaw_from_landmarks`
    face_hash: int | None = None  # 64-bit difference hash of the face crop (perceptual duplicate check)
    sha256: str = ""  # of the uploaded bytes (exact duplicate check)
    preview: bytes | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Exactly one usable face was found and encoded."""
        return self.status == OK

    @property
    def face_size(self) -> int:
        """The smaller side of the face box (0 without a face)."""
        if self.box is None:
            return 0
        top, right, bottom, left = self.box
        return min(right - left, bottom - top)


class ImageError(Exception):
    """The bytes are not an image we accept; `code` is one of the outcome codes."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# ---- models ---------------------------------------------------------------------------------------


def model_path(name: str) -> Path:
    """Where a model file lives; only the 5-point predictor and the encoder may be asked for."""
    if name not in ALLOWED_MODEL_FILES:
        raise ValueError(f"model {name!r} is not allowed (68-point landmarks are non-commercial)")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / name


@functools.cache
def _models() -> tuple[Any, Any, Any]:
    import dlib  # imported here: the parent process (event loop) never needs it

    detector = dlib.get_frontal_face_detector()  # HOG + linear SVM; built into dlib, no model file
    landmarks = dlib.shape_predictor(str(model_path(LANDMARKS_5)))
    encoder = dlib.face_recognition_model_v1(str(model_path(ENCODER)))
    return detector, landmarks, encoder


_START_BARRIER: Any = None


WORKER_NICENESS = 10  # how much lower than the web process a face worker runs


def warm(barrier: Any = None) -> None:
    """Process-pool initializer: lower the worker's CPU priority, load the models, run one tiny detection."""
    import dlib

    global _START_BARRIER
    _START_BARRIER = barrier
    # Face work is batch work next to a latency-sensitive event loop: on a machine with few cores a busy pool
    # would otherwise take the CPU from the web process (bench/face.py measures a JSON endpoint's p99 under load).
    os.nice(WORKER_NICENESS)
    detector, landmarks, encoder = _models()
    blank = np.full((100, 100, 3), 127, dtype=np.uint8)
    detector(blank, 0)
    rect = dlib.rectangle(10, 10, 90, 90)
    shape = landmarks(blank, rect)
    encoder.compute_face_descriptor(blank, shape, 1)


def worker_info(timeout: float = 60.0) -> dict[str, Any]:
    """Which worker answered. At start-up every worker waits at the pool's barrier, so N calls are answered
    by N different, warmed workers."""
    _models()
    if _START_BARRIER is not None:
        _START_BARRIER.wait(timeout)
    return {"pid": os.getpid()}


# ---- decoding -------------------------------------------------------------------------------------


def decode(data: bytes, max_side: int) -> np.ndarray:
    """JPEG/PNG bytes → contiguous RGB uint8 array, upright (EXIF), alpha flattened on white, ≤ max_side."""
    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in ACCEPTED_FORMATS:
            raise ImageError(UNSUPPORTED_IMAGE)
        if image.width * image.height > MAX_SOURCE_PIXELS:
            raise ImageError(IMAGE_TOO_LARGE)
        if image.format == "JPEG":
            image.draft("RGB", (max_side, max_side))  # DCT scaling: decode a smaller image directly
        image = ImageOps.exif_transpose(image)  # phones store portrait photos sideways plus an EXIF flag
        image = _to_rgb(image)
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(IMAGE_TOO_LARGE) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(BAD_IMAGE) from exc
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit greyscale PNG
        image = image.convert("I").point(lambda v: v / 256).convert("L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        # Transparent pixels carry arbitrary colour values; flatten onto white like a viewer would.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        image = background
    return image.convert("RGB")


# ---- geometry -------------------------------------------------------------------------------------


def yaw_from_landmarks(points: Sequence[tuple[float, float]]) -> float:
    """Head yaw proxy from 5 landmarks: the nose's offset from the eye midpoint along the eye line,
    divided by the distance between the eye centres.

    0 is frontal. Positive means the nose points towards the image's right, i.e. in an un-mirrored photo the
    person turned to *their* left. A planar photo tilted in front of the camera hardly moves the nose relative
    to the eyes (the face has no depth), which is what the liveness check relies on.
    """
    p = np.asarray(points, dtype=float)
    eye_a, eye_b = (p[0] + p[1]) / 2, (p[2] + p[3]) / 2
    # Orient the eye axis left → right in the image so the sign does not depend on dlib's point order.
    left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    axis = right - left
    inter_ocular = float(np.linalg.norm(axis))
    if inter_ocular < 1e-6:
        return 0.0
    middle = (left + right) / 2
    return float(np.dot(p[4] - middle, axis / inter_ocular) / inter_ocular)


def difference_hash(gray: np.ndarray) -> int:
    """64-bit dHash of a greyscale crop: robust to re-encoding and small shifts, not to a real head turn."""
    small = Image.fromarray(gray).resize((9, 8), Image.Resampling.BILINEAR)
    pixels = np.asarray(small, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    """Differing bits between two hashes."""
    return (a ^ b).bit_count()


def distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Euclidean distance between two encodings (what face_recognition.face_distance computes)."""
    return float(np.linalg.norm(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)))


# ---- the pipeline ---------------------------------------------------------------------------------


def analyse(data: bytes, options: AnalyseOptions = SELFIE) -> FaceAnalysis:
    """Find exactly one face in an image and encode it; problems come back as a status, never raised."""
    started = time.perf_counter()
    sha = hashlib.sha256(data).hexdigest()
    try:
        rgb = decode(data, options.max_side)
    except ImageError as exc:
        return FaceAnalysis(status=exc.code, sha256=sha)
    timings = {"decode": _ms(started)}
    height, width = rgb.shape[:2]
    result = FaceAnalysis(status=NO_FACE, width=width, height=height, sha256=sha, timings_ms=timings)
    if options.preview:
        result.preview = _jpeg(rgb)
    detector, landmarks, encoder = _models()
    t = time.perf_counter()
    rects = list(detector(rgb, options.upsample))
    if not rects and options.retry_upsample is not None:
        rects = list(detector(rgb, options.retry_upsample))
    timings["detect"] = _ms(t)
    result.faces = len(rects)
    if not rects:
        return result
    if len(rects) > 1:
        result.status = MULTIPLE_FACES
        return result
    rect = rects[0]
    result.box = (max(rect.top(), 0), min(rect.right(), width), min(rect.bottom(), height), max(rect.left(), 0))
    if result.face_size < options.min_face:
        result.status = FACE_TOO_SMALL
        return result
    t = time.perf_counter()
    shape = landmarks(rgb, rect)
    timings["landmarks"] = _ms(t)
    result.landmarks = tuple((pt.x, pt.y) for pt in shape.parts())
    result.yaw = yaw_from_landmarks(result.landmarks)
    t = time.perf_counter()
    result.encoding = tuple(float(v) for v in encoder.compute_face_descriptor(rgb, shape, 1))
    timings["encode"] = _ms(t)
    top, right, bottom, left = result.box
    result.face_hash = difference_hash(_gray(rgb[top:bottom, left:right]))
    result.status = OK
    timings["total"] = _ms(started)
    return result


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("L"))


def _jpeg(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=85)  # a fresh file: no EXIF, no GPS, no maker notes
    return out.getvalue()


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def is_finite_encoding(encoding: Sequence[float] | None) -> bool:
    """A usable 128-d encoding."""
    return encoding is not None and len(encoding) == 128 and all(math.isfinite(v) for v in encoding)
