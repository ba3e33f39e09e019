"""The pure image pipeline on real photos (run in this process: these functions are what the workers run)."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from biometric import pipeline
from biometric.config import DEFAULT_MATCH_THRESHOLD
from tests.test_biometric_support import (
    FACES,
    head_turn_frames,
    jpeg,
    mirrored,
    needs_faces,
    nose_pushed,
    photo,
    png,
    rgb,
    tilted,
)

pytestmark = needs_faces

# Every single-face photo in ../shared/testdata/faces that the selfie pipeline accepts (two are too small
# at 640 px: obama3.jpg and john1.jpeg, whose faces are 72–73 px).
SINGLE_FACES = [
    "obama/obama.jpg", "obama/obama2.jpg", "obama/32bit.png", "biden/biden.jpg", "biden/biden2.jpg",
    "kit_harington/john2.jpeg", "rose_leslie/img1.jpg", "rose_leslie/img2.jpg",
    "alex_lacamoire/alex-lacamoire.png", "alex_lacamoire/img1.jpg", "lin_manuel_miranda/lin-manuel-miranda.png",
]


@pytest.fixture(scope="module")
def encodings() -> dict[str, tuple[float, ...]]:
    result = {}
    for name in SINGLE_FACES:
        analysis = pipeline.analyse(photo(name))
        assert analysis.ok, (name, analysis.status)
        result[name] = analysis.encoding
    # The two small faces, encoded as references (1280 px) so every person has at least two photos.
    for name in ("obama/obama3.jpg", "kit_harington/john1.jpeg"):
        analysis = pipeline.analyse(photo(name), pipeline.REFERENCE)
        assert analysis.ok, (name, analysis.status)
        result[name] = analysis.encoding
    return result


def person(name: str) -> str:
    return name.split("/")[0]


def test_same_person_accepted_and_different_people_rejected_at_the_default_threshold(encodings) -> None:
    same, different = [], []
    for a, b in itertools.combinations(sorted(encodings), 2):
        d = pipeline.distance(encodings[a], encodings[b])
        (same if person(a) == person(b) else different).append((round(d, 3), a, b))
    same.sort()
    different.sort()
    # The numbers quoted in biometric/config.py (± measurement noise across dlib builds).
    assert len(same) == 10 and len(different) == 68
    assert max(d for d, *_ in same) < 0.54, same
    assert min(d for d, *_ in different) > 0.69, different[:4]
    # Every impostor pair is refused at 0.5, with a wide margin.
    assert all(d > DEFAULT_MATCH_THRESHOLD + 0.15 for d, *_ in different)
    # Genuine pairs: all but the video-frame-vs-portrait pair of Alex Lacamoire pass at 0.5.
    rejected = [(a, b) for d, a, b in same if d > DEFAULT_MATCH_THRESHOLD]
    assert rejected == [("alex_lacamoire/alex-lacamoire.png", "alex_lacamoire/img1.jpg")]


def test_rgba_png_is_flattened_and_matches_its_jpeg(encodings) -> None:
    rgba = pipeline.analyse(photo("obama/32bit.png"))
    assert Image.open(io.BytesIO(photo("obama/32bit.png"))).mode == "RGBA"
    assert rgba.ok
    assert pipeline.distance(rgba.encoding, encodings["obama/obama2.jpg"]) < 0.1  # the same photo
    # A palette PNG with transparency and a greyscale+alpha PNG decode too.
    image = rgb(photo("obama/obama2.jpg"))
    assert pipeline.analyse(png(image.convert("P", palette=Image.Palette.ADAPTIVE))).ok
    la = image.convert("LA")
    assert pipeline.analyse(png(la)).ok


def test_no_face_and_two_faces_and_too_small_are_reported() -> None:
    coffee = pipeline.analyse(photo("no_face/coffee.png"))
    assert (coffee.status, coffee.faces) == (pipeline.NO_FACE, 0)
    two = pipeline.analyse(photo("multi_face/two_people.jpg"))
    assert (two.status, two.faces) == (pipeline.MULTIPLE_FACES, 2)
    small = pipeline.analyse(photo("kit_harington/john1.jpeg"))
    assert small.status == pipeline.FACE_TOO_SMALL and small.face_size < 80
    assert small.encoding is None  # nothing is encoded for a refused image


def test_exif_orientation_is_applied() -> None:
    upright = rgb(photo("obama/obama.jpg"))
    # A phone stores the sensor image sideways plus EXIF Orientation=6 ("rotate 90° clockwise to view").
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    sideways.save(out, "JPEG", quality=92, exif=exif.tobytes())
    assert pipeline.analyse(out.getvalue()).ok
    assert pipeline.analyse(jpeg(sideways)).status == pipeline.NO_FACE  # without the tag: no upright face


def test_downsizing_to_640_and_timings() -> None:
    analysis = pipeline.analyse(photo("obama/obama3.jpg"), pipeline.REFERENCE)
    assert max(analysis.width, analysis.height) == 1280
    selfie = pipeline.analyse(photo("obama/obama.jpg"))
    assert max(selfie.width, selfie.height) == 640
    for step in ("decode", "detect", "landmarks", "encode"):
        assert step in selfie.timings_ms


def test_bad_and_unsupported_images() -> None:
    assert pipeline.analyse(b"\xff\xd8\xff\xe0 not really a jpeg").status == pipeline.BAD_IMAGE
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, "GIF")
    assert pipeline.analyse(gif.getvalue()).status == pipeline.UNSUPPORTED_IMAGE
    # A 7000×7000 PNG compresses to almost nothing but would take 147 MB decoded.
    bomb = io.BytesIO()
    Image.new("L", (7000, 7000)).save(bomb, "PNG")
    assert len(bomb.getvalue()) < 200_000
    assert pipeline.analyse(bomb.getvalue()).status == pipeline.IMAGE_TOO_LARGE


def test_yaw_estimate_flips_sign_with_a_mirrored_photo() -> None:
    turned = pipeline.analyse(photo("obama/obama2.jpg"))
    flipped = pipeline.analyse(mirrored(photo("obama/obama2.jpg")))
    assert turned.yaw < -0.1 and flipped.yaw > 0.1


def test_pushing_the_nose_sideways_moves_the_yaw_estimate_that_way() -> None:
    base = pipeline.analyse(photo("obama/obama.jpg"))
    nose_x = base.landmarks[4][0]
    eyes = [p[0] for p in base.landmarks[:4]]
    inter_ocular = (max(eyes) - min(eyes)) * 0.75
    # Coordinates are in the 640-px image; the full photo is 910 px wide.
    scale = Image.open(io.BytesIO(photo("obama/obama.jpg"))).width / base.width
    for shift, sign in ((0.25, +1), (0.25, -1)):
        pushed = pipeline.analyse(nose_pushed(photo("obama/obama.jpg"), nose_x * scale, 0.3 * inter_ocular * scale,
                                              sign * shift * inter_ocular * scale))
        assert pushed.ok
        assert (pushed.yaw - base.yaw) * sign > 0.05, (sign, base.yaw, pushed.yaw)


def test_a_tilted_flat_photo_barely_moves_the_yaw_estimate() -> None:
    """The reason a static photo cannot fake a head turn: a plane has no nose sticking out of it."""
    worst = 0.0
    for name in ("obama/obama.jpg", "obama/obama2.jpg", "biden/biden2.jpg", "rose_leslie/img2.jpg"):
        base = pipeline.analyse(photo(name)).yaw
        for k, side in itertools.product((0.2, 0.4, 0.6), (True, False)):
            tilted_yaw = pipeline.analyse(tilted(photo(name), k, right_side=side)).yaw
            worst = max(worst, abs(tilted_yaw - base))
    assert worst < 0.1, worst  # the liveness minimum per step is 0.12


def test_synthetic_head_turn_frames_move_as_labelled() -> None:
    for sequence in (("left", "right"), ("right", "left")):
        yaws = [pipeline.analyse(f).yaw for f in head_turn_frames(sequence)]
        for step, direction in enumerate(sequence):
            delta = yaws[step + 1] - yaws[step]
            assert delta * (1 if direction == "left" else -1) > 0.12, (sequence, yaws)


def test_the_68_point_model_is_never_loaded(tmp_path: Path) -> None:
    """Its licence excludes commercial use: record every model dlib is asked to load in a fresh process."""
    script = textwrap.dedent(f"""
        import json, sys, dlib
        loaded = []
        real = dlib.shape_predictor
        class Spy:
            def __new__(cls, path):
                loaded.append(path)
                return real(path)
        dlib.shape_predictor = Spy
        from biometric import pipeline
        pipeline.warm()
        result = pipeline.analyse(open({str(FACES / 'obama/obama.jpg')!r}, "rb").read())
        print(json.dumps({{"loaded": loaded, "status": result.status,
                           "face_recognition_imported": "face_recognition" in sys.modules
                           or "face_recognition.api" in sys.modules}}))
    """)
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, check=True,
                         timeout=120)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["status"] == "ok"
    assert [Path(p).name for p in report["loaded"]] == ["shape_predictor_5_face_landmarks.dat"]
    assert not report["face_recognition_imported"]
    with pytest.raises(ValueError):
        pipeline.model_path("shape_predictor_68_face_landmarks.dat")
