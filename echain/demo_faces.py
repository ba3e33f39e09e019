"""`echain demo --faces DIR`: the signers enroll and pass the head-turn check with real photos.

DIR holds one folder per person with that person's photos (the layout of ../shared/testdata/faces). For each
signer the demo plays the person in front of the phone: it uploads one photo as the ID-card portrait (the
enrollment reference) and answers the server's random head-turn challenge with frames chosen from the person's
photos and their mirror images, so that the yaw proxy moves the way the challenge asks. Photo sets rarely hold
a real head-turn sequence, so mirroring a turned photo stands in for turning the other way — which is exactly
why the README says the check stops a static photo and not a prepared set of photos.

The photos are analysed here with the server's own pipeline and options (biometric.pipeline), in a thread, to
choose the frames and to show the distances the server will compute; the server repeats all of it.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

from biometric import pipeline
from biometric.config import DEFAULT_MATCH_THRESHOLD, DEFAULT_MIN_FRAME_HASH_DISTANCE, DEFAULT_MIN_YAW_DELTA
from biometric.liveness import expected_sign

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
YAW_MARGIN = 0.01  # keep clear of the server's minimum: re-encoding moves landmarks by a pixel or so
DISTANCE_MARGIN = 0.05  # and of its match threshold
SEQUENCES = (("left", "right"), ("right", "left"))  # what biometric.liveness.random_sequence(2) can ask


class FacesError(Exception):
    """The photo folder cannot be used (the message is Chinese, shown to the demo's user)."""


@dataclass(frozen=True)
class Shot:
    """One candidate frame: a photo or its mirror image, as analysed by the server's selfie pipeline."""

    label: str
    data: bytes
    yaw: float
    face_hash: int
    distance: float  # to the person's reference


@dataclass
class FaceKit:
    """One person's reference (ID-card portrait) and the frames that can answer each challenge."""

    person: str
    reference_label: str
    reference: bytes
    shots: list[Shot] = field(default_factory=list)

    @property
    def can_answer(self) -> bool:
        """Whether the photos answer every challenge the server may issue."""
        return all(self.frames(seq) for seq in SEQUENCES)

    def frames(self, sequence: Sequence[str], min_yaw_delta: float = DEFAULT_MIN_YAW_DELTA) -> list[Shot] | None:
        """A neutral frame, then one per step, each turned the asked way; None when the photos cannot do it.

        Prefers the most frontal first frame, then the widest turns; never two frames the server would take
        for copies of one photo (same bytes, or face crops within DEFAULT_MIN_FRAME_HASH_DISTANCE bits).
        """
        need = min_yaw_delta + YAW_MARGIN
        best: tuple[tuple[float, float], tuple[Shot, ...]] | None = None
        for combo in itertools.permutations(self.shots, len(sequence) + 1):
            if any(pipeline.hamming(a.face_hash, b.face_hash) < DEFAULT_MIN_FRAME_HASH_DISTANCE + 2 or a.data == b.data
                   for a, b in itertools.combinations(combo, 2)):
                continue
            deltas = [expected_sign(d) * (b.yaw - a.yaw) for d, a, b in zip(sequence, combo, combo[1:], strict=False)]
            score = (-round(abs(combo[0].yaw), 2), min(deltas))
            if min(deltas) >= need and (best is None or score > best[0]):
                best = (score, combo)
        return list(best[1]) if best else None

    def any_frames(self, count: int) -> list[Shot] | None:
        """`count` distinct frames whatever their pose (an impostor's answer: refused on identity first)."""
        return self.shots[:count] if len(self.shots) >= count else None


def mirror(data: bytes) -> bytes:
    """The photo flipped left-right, as a JPEG (alpha flattened on white)."""
    image = Image.open(io.BytesIO(data))
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        image = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image.alpha_composite(rgba)
    out = io.BytesIO()
    image.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(out, "JPEG", quality=92)
    return out.getvalue()


def load_kit(folder: Path, threshold: float = DEFAULT_MATCH_THRESHOLD) -> FaceKit | None:
    """The person in `folder` (None without a usable one-face photo); the reference that answers the most."""
    photos = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix.lower() in PHOTO_SUFFIXES}
    frames = {label: (frame, pipeline.analyse(frame)) for name, data in photos.items()
              for label, frame in ((name, data), (f"{name}（镜像）", mirror(data)))}
    references = {name: pipeline.analyse(data, pipeline.REFERENCE) for name, data in photos.items()}
    # The ID-card portrait: try the most frontal usable photo first (ID photos face the camera).
    kits = []
    for ref_name in sorted((n for n, a in references.items() if a.ok), key=lambda n: abs(references[n].yaw or 0.0)):
        reference = references[ref_name].encoding or ()
        kit = FaceKit(folder.name, f"{folder.name}/{ref_name}", photos[ref_name])
        for label, (frame, a) in frames.items():
            if frame == photos[ref_name]:
                continue  # a selfie is never the ID-card image itself
            d = pipeline.distance(a.encoding or (), reference) if a.ok else threshold
            if a.yaw is not None and a.face_hash is not None and d < threshold - DISTANCE_MARGIN:
                kit.shots.append(Shot(f"{folder.name}/{label}", frame, a.yaw, a.face_hash, round(d, 3)))
        if kit.can_answer:
            return kit
        kits.append(kit)
    return max(kits, key=lambda k: len(k.shots), default=None)


@dataclass
class Album:
    """The people of a photo folder: who can sign (answers every challenge) and who cannot."""

    signers: list[FaceKit]
    others: list[FaceKit]
    unusable: list[str]

    def signer(self, index: int) -> FaceKit:
        """The photos the index-th signer presents (people are reused when there are fewer than signers)."""
        return self.signers[index % len(self.signers)]

    def impostor_for(self, kit: FaceKit, count: int) -> FaceKit | None:
        """Someone else whose photos can be held up instead of `kit`'s face."""
        return next((k for k in [*self.others, *self.signers] if k.person != kit.person and k.any_frames(count)), None)


def load_album(root: Path, threshold: float = DEFAULT_MATCH_THRESHOLD) -> Album:
    """Analyse every person folder under `root` (blocking: dlib; run it in a thread)."""
    if not root.is_dir():
        raise FacesError(f"照片目录不存在：{root}")
    album = Album([], [], [])
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        kit = load_kit(folder, threshold)
        if kit is None:
            album.unusable.append(folder.name)
        else:
            (album.signers if kit.can_answer else album.others).append(kit)
    if not album.signers:
        raise FacesError(f"{root} 下没有可用于签署演示的人员照片：每人一个子目录，要有一张正面单人照作为身份证人像，"
                         "并能从其照片（及镜像）中选出向左、向右转头幅度足够的三帧")
    return album
