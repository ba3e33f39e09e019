"""2. Face verification: our pipeline against face_recognition with its defaults, and the event loop under load.

Ours (biometric/pipeline.py, what the app runs in its process pool): decode + EXIF/alpha normalisation,
downsize to 640 px, HOG at upsample 0, dlib 5-point landmarks, ResNet encoding with 1 jitter; an image whose
face is under 80 px at 640 px is analysed again as a reference (1280 px, retry at upsample 1), as enrollment
does. face_recognition 1.3.0 defaults: `load_image_file` (full size), `face_locations(img)` (HOG,
number_of_times_to_upsample=1), `face_encodings(img, locations)` (num_jitters=1, model="small" = the same
5-point predictor). Both decode the same bytes each time. Both decide with the same threshold (ours, 0.5);
face_recognition's own `compare_faces` tolerance (0.6) is reported too.
Then the app runs as a server with its face pool kept busy by reference-photo uploads through the real
endpoint, and a small JSON endpoint's latency is compared with the idle server.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import loadgen, prepare_backend, server, server_env
from bench.report import Result, ratio, summary

NAME = "face"
FACES = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "faces"
NOT_A_PERSON = ("multi_face", "no_face")
FR_TOLERANCE = 0.6  # face_recognition.compare_faces default
SATURATING_PHOTO = "obama/obama.jpg"


def images() -> list[Path]:
    """Every photo in the test set, sorted."""
    return sorted(p for p in FACES.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def name_of(path: Path) -> str:
    """person/file."""
    return f"{path.parent.name}/{path.name}"


def ours(data: bytes) -> tuple[str, tuple[float, ...] | None]:
    """Our pipeline's verdict on one image: status and encoding."""
    from biometric import pipeline

    analysis = pipeline.analyse(data, pipeline.SELFIE)
    if analysis.status == pipeline.FACE_TOO_SMALL:
        analysis = pipeline.analyse(data, pipeline.REFERENCE)
    return analysis.status, analysis.encoding


def baseline(data: bytes) -> tuple[str, Any]:
    """face_recognition with its defaults on the full-size image: status (faces found) and encoding."""
    import face_recognition

    img = face_recognition.load_image_file(io.BytesIO(data))
    locations = face_recognition.face_locations(img)
    encodings = face_recognition.face_encodings(img, locations)
    if len(encodings) != 1:
        return f"{len(encodings)} faces", None
    return "ok", tuple(float(v) for v in encodings[0])


def measure(runs: int, limit: int | None) -> dict[str, Any]:
    """Time both pipelines on every image (interleaved, after a warm-up) and keep their verdicts."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models' pkg_resources deprecation
        import face_recognition  # noqa: F401 - loads its models now, not inside the first timing
    paths = images()[:limit] if limit else images()
    photos = {name_of(p): p.read_bytes() for p in paths}
    first = next(iter(photos.values()))
    ours(first), baseline(first)  # warm-up: load dlib models into this process
    times: dict[str, list[float]] = {"ours": [], "face_recognition": []}
    verdicts: dict[str, dict[str, Any]] = {"ours": {}, "face_recognition": {}}
    for _ in range(runs):
        for name, data in photos.items():
            for side, fn in (("ours", ours), ("face_recognition", baseline)):
                t = time.perf_counter()
                verdicts[side][name] = fn(data)
                times[side].append((time.perf_counter() - t) * 1000)
    return {"times": times, "verdicts": verdicts}


def decisions(verdicts: dict[str, dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Accept/reject of every image (exactly one face) and every pair of single-face photos, both sides."""
    from biometric.pipeline import distance

    ours_v, fr_v = verdicts["ours"], verdicts["face_recognition"]
    image_rows = [(n, ours_v[n][0], fr_v[n][0]) for n in sorted(ours_v)]
    image_disagree = [f"{n}: ours {o}, face_recognition {f}" for n, o, f in image_rows if (o == "ok") != (f == "ok")]
    people = sorted(n for n in ours_v if n.split("/")[0] not in NOT_A_PERSON and ours_v[n][1] and fr_v[n][1])
    pairs: dict[str, list[dict[str, Any]]] = {"genuine": [], "impostor": []}
    for a, b in itertools.combinations(people, 2):
        d_ours, d_fr = distance(ours_v[a][1], ours_v[b][1]), distance(fr_v[a][1], fr_v[b][1])
        kind = "genuine" if a.split("/")[0] == b.split("/")[0] else "impostor"
        pairs[kind].append({"a": a, "b": b, "ours": round(d_ours, 3), "face_recognition": round(d_fr, 3)})
    out: dict[str, Any] = {"images": {"count": len(image_rows), "agree": len(image_rows) - len(image_disagree),
                                      "disagreements": image_disagree}}
    for kind, items in pairs.items():
        disagree = [f"{p['a']} – {p['b']}: ours {p['ours']}, face_recognition {p['face_recognition']}"
                    for p in items if (p["ours"] <= threshold) != (p["face_recognition"] <= threshold)]
        out[kind] = {"count": len(items), "agree": len(items) - len(disagree), "disagreements": disagree,
                     "ours_accepted": sum(p["ours"] <= threshold for p in items),
                     "fr_accepted": sum(p["face_recognition"] <= threshold for p in items),
                     "fr_accepted_at_0_6": sum(p["face_recognition"] <= FR_TOLERANCE for p in items),
                     "closest": min((p["ours"] for p in items), default=None),
                     "farthest": max((p["ours"] for p in items), default=None)}
    return out


async def consenting_user(url: str) -> str:
    """A logged-in person who gave face consent (needed to upload a reference photo); their token."""
    from echain.demo import Api

    async with aiohttp.ClientSession() as session:
        api = Api(session, url)
        token = (await api.post("/api/v1/auth/login", None, {"code": "sim:bench-face"}))["token"]
        status = await api.get("/api/v1/biometrics/me", token)
        await api.post("/api/v1/biometrics/consent", token, {"version": status["consent_version"]}, expect=201)
    return token


async def saturation(quick: bool, pool_size: int) -> dict[str, Any]:
    """p50/p99 of GET /api/v1/me with an idle server, then with its face pool saturated."""
    duration, warmup = (3.0, 0.5) if quick else (15.0, 2.0)
    with tempfile.TemporaryDirectory(prefix="echain-bench-face-", ignore_cleanup_errors=True) as tmp:
        backend = await prepare_backend(Path(tmp))
        env = server_env(backend, Path(tmp) / "data", ECHAIN_FACE_POOL_WARM="true",
                         ECHAIN_FACE_POOL_SIZE=str(pool_size))
        async with server("echain", env) as srv:
            token = await consenting_user(srv.url)
            auth = {"Authorization": f"Bearer {token}"}
            me = {"name": "me", "kind": "get", "url": srv.url, "path": "/api/v1/me", "headers": auth, "concurrency": 1}
            # Enough uploads in flight that a job always waits for a worker (the pool refuses above 8 per worker).
            faces = {"name": "face", "kind": "upload", "url": srv.url, "path": "/api/v1/biometrics/enrollment/photo",
                     "headers": auth, "concurrency": pool_size * 3, "file": str(FACES / SATURATING_PHOTO),
                     "expect": 201, "measure": False}
            idle = await loadgen({"mode": "streams", "warmup": warmup, "duration": duration, "streams": [me]})
            busy = await loadgen({"mode": "streams", "warmup": warmup, "duration": duration, "streams": [me, faces]})
    return {"idle": idle["streams"]["me"], "busy": busy["streams"]["me"], "face": busy["streams"]["face"],
            "database": backend.info, "duration": duration, "pool_size": pool_size}


async def run(quick: bool) -> Result:
    """Pipelines side by side, decisions, then the JSON endpoint under a saturated pool."""
    result = Result(NAME, "Face verification: our pipeline vs face_recognition defaults; event loop under face load",
                    quick=quick)
    if not FACES.is_dir():
        result.skipped = f"no test photos at {FACES} (the shared test data set is not on this machine)"
        return result
    from biometric.config import DEFAULT_MATCH_THRESHOLD, default_pool_size

    runs = 1 if quick else 3
    m = await asyncio.to_thread(measure, runs, 4 if quick else None)
    ours_t, fr_t = m["times"]["ours"], m["times"]["face_recognition"]
    ours_s, fr_s = summary(ours_t), summary(fr_t)
    result.table(["pipeline", "p50 ms", "p95 ms", "max ms", "images × runs"], [
        ["ours (640 px, HOG upsample 0, 5-point, 1 jitter)", ours_s["p50"], ours_s["p95"], ours_s["max"], ours_s["n"]],
        ["face_recognition defaults (full size, upsample 1, 5-point)", fr_s["p50"], fr_s["p95"], fr_s["max"], fr_s["n"]],
        ["**ours ÷ face_recognition**", ratio(ours_s["p50"], fr_s["p50"]), ratio(ours_s["p95"], fr_s["p95"]), "", ""],
    ], title="Per image (decode → detect → landmarks → encode, one core)")
    threshold = DEFAULT_MATCH_THRESHOLD
    d = decisions(m["verdicts"], threshold)
    g, i, im = d["genuine"], d["impostor"], d["images"]
    result.table(["decision", "cases", "same decision", "ours accepts", "face_recognition accepts"], [
        ["image has exactly one face (else rejected)", im["count"], im["agree"],
         sum(v[0] == "ok" for v in m["verdicts"]["ours"].values()),
         sum(v[0] == "ok" for v in m["verdicts"]["face_recognition"].values())],
        [f"genuine pairs at threshold {threshold}", g["count"], g["agree"], g["ours_accepted"], g["fr_accepted"]],
        [f"impostor pairs at threshold {threshold}", i["count"], i["agree"], i["ours_accepted"], i["fr_accepted"]],
    ], title="Same accept/reject decisions")
    disagreements = im["disagreements"] + g["disagreements"] + i["disagreements"]
    result.notes.append("Disagreements: " + ("; ".join(disagreements) if disagreements else "none") + ".")
    result.notes.append(
        f"Genuine distances (ours) {g['closest']}–{g['farthest']}, closest impostor {i['closest']}. With its own "
        f"`compare_faces` tolerance {FR_TOLERANCE}, face_recognition would accept {g['fr_accepted_at_0_6']}/{g['count']} "
        f"genuine and {i['fr_accepted_at_0_6']}/{i['count']} impostor pairs (a threshold choice, not a pipeline difference).")
    pool_size = default_pool_size()
    s = await saturation(quick, pool_size)
    result.database = s["database"]
    idle, busy, face = s["idle"], s["busy"], s["face"]
    result.table(["server state", "GET /api/v1/me p50 ms", "p99 ms", "requests", "face jobs/s"], [
        ["idle", idle["latency_ms"]["p50"], idle["latency_ms"]["p99"], idle["ok"], 0],
        [f"face pool saturated ({pool_size} worker(s), {pool_size * 3} uploads in flight)", busy["latency_ms"]["p50"],
         busy["latency_ms"]["p99"], busy["ok"], round(face["statuses"].get("201", 0) / s["duration"], 2)],
        ["**saturated ÷ idle**", ratio(busy["latency_ms"]["p50"], idle["latency_ms"]["p50"]),
         ratio(busy["latency_ms"]["p99"], idle["latency_ms"]["p99"]), "", ""],
    ], title="Small JSON endpoint while the face pool is saturated")
    result.notes.append(
        f"Saturation: reference-photo uploads ({SATURATING_PHOTO}) through POST /api/v1/biometrics/enrollment/photo, "
        f"{s['duration']:g} s per state, one client for /api/v1/me; face upload statuses {face['statuses']}. "
        f"Pool size = the app's default (CPU count − 1).")
    result.data = {"runs": runs, "threshold": threshold, "per_image_ms": {"ours": ours_s, "face_recognition": fr_s},
                   "ratio": {"p50": ratio(ours_s["p50"], fr_s["p50"]), "p95": ratio(ours_s["p95"], fr_s["p95"]),
                             "json_p99_saturated_over_idle": ratio(busy["latency_ms"]["p99"], idle["latency_ms"]["p99"])},
                   "decisions": d, "saturation": {k: s[k] for k in ("idle", "busy", "face", "pool_size", "duration")}}
    return result
