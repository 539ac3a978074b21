"""``vastbench data ingest``: real talking-head videos -> a dataset with SynthTalk's manifest and features contract.

Per video (parallel over ``--jobs`` processes, each with its own MediaPipe worker):

1. probe; skip with a one-line reason when it is unreadable, has no audio
   track, or is shorter than 2 s;
2. pass 1: decode, resample to 25 fps, track faces with MediaPipe's face mesh
   (up to two faces per frame, so a second person is noticed); skip when too few
   frames show a face or too many show several;
3. a stable square crop: the face-mesh box, enlarged ``crop_scale`` times,
   smoothed over time (Gaussian, ``smooth_seconds``);
4. pass 2: decode again, crop, resize to the profile size (quick 80 px, full
   256 px), encode H.264 + AAC; audio resampled to 16 kHz mono, aligned to the
   first video frame, cut to exactly 640 samples per frame; PPG from the frozen
   recognizer;
5. record the mesh (in crop pixels) under ``work/``.

Then for the dataset: speaker-disjoint splits (see ``layouts``), the face model
(reference face, rigid points, identity templates and the expression PCA,
fitted on the training split; ``face_model.npz``), and per clip the features
npz: ``expression`` (T x E), ``pose`` (T x 6), ``landmarks2d`` (T x 68 x 2),
``ppg`` (4T x P), plus ``mesh`` (T x 478 x 3), ``face_mask_bits`` (the T x H x W
face masks, bit-packed along the width: ``geometry.unpack_masks(bits, W)``),
``face_found`` (T,), ``crop_box`` (T x 3: centre x, centre y, side in source
pixels).  ``manifest.jsonl`` and ``dataset.json`` complete the dataset;
``skipped.jsonl`` has one line per video that was not ingested, with its reason.

Resumable: a video whose outputs exist for the same settings and the same
source file (size, modification time) is not processed again, nor is a video
that was skipped for the same settings.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vastbench.config import stable_hash
from vastbench.data.ingest import geometry as G
from vastbench.data.ingest import video_io
from vastbench.data.ingest.layouts import SourceVideo, assign_splits, discover
from vastbench.data.manifest import Clip, Manifest
from vastbench.errors import VastbenchError
from vastbench.rundir import atomic_write_json, atomic_write_text, read_json

log = logging.getLogger(__name__)

PROFILES = {"quick": 80, "full": 256}
PPG_BACKENDS = ("builtin", "wav2vec2")
VERSION = "1"


@dataclass
class IngestConfig:
    layout: str
    src: Path
    out: Path
    profile: str = "quick"
    jobs: int = 1
    components: int = 32             # expression PCA dimensions (E)
    test_speakers: list[str] | None = None
    min_seconds: float = 2.0
    crop_scale: float = 1.8          # crop side / face-mesh box side
    smooth_seconds: float = 0.5      # Gaussian sigma of the crop track
    min_face_fraction: float = 0.8   # below: "no face"
    max_multi_face_fraction: float = 0.2  # above: "several faces"
    limit: int | None = None         # ingest only the first N videos (to try settings out)
    size: int | None = None          # override the profile's frame size
    ppg: str = "builtin"             # "builtin" (SynthTalk-trained recognizer) or "wav2vec2" (real speech; local weights)

    def frame_size(self) -> int:
        if self.size is not None:
            return int(self.size)
        if self.profile not in PROFILES:
            raise VastbenchError(f"unknown profile '{self.profile}'; valid: {', '.join(PROFILES)}")
        return PROFILES[self.profile]

    def settings(self) -> dict:
        """What the per-video outputs depend on (their resume key)."""
        from vastbench.data.ingest.mediapipe_env import MEDIAPIPE_VERSION

        size = self.frame_size()
        if size % 2 or not 32 <= size <= 1024:
            raise VastbenchError(f"frame size {size} must be even and in 32..1024")
        if self.ppg not in PPG_BACKENDS:
            raise VastbenchError(f"unknown PPG '{self.ppg}'; valid: {', '.join(PPG_BACKENDS)}")
        return {"version": VERSION, "size": size, "ppg": self.ppg, "crop_scale": self.crop_scale, "smooth_seconds": self.smooth_seconds,
                "min_seconds": self.min_seconds, "min_face_fraction": self.min_face_fraction,
                "max_multi_face_fraction": self.max_multi_face_fraction, "mediapipe": MEDIAPIPE_VERSION}


@dataclass
class VideoResult:
    clip_id: str
    status: str                      # "ok" or "skipped"
    reason: str = ""
    record: dict = field(default_factory=dict)
    reused: bool = False


# ----------------------------------------------------------------------------- faces per frame
def choose_faces(per_frame: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tracked main face in every frame.

    ``per_frame``: the (k, 478, 3) meshes MediaPipe found in each frame.  The main
    face is the largest in the first frame with a face, then the one nearest the
    previous choice.  Returns meshes (T, 478, 3) (NaN where none), found (T,),
    several (T,) (two or more faces in the frame).
    """
    n = len(per_frame)
    out = np.full((n, 478, 3), np.nan, np.float32)
    found = np.zeros(n, bool)
    several = np.zeros(n, bool)
    prev = None
    for t, faces in enumerate(per_frame):
        if len(faces) == 0:
            continue
        several[t] = len(faces) > 1
        centres = faces[:, :468, :2].mean(1)
        if prev is None:
            ext = faces[:, :468, :2].max(1) - faces[:, :468, :2].min(1)
            i = int(np.argmax(ext[:, 0] * ext[:, 1]))
        else:
            i = int(np.argmin(np.linalg.norm(centres - prev, axis=1)))
        out[t], found[t], prev = faces[i], True, centres[i]
    return out, found, several


def crop_track(mesh: np.ndarray, fps: int, crop_scale: float, smooth_seconds: float) -> np.ndarray:
    """(T, 3) smoothed square crop boxes (centre x, centre y, side) in source pixels from (T, 478, 3) meshes."""
    from scipy.ndimage import gaussian_filter1d

    lo, hi = mesh[:, :468, :2].min(1), mesh[:, :468, :2].max(1)
    centre = 0.5 * (lo + hi)
    side = crop_scale * (hi - lo).max(1)
    box = np.concatenate([centre, side[:, None]], 1).astype(np.float64)
    sigma = smooth_seconds * fps
    if sigma > 0 and len(box) > 1:
        box = gaussian_filter1d(box, sigma, axis=0, mode="nearest")
    return box


def crop_frame(frame: np.ndarray, box: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Crop the square ``box`` (black outside the frame) and resize to ``size``; returns it and (x0, y0, side)."""
    import cv2

    h, w = frame.shape[:2]
    side = max(2, int(round(box[2])))
    x0, y0 = int(round(box[0] - side / 2)), int(round(box[1] - side / 2))
    canvas = np.zeros((side, side, 3), np.uint8)
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if xb > xa and yb > ya:
        canvas[ya - y0:yb - y0, xa - x0:xb - x0] = frame[ya:yb, xa:xb]
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_CUBIC
    return cv2.resize(canvas, (size, size), interpolation=interp), (x0, y0, side)


def mesh_to_crop(mesh: np.ndarray, boxes: list[tuple[int, int, int]], size: int) -> np.ndarray:
    """Source-pixel meshes -> crop pixels (pixel centres at integer coordinates, as SynthTalk's landmarks).

    MediaPipe's coordinates are image fractions times the size: 0 is the left edge of
    the first pixel, so a crop pixel's centre is half a pixel in.
    """
    b = np.asarray(boxes, np.float64)            # (T, 3)
    f = size / b[:, 2]                           # crop px per source px
    out = np.empty_like(mesh, dtype=np.float32)
    out[..., 0] = (mesh[..., 0] - b[:, None, 0]) * f[:, None] - 0.5
    out[..., 1] = (mesh[..., 1] - b[:, None, 1]) * f[:, None] - 0.5
    out[..., 2] = mesh[..., 2] * f[:, None]
    return out


# ----------------------------------------------------------------------------- one video
def _source_key(sv: SourceVideo, settings: dict) -> str:
    st = sv.path.stat()
    extra = {}
    if sv.audio_path is not None and sv.audio_path.exists():
        a = sv.audio_path.stat()
        extra = {"audio": str(sv.audio_path), "audio_size": a.st_size, "audio_mtime": a.st_mtime_ns}
    return stable_hash({"settings": settings, "path": str(sv.path.resolve()), "size": st.st_size,
                        "mtime": st.st_mtime_ns, **extra})


class _Skip(Exception):
    pass


def previous_result(sv: SourceVideo, out: Path, settings: dict) -> VideoResult | None:
    """The result of an earlier run for the same source file and settings, if there is one."""
    key = _source_key(sv, settings)
    done = read_json(out / "work" / "done" / f"{sv.clip_id}.json")
    if done and done.get("key") == key and all((out / p).exists() for p in done["paths"].values()):
        return VideoResult(sv.clip_id, "ok", record=done, reused=True)
    skipped = read_json(out / "work" / "skipped" / f"{sv.clip_id}.json")
    if skipped and skipped.get("key") == key:
        return VideoResult(sv.clip_id, "skipped", reason=skipped["reason"], reused=True)
    return None


def ingest_video(sv: SourceVideo, out: Path, settings: dict, client) -> VideoResult:
    """Stage 1 for one video (resumable): crop, audio, PPG, mesh; or a skip with its reason."""
    reused = previous_result(sv, out, settings)
    if reused is not None:
        return reused
    key = _source_key(sv, settings)
    done_path = out / "work" / "done" / f"{sv.clip_id}.json"
    skip_path = out / "work" / "skipped" / f"{sv.clip_id}.json"
    try:
        record = _process(sv, out, settings, client)
    except _Skip as exc:
        reason = str(exc)
        atomic_write_json(skip_path, {"key": key, "reason": reason, "video": str(sv.path)})
        done_path.unlink(missing_ok=True)
        return VideoResult(sv.clip_id, "skipped", reason=reason)
    record["key"] = key
    atomic_write_json(done_path, record)
    skip_path.unlink(missing_ok=True)
    return VideoResult(sv.clip_id, "ok", record=record)


def _media(fn, *args, **kwargs):
    """Run a media-reading step; a problem of the file itself (unreadable, no audio) becomes a skip."""
    from vastbench.data.ingest.mediapipe_env import MediaPipeError

    try:
        return fn(*args, **kwargs)
    except MediaPipeError:
        raise
    except VastbenchError as exc:
        msg = str(exc)
        raise _Skip(msg.split(": ", 1)[1] if ": " in msg else msg) from None


def _process(sv: SourceVideo, out: Path, settings: dict, client) -> dict:
    import cv2

    from vastbench import media

    t_start = time.perf_counter()
    size, fps = int(settings["size"]), video_io.FPS
    info = _media(video_io.probe, sv.path)
    if info.has_audio:
        audio_src, audio_start = sv.path, None
    elif sv.audio_path is not None and sv.audio_path.exists():
        audio_src, audio_start = sv.audio_path, 0.0
    else:
        raise _Skip("no audio track")
    if info.duration is not None and info.duration < settings["min_seconds"]:
        raise _Skip(f"too short: {info.duration:.2f} s (< {settings['min_seconds']:g} s)")

    # Pass 1: track faces on the 25 fps grid.
    cv2.setNumThreads(1)
    client.reset(static=False, max_faces=2)
    per_frame = _media(lambda: [client.process(frame) for frame in video_io.iter_frames(sv.path, fps)])
    n = len(per_frame)
    if n < settings["min_seconds"] * fps:
        raise _Skip(f"too short: {n / fps:.2f} s (< {settings['min_seconds']:g} s)")
    mesh, found, several = choose_faces(per_frame)
    face_frac, multi_frac = float(found.mean()), float(several.mean())
    if face_frac < settings["min_face_fraction"]:
        raise _Skip(f"no face: a face in {int(found.sum())} of {n} frames (needs {settings['min_face_fraction']:.0%})")
    if multi_frac > settings["max_multi_face_fraction"]:
        raise _Skip(f"several faces: two or more faces in {int(several.sum())} of {n} frames "
                    f"(at most {settings['max_multi_face_fraction']:.0%} allowed)")
    mesh = G.fill_gaps(mesh, found)
    boxes = crop_track(mesh, fps, settings["crop_scale"], settings["smooth_seconds"])

    # Audio, aligned to the first video frame.
    if audio_start is None:
        audio_start = video_io.first_video_time(sv.path)
    audio = _media(video_io.read_audio, audio_src, n, video_start=audio_start)

    # Pass 2: crop, resize, encode.
    rel = {"video": f"video/{sv.clip_id}.mp4", "audio": f"audio/{sv.clip_id}.wav",
           "mesh": f"work/mesh/{sv.clip_id}.npz"}
    used: list[tuple[int, int, int]] = []
    with video_io.VideoWriter(out / rel["video"], (size, size), audio=audio) as writer:
        for k, frame in enumerate(video_io.iter_frames(sv.path, fps)):
            if k >= n:
                break
            crop, b = crop_frame(frame, boxes[k], size)
            writer.write(crop)
            used.append(b)
        if len(used) != n:
            raise VastbenchError(f"{sv.path}: the second decoding gave {len(used)} frames, the first {n}; "
                                 "re-encode the video with ffmpeg")
        writer.finish()
    media.write_wav(out / rel["audio"], audio)

    ppg = _ppg(settings["ppg"], audio, n)
    crop_mesh = mesh_to_crop(mesh, used, size)
    with media.atomic_path(out / rel["mesh"]) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, mesh=crop_mesh, face_found=found, several=several,
                                crop_box=np.asarray(boxes, np.float32), ppg=ppg.astype(np.float32))
    return {"clip_id": sv.clip_id, "paths": rel, "n_frames": n, "size": size,
            "source": {"width": info.width, "height": info.height, "fps": info.fps, "duration": info.duration,
                       "audio": str(audio_src)},
            "face_fraction": round(face_frac, 4), "several_faces_fraction": round(multi_frac, 4),
            "seconds": round(time.perf_counter() - t_start, 2)}


_WAV2VEC2 = None


def _ppg(backend: str, audio: np.ndarray, n_frames: int) -> np.ndarray:
    """(4T, 40) phone posteriors: the frozen built-in recognizer, or the pretrained wav2vec2 for real speech."""
    global _WAV2VEC2
    if backend == "wav2vec2":
        if _WAV2VEC2 is None:
            from vastbench.features.wav2vec2 import Wav2Vec2PPG

            _WAV2VEC2 = Wav2Vec2PPG.load()
        return _WAV2VEC2.extract(audio, n_frames)
    from vastbench.features.extract import audio_features

    return audio_features(audio, n_frames, ("ppg",))["ppg"]


# ----------------------------------------------------------------------------- worker processes
_CLIENT = None


def _init_worker() -> None:
    global _CLIENT
    from vastbench.data.ingest.mediapipe_env import FaceMeshClient
    from vastbench.torchutil import configure_threads

    os.environ.setdefault("VASTBENCH_THREADS", "1")
    configure_threads()
    _CLIENT = FaceMeshClient().start()


def _work(args) -> VideoResult:
    sv, out, settings = args
    try:
        return ingest_video(sv, Path(out), settings, _CLIENT)
    except VastbenchError:
        raise
    except Exception as exc:  # noqa: BLE001  (one bad video must not stop the others)
        log.exception("ingesting %s failed", sv.path)
        return VideoResult(sv.clip_id, "skipped", reason=f"failed: {type(exc).__name__}: {exc}"[:300])


# ----------------------------------------------------------------------------- the dataset
def ingest(cfg: IngestConfig, progress: Any = None) -> dict:
    """Ingest every video of ``cfg.src``; returns a summary (counts, paths, timings)."""
    from vastbench.data.ingest.mediapipe_env import FaceMeshClient, require_python

    t0 = time.perf_counter()
    settings = cfg.settings()
    out = Path(cfg.out).expanduser()
    src = Path(cfg.src).expanduser()
    # Writing inside the source folder is allowed; our own outputs are never taken for source videos.
    videos = [v for v in discover(cfg.layout, src) if out.resolve() not in v.path.resolve().parents]
    if cfg.limit is not None:
        videos = videos[: cfg.limit]
    require_python()
    if cfg.ppg == "wav2vec2":  # fail before any video is touched, not once per video
        from vastbench.features.wav2vec2 import default_dir, missing_message

        if not (default_dir() / "config.json").is_file():
            raise VastbenchError(missing_message(default_dir()))
    out.mkdir(parents=True, exist_ok=True)
    stage = getattr(progress, "stage", None)
    track = getattr(progress, "track", None)
    if stage:
        stage("ingest", f"{len(videos)} videos from {src} ({cfg.layout} layout) -> {out} at {settings['size']} px")

    results: dict[str, VideoResult] = {}
    for v in videos:  # done before, same settings: no worker needed
        r = previous_result(v, out, settings)
        if r is not None:
            results[v.clip_id] = r
    jobs = [(v, str(out), settings) for v in videos if v.clip_id not in results]
    if stage and results:
        stage("resume", f"{len(results)} videos done before with these settings; {len(jobs)} to go")
    n_jobs = max(1, min(int(cfg.jobs or 1), len(jobs)))
    if not jobs:
        pass
    elif n_jobs > 1:
        from vastbench.generators import bare_main

        ctx = mp.get_context("spawn")  # each process starts its own MediaPipe worker; no forked pipes
        with bare_main():  # the workers start here; they must not re-run the caller's __main__
            pool = ctx.Pool(n_jobs, initializer=_init_worker)
        with pool:
            it = pool.imap_unordered(_work, jobs)
            it = track(it, "ingest videos", total=len(jobs)) if track else it
            for r in it:
                results[r.clip_id] = r
    else:
        from vastbench.torchutil import configure_threads

        configure_threads()
        with FaceMeshClient() as client:
            it = track(jobs, "ingest videos", total=len(jobs)) if track else jobs
            for sv, o, s in it:
                try:
                    r = ingest_video(sv, Path(o), s, client)
                except VastbenchError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    log.exception("ingesting %s failed", sv.path)
                    r = VideoResult(sv.clip_id, "skipped", reason=f"failed: {type(exc).__name__}: {exc}"[:300])
                results[r.clip_id] = r
    t_videos = time.perf_counter() - t0

    # skipped.jsonl: one line per video not ingested.
    lines = []
    for v in videos:
        r = results[v.clip_id]
        if r.status != "ok":
            lines.append(json.dumps({"video": str(v.path.relative_to(src)), "clip_id": v.clip_id,
                                     "reason": r.reason}) + "\n")
    atomic_write_text(out / "skipped.jsonl", "".join(lines))

    ok = [v for v in videos if results[v.clip_id].status == "ok"]
    if not ok:
        raise VastbenchError(f"no video of {src} could be ingested ({len(videos)} skipped); "
                             f"see the reasons in {out / 'skipped.jsonl'}")
    if stage:
        stage("face model", f"{len(ok)} clips ingested, {len(videos) - len(ok)} skipped; fitting the expression PCA")
    split_info = assign_splits(ok, cfg.test_speakers)
    manifest, model = _finish(ok, results, out, settings, cfg, track)
    n_frames = sum(c.n_frames for c in manifest.clips)
    frames_new = sum(results[v.clip_id].record["n_frames"] for v in ok if not results[v.clip_id].reused)
    # Throughput of the per-video stage, from every ingested video's own record (this run's and earlier ones).
    frames_all = sum(results[v.clip_id].record["n_frames"] for v in ok)
    secs_all = sum(results[v.clip_id].record.get("seconds", 0.0) for v in ok)
    counts: dict[str, int] = {}
    for c in manifest.clips:
        counts[c.split] = counts.get(c.split, 0) + 1
    summary = {"name": "ingest", "layout": cfg.layout, "source": str(src), "profile": cfg.profile,
               "settings": settings, "n_videos": len(videos), "n_clips": len(manifest), "n_skipped": len(lines),
               "n_frames": n_frames, "splits": counts, **split_info,
               "styles": sorted({c.style for c in manifest.clips}), "identities": manifest.identities(),
               "face_model": {"path": "face_model.npz", "hash": model.hash(), **model.meta},
               "timing": {"videos_seconds": round(t_videos, 1), "total_seconds": round(time.perf_counter() - t0, 1),
                          "new_frames": frames_new, "frames_per_second_per_job": round(frames_all / secs_all, 2)
                          if secs_all else None, "jobs": n_jobs if jobs else 0}}
    atomic_write_json(out / "dataset.json", summary)
    summary["root"] = str(out)
    return summary


def _finish(ok: list[SourceVideo], results: dict[str, VideoResult], out: Path, settings: dict,
            cfg: IngestConfig, track=None) -> tuple[Manifest, G.FaceModel]:
    """Fit the face model on the training split and write every clip's features npz and the manifest."""
    from vastbench.data.ingest.mediapipe_env import FaceMeshClient

    size = int(settings["size"])
    hw = (size, size)
    def source(v: SourceVideo):
        path = out / results[v.clip_id].record["paths"]["mesh"]

        def load() -> np.ndarray:
            with np.load(path) as z:
                return z["mesh"]
        return v.identity, int(results[v.clip_id].record["n_frames"]), load

    train = [source(v) for v in ok if v.split == "train"]
    if not train:
        raise VastbenchError("the train split is empty (every ingested speaker is held out for test); "
                             "ingest more speakers or name fewer --test-speakers")
    topo = _topology(out, FaceMeshClient)
    model = G.fit_face_model(train, hw, [source(v) for v in ok], np.asarray(topo["face_oval_loop"]),
                             n_components=cfg.components, edges=np.asarray(topo["tesselation_edges"]))
    model.meta.update({"mediapipe": settings["mediapipe"], "size": size})
    model.save(out / "face_model.npz")
    names = np.array(model.expression_names())
    rows = []
    it = track(ok, "write features", total=len(ok)) if track else ok
    for v in it:
        rec = results[v.clip_id].record
        with np.load(out / rec["paths"]["mesh"]) as zf:
            z = {k: zf[k] for k in zf.files}
        m = z["mesh"]
        face = model.analyse(m, hw, v.identity)
        rel = {"video": rec["paths"]["video"], "audio": rec["paths"]["audio"], "features": f"features/{v.clip_id}.npz"}
        from vastbench.media import atomic_path

        with atomic_path(out / rel["features"]) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, expression=face["expression"], pose=face["pose"], landmarks2d=face["landmarks2d"],
                                    expression_names=names, ppg=z["ppg"], mesh=m.astype(np.float32),
                                    face_mask_bits=G.pack_masks(G.face_masks(m, model.face_oval, hw)),
                                    face_found=z["face_found"],
                                    crop_box=z["crop_box"], face_model_hash=np.array(model.hash()))
        n = int(rec["n_frames"])
        meta = {"source_video": str(v.path.relative_to(Path(cfg.src).expanduser())), "size": size,
                "source_fps": rec["source"]["fps"], "source_size": [rec["source"]["width"], rec["source"]["height"]],
                "face_fraction": rec["face_fraction"], **v.meta}
        rows.append(Clip(clip_id=v.clip_id, split=v.split, identity=v.identity, style=v.style, source=cfg.layout,
                         paths=rel, n_frames=n, fps=float(video_io.FPS), duration=n / video_io.FPS, meta=meta))
    rows.sort(key=lambda c: c.clip_id)
    manifest = Manifest(rows)
    manifest.save(out / "manifest.jsonl")
    return Manifest.load(out / "manifest.jsonl"), model


def _topology(out: Path, client_cls) -> dict:
    """MediaPipe's face-oval loop and tessellation (asked once from the worker, kept in work/topology.json)."""
    path = out / "work" / "topology.json"
    topo = read_json(path)
    if topo is None:
        with client_cls() as client:
            topo = client.topology()
        atomic_write_json(path, topo)
    return topo
