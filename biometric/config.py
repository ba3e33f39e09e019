"""Face-check settings and why their defaults are what they are.

Match threshold (Euclidean distance between two 128-d dlib encodings; accept when distance ≤ threshold)
------------------------------------------------------------------------------------------------------
dlib's ResNet encoder was trained so that 0.6 separates people on LFW; that is the radius it was *trained*
on, not a measured false-accept rate for our users, and published evaluations show such models match East
Asian faces falsely more often (DESIGN.md §3). A false accept here lets someone sign a factoring contract
in another person's name, while a false reject costs a retake, so we default to a stricter 0.5.

Measured with this package's own pipeline (`biometric.pipeline.SELFIE`: longest side 640, HOG at
upsample 0, 5-point landmarks, 1 jitter; obama3.jpg and john1.jpeg at the 1280-px `REFERENCE` setting, their
faces being under 80 px at 640) on the real photos in ../shared/testdata/faces (8 people, 13 single-face
images; tests/test_biometric_pipeline.py re-measures every number below):

- same person, 10 pairs: 0.068 (the same photo as JPEG vs RGBA PNG), 0.324, 0.357, 0.365, 0.385, 0.407,
  0.412, 0.435, 0.442, and 0.523 (Alex Lacamoire: a video frame vs a studio portrait);
- different people, 68 pairs: minimum 0.709 (Lin-Manuel Miranda vs Barack Obama), then 0.711, 0.712, 0.719.

So 0.5 accepts 9 of 10 genuine pairs and keeps a 0.21 margin below the closest impostor pair; 0.6 would
accept all 10 with a 0.11 margin. Eight Western celebrities are far too few to estimate a false-accept
rate, and none of them is East Asian: re-measure on consenting users' pairs before lowering strictness.

Liveness (head-turn challenge, see biometric.liveness)
------------------------------------------------------
The yaw proxy (nose offset from the eye midpoint / inter-ocular distance) of a *flat* photo tilted up to
a strong keystone (one side 60 % shorter) moved by at most 0.098 on four test photos; a mirror flip of a
slightly turned face (what a real turn to the other side looks like) moved it by 0.28 (−0.130 → +0.148). A deliberate head
turn of 20–30° is expected around 0.2–0.3. Default minimum change per step: 0.12. Calibrate both on real
phone captures before production.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

DEFAULT_MATCH_THRESHOLD = 0.5
DEFAULT_SELFIE_MAX_BYTES = 3 * 1024 * 1024  # a 12-MP phone JPEG is 2–4 MB; we downsize to 640 px anyway
DEFAULT_MIN_YAW_DELTA = 0.12
DEFAULT_MIN_FRAME_HASH_DISTANCE = 6  # bits of 64; re-encodings of one photo measured 0–2


def default_pool_size() -> int:
    """One worker per spare core, at least one (the event loop keeps the remaining core)."""
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True)
class BiometricConfig:
    """Everything the face use cases are configured with (constructor parameters, no globals)."""

    match_threshold: float = DEFAULT_MATCH_THRESHOLD
    selfie_max_bytes: int = DEFAULT_SELFIE_MAX_BYTES
    pool_size: int = 1
    min_yaw_delta: float = DEFAULT_MIN_YAW_DELTA
    min_frame_hash_distance: int = DEFAULT_MIN_FRAME_HASH_DISTANCE
    mirrored_selfies: bool = False  # True if the client sends mirror-image (preview-style) frames
    warm_at_startup: bool = True  # False: the first face job starts the pool (dev server, tests)
    challenge_steps: int = 2  # head turns per challenge (frames = steps + 1)
    challenge_ttl: int = 120  # seconds to capture and upload the frames
    ticket_ttl: int = 300  # a signing ticket lives 5 minutes
    max_failures: int = 5  # failed verifications …
    failure_window: int = 3600  # … within this many seconds lock the person out for the same period
    review_photo_ttl: int = 72 * 3600  # a reference photo waits this long (encrypted) for an operator

    def __post_init__(self) -> None:
        if not 0.2 <= self.match_threshold <= 0.6:
            raise ValueError("face match threshold must be between 0.2 and 0.6 (0.6 is the model's training radius)")
        if self.pool_size < 1:
            raise ValueError("face pool size must be at least 1")
        if self.challenge_steps < 1:
            raise ValueError("a liveness challenge needs at least one step")

    @classmethod
    def from_settings(cls, settings: Any) -> BiometricConfig:
        """Read the face_* fields of echain.settings.Settings when present, else the defaults."""
        warm = getattr(settings, "face_pool_warm", None)
        if warm is None:  # unset: production pays the ~2 s start-up; dev servers and test apps start on first use
            warm = getattr(settings, "env", "dev") == "production"
        return cls(
            match_threshold=float(getattr(settings, "face_match_threshold", DEFAULT_MATCH_THRESHOLD)),
            selfie_max_bytes=int(getattr(settings, "face_selfie_max_bytes", DEFAULT_SELFIE_MAX_BYTES)),
            pool_size=int(getattr(settings, "face_pool_size", 0) or default_pool_size()),
            min_yaw_delta=float(getattr(settings, "face_min_yaw_delta", DEFAULT_MIN_YAW_DELTA)),
            mirrored_selfies=bool(getattr(settings, "face_mirrored_selfies", False)),
            warm_at_startup=bool(warm),
        )
