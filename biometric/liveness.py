"""Liveness, as far as 5 landmarks honestly allow: a random head-turn challenge over several frames.

The server issues a random sequence ("turn left, then right") with a single-use id (the nonce), kept in
Redis for two minutes. The client uploads one neutral frame plus one frame per step. The server checks:

- every frame shows exactly one face, the same person in every frame, matching the enrolled reference;
- no two frames are copies: identical bytes (SHA-256) or the same face crop after re-encoding (64-bit
  difference hash within a few bits);
- each step turned the head the asked way: the yaw proxy (`pipeline.yaw_from_landmarks`: the nose's offset
  from the eye midpoint / inter-ocular distance) changed by at least `min_yaw_delta` in that direction,
  compared with the previous frame.

What this stops: a single static photo, held still, moved or tilted in front of the camera (a flat picture
has no depth, so the nose does not move against the eyes; measured ≤ 0.10 against a 0.12 minimum).
What it does NOT stop: a video of the person turning their head, a set of photos of them looking left and
right, a 3-D mask, or an injected camera stream. Blink detection would need the 68-point model, whose
licence excludes commercial use (DESIGN.md §3). For strong assurance use WeChat's own face verification
(`biometric.wechat_face`), which checks against the national ID photo with its own liveness detection.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from biometric.errors import LivenessFailed
from biometric.pipeline import FaceAnalysis, hamming
from workflow.errors import Conflict, InvalidInput

DIRECTIONS = {"left": "向左转头", "right": "向右转头"}
_PREFIX = "echain:bio:challenge:"


@dataclass(frozen=True)
class Challenge:
    """A head-turn sequence for one person; `id` is the single-use nonce."""

    id: str
    person_id: int
    sequence: tuple[str, ...]
    expires_in: int

    @property
    def frames_required(self) -> int:
        """A neutral frame, then one per step."""
        return len(self.sequence) + 1

    @property
    def instructions(self) -> str:
        """The steps in Chinese, e.g. "正对镜头拍摄一张，然后向左转头，再向右转头，每个动作各拍一张"."""
        steps = "，再".join(DIRECTIONS[d] for d in self.sequence)
        return f"请先正对镜头拍摄一张，然后{steps}，每个动作各拍一张（共 {self.frames_required} 张）"


def random_sequence(steps: int, rng: secrets.SystemRandom | None = None) -> tuple[str, ...]:
    """A random first direction, then alternating (turning the same way twice is not a new movement)."""
    rng = rng or secrets.SystemRandom()
    first = rng.choice(("left", "right"))
    other = "right" if first == "left" else "left"
    return tuple(first if i % 2 == 0 else other for i in range(steps))


async def issue_challenge(redis: Redis, person_id: int, *, steps: int = 2, ttl: int = 120,
                          sequence: Sequence[str] | None = None) -> Challenge:
    """Store a new challenge (random unless `sequence` is given) for `ttl` seconds."""
    seq = tuple(sequence) if sequence is not None else random_sequence(steps)
    if not seq or any(d not in DIRECTIONS for d in seq):
        raise ValueError(f"invalid challenge sequence {seq!r}")
    challenge = Challenge(secrets.token_urlsafe(18), int(person_id), seq, ttl)
    record = {"person": challenge.person_id, "sequence": list(seq), "issued_at": time.time()}
    await redis.set(_PREFIX + challenge.id, json.dumps(record), ex=ttl)
    return challenge


async def take_challenge(redis: Redis, challenge_id: str, person_id: int) -> Challenge:
    """Consume a challenge (GETDEL: single use); only its owner can use it."""
    if not challenge_id or len(challenge_id) > 64:
        raise InvalidInput("缺少动作指令编号（challenge_id）", code="challenge_required")
    raw = await redis.getdel(_PREFIX + challenge_id)
    record = json.loads(raw) if raw else None
    if record is None or record.get("person") != int(person_id):
        raise Conflict("动作指令已过期或已使用，请重新获取动作指令后再拍摄", code="challenge_expired")
    return Challenge(challenge_id, int(person_id), tuple(record["sequence"]), 0)


def expected_sign(direction: str, *, mirrored: bool = False) -> int:
    """+1 when the yaw proxy should grow for this direction, −1 when it should shrink.

    A person turning to *their* left moves the nose towards the right of an un-mirrored photo (+1).
    """
    sign = 1 if direction == "left" else -1
    return -sign if mirrored else sign


@dataclass
class LivenessReport:
    """The measured yaw per frame and change per step (kept in the attempt record)."""

    yaws: list[float] = field(default_factory=list)
    deltas: list[float] = field(default_factory=list)
    min_hash_distance: int | None = None


def check_liveness(frames: Sequence[FaceAnalysis], sequence: Sequence[str], *, min_yaw_delta: float,
                   min_hash_distance: int, mirrored: bool = False) -> LivenessReport:
    """Raise `LivenessFailed` unless the analysed frames show distinct images turning as asked."""
    if len(frames) != len(sequence) + 1:
        raise InvalidInput(f"请按动作指令上传 {len(sequence) + 1} 张照片", code="frame_count")
    report = LivenessReport(yaws=[float(f.yaw or 0.0) for f in frames])
    _refuse_copies(frames, min_hash_distance, report)
    for step, direction in enumerate(sequence):
        delta = report.yaws[step + 1] - report.yaws[step]
        report.deltas.append(round(delta, 4))
        if delta * expected_sign(direction, mirrored=mirrored) < min_yaw_delta:
            raise LivenessFailed(
                f"第 {step + 1} 个动作未完成：请{DIRECTIONS[direction]}（幅度稍大一些）后重新拍摄",
                code="liveness_direction", details={"step": step + 1, "direction": direction},
            )
    return report


def refuse_identical(images: Sequence[bytes]) -> None:
    """Exact copies (same bytes) can only come from uploading one photo several times."""
    if len({bytes(i) for i in images}) != len(images):
        raise LivenessFailed("检测到重复的照片：请按提示实时拍摄，不能使用同一张照片", code="static_photo")


def _refuse_copies(frames: Sequence[FaceAnalysis], min_hash_distance: int, report: LivenessReport) -> None:
    if len({f.sha256 for f in frames}) != len(frames):
        raise LivenessFailed("检测到重复的照片：请按提示实时拍摄，不能使用同一张照片", code="static_photo")
    hashes = [f.face_hash for f in frames if f.face_hash is not None]
    closest = min((hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1:]), default=None)
    report.min_hash_distance = closest
    if closest is not None and closest < min_hash_distance:
        raise LivenessFailed("检测到几乎相同的照片：请按提示转头，每个动作实时拍摄一张", code="static_photo")
