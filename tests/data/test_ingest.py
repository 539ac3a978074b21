"""Real-data ingestion: streaming 25 fps / 16 kHz IO, layouts and splits, Procrustes pose, and MediaPipe end to end.

The MediaPipe tests ingest full-size (256 px) SynthTalk renders laid out as a
``folder`` source, plus edge cases built here (noise frames, two faces side by
side, a 1-second clip, no audio track, variable frame rate, a 1080x1920
portrait canvas, a file that is not a video), and compare what ingestion
measured with SynthTalk's true landmarks and pose.  They need the isolated
MediaPipe environment (``vastbench data ingest-setup``) and are skipped with
that reason without it.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vastbench import media
from vastbench.data.ingest import geometry as G
from vastbench.data.ingest import video_io
from vastbench.data.ingest.layouts import assign_splits, discover
from vastbench.data.ingest.mediapipe_env import available
from vastbench.errors import VastbenchError
from tests.helpers import run_cli

needs_mediapipe = pytest.mark.skipif(
    not available(), reason="MediaPipe environment not set up: run `vastbench data ingest-setup` "
                            "(mediapipe 0.10.21 needs numpy<2/protobuf<5, so it lives in its own venv)")


def e2e(fn):
    """MediaPipe end to end: rendering the 256 px clips and ingesting them takes 1-2 minutes on two busy cores."""
    return pytest.mark.slow(needs_mediapipe(fn))


def _write_timed_video(path: Path, frames: np.ndarray, times_s: list[float], audio: np.ndarray | None = None,
                       duration_last: float | None = None) -> Path:
    """An mp4 whose frames carry the given presentation times (variable frame rate when irregular)."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=1000)
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        vs.time_base = Fraction(1, 1000)
        vs.codec_context.time_base = Fraction(1, 1000)
        astream = None
        if audio is not None:
            astream = out.add_stream("aac", rate=16000)
            astream.layout = "mono"
        for f, t in zip(frames, times_s):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24").reformat(format="yuv420p")
            vf.pts = int(round(t * 1000))
            vf.time_base = Fraction(1, 1000)
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if astream is not None:
            media._encode_audio(out, astream, audio.astype(np.float32), 16000)
    return path


def _level_frames(n: int, size: int = 32) -> np.ndarray:
    """Frame i is flat grey at level 4 * i (so the decoded level tells which source frame it was)."""
    return np.stack([np.full((size, size, 3), 4 * i, np.uint8) for i in range(n)])


# ----------------------------------------------------------------------------- IO
def test_variable_frame_rate_is_resampled_to_25_fps_by_timestamp(tmp_path):
    rng = np.random.default_rng(0)
    times = np.cumsum(np.r_[0, rng.uniform(0.02, 0.06, 29)])    # 30 frames, 17-50 fps, irregular
    path = _write_timed_video(tmp_path / "vfr.mp4", _level_frames(30), list(times))
    out = list(video_io.iter_frames(path))
    step = float(np.median(np.diff(times)))
    assert len(out) == int(round((times[-1] + step) * 25))
    for k, frame in enumerate(out):
        src = int(np.round(frame.mean() / 4))
        nearest = int(np.argmin(np.abs(times - k / 25)))
        assert abs(times[src] - k / 25) <= abs(times[nearest] - k / 25) + 1e-3, (k, src, nearest)


def test_constant_30_fps_becomes_25_fps_frames_and_exact_audio(tmp_path):
    times = [i / 30 for i in range(60)]                           # 2 s at 30 fps
    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000)).astype(np.float32)
    path = _write_timed_video(tmp_path / "cfr30.mp4", _level_frames(60), times, audio)
    out = list(video_io.iter_frames(path))
    assert len(out) == 50
    assert [int(np.round(f.mean() / 4)) for f in out[:6]] == [0, 1, 2, 4, 5, 6]  # nearest of 0, 1.2, 2.4, 3.6, ...
    wav = video_io.read_audio(path, len(out), video_io.first_video_time(path))
    assert wav.dtype == np.float32 and len(wav) == 50 * 640
    assert 0.15 < np.sqrt(np.mean(wav[1600:-1600] ** 2)) < 0.25  # the 0.3-amplitude tone survives AAC


def test_media_problems_are_clear_messages(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(VastbenchError, match="unreadable"):
        video_io.probe(bad)
    silent = _write_timed_video(tmp_path / "silent.mp4", _level_frames(10), [i / 25 for i in range(10)])
    assert not video_io.probe(silent).has_audio
    with pytest.raises(VastbenchError, match="no audio track"):
        video_io.read_audio(silent, 10)


# ----------------------------------------------------------------------------- layouts
def _touch(root: Path, *rels: str) -> None:
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def test_layouts_name_speakers_styles_and_clips(tmp_path):
    _touch(tmp_path / "hdtf", "WDA_BarackObama_000.mp4", "WDA_BarackObama_001.mp4", "RD_Radio11_000.mp4")
    h = discover("hdtf", tmp_path / "hdtf")
    assert {v.identity for v in h} == {"WDA_BarackObama", "RD_Radio11"}

    _touch(tmp_path / "mead", "M003/video/front/angry/level_3/001.mp4", "M003/video/left_30/angry/level_3/001.mp4",
           "W009/video/front/neutral/level_1/002.mp4", "M003/audio/angry/level_3/001.m4a")
    m = discover("mead", tmp_path / "mead")
    assert [(v.identity, v.style, v.meta["intensity"]) for v in m] == [("M003", "angry_3", 3), ("W009", "neutral_1", 1)]
    assert m[0].audio_path == tmp_path / "mead/M003/audio/angry/level_3/001.m4a" and m[1].audio_path is None

    _touch(tmp_path / "vox", "dev/mp4/id00012/21Uxsk56VDQ/00001.mp4", "test/mp4/id00017/01dfn2spqyE/00001.mp4")
    v = discover("voxceleb", tmp_path / "vox")
    assert {(x.identity, x.official_split) for x in v} == {("id00012", "train"), ("id00017", "test")}
    assert assign_splits(v)["test_speakers"] == ["id00017"]           # the official speaker split is kept

    _touch(tmp_path / "folder", "alice/a.mp4", "alice/happy/b.mp4", "bob/c.mov", "notes.txt")
    f = discover("folder", tmp_path / "folder")
    assert [(x.clip_id, x.identity, x.style) for x in f] == [
        ("alice_a", "alice", "unlabeled"), ("alice_happy_b", "alice", "happy"), ("bob_c", "bob", "unlabeled")]

    with pytest.raises(VastbenchError, match="did you mean 'mead'"):
        discover("maed", tmp_path / "mead")
    _touch(tmp_path / "flat", "x.mp4")
    with pytest.raises(VastbenchError, match="one subfolder per speaker"):
        discover("folder", tmp_path / "flat")


def test_splits_are_speaker_disjoint_and_stable(tmp_path):
    _touch(tmp_path, *[f"spk{s:02d}/clip{c}.mp4" for s in range(10) for c in range(6)])
    vids = discover("folder", tmp_path)
    info = assign_splits(vids)
    assert info["speaker_disjoint_test"] and len(info["test_speakers"]) == 2
    test_ids = {v.identity for v in vids if v.split == "test"}
    train_ids = {v.identity for v in vids if v.split in ("train", "val")}
    assert test_ids == set(info["test_speakers"]) and not test_ids & train_ids
    assert {v.split for v in vids} == {"train", "val", "test"}
    again = discover("folder", tmp_path)
    assign_splits(again)
    assert [v.split for v in again] == [v.split for v in vids]
    assert assign_splits(discover("folder", tmp_path), ["spk03"])["test_speakers"] == ["spk03"]
    with pytest.raises(VastbenchError, match="no speaker 'spk99'"):
        assign_splits(discover("folder", tmp_path), ["spk99"])


# ----------------------------------------------------------------------------- geometry
def test_procrustes_recovers_a_known_pose_and_scale():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(G.N_FACE, 3))
    angles = np.array([[0.2, -0.3, 0.1], [-0.1, 0.25, -0.2]])
    R = G.matrix_from_euler(angles)
    np.testing.assert_allclose(G.euler_from_matrix(R), angles, atol=1e-12)
    dst = 1.7 * np.einsum("tij,nj->tni", R, ref) + np.array([0.3, -0.2, 0.5])
    s, R_hat, t = G.umeyama(ref, dst)
    np.testing.assert_allclose(s, 1.7, rtol=1e-10)
    np.testing.assert_allclose(G.euler_from_matrix(R_hat), angles, atol=1e-10)
    # SynthTalk's convention: +pitch nods the face down, +yaw turns it to the image right.
    front = np.array([0.0, 0.0, 1.0])
    assert (G.matrix_from_euler(np.array([[0.3, 0, 0]]))[0] @ front)[1] < 0
    assert (G.matrix_from_euler(np.array([[0, 0.3, 0]]))[0] @ front)[0] > 0


def test_ibug_mapping_is_68_distinct_mesh_vertices():
    assert G.MESH_TO_IBUG68.shape == (68,)
    assert len(set(G.MESH_TO_IBUG68.tolist())) == 68 and G.MESH_TO_IBUG68.max() < G.N_FACE
    assert G.MESH_TO_IBUG68[8] == 152 and G.MESH_TO_IBUG68[30] == 4   # chin, nose tip


def test_ingest_without_mediapipe_says_how_to_set_it_up(tmp_path, monkeypatch):
    _touch(tmp_path / "src", "alice/a.mp4")
    monkeypatch.setenv("VASTBENCH_MEDIAPIPE_ENV", str(tmp_path / "none"))
    monkeypatch.delenv("VASTBENCH_MEDIAPIPE_PYTHON", raising=False)
    proc = run_cli("data", "ingest", "--layout", "folder", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "o"))
    assert proc.returncode != 0
    err = (proc.stderr + proc.stdout).strip().splitlines()
    assert len(err) == 1 and "vastbench data ingest-setup" in err[0] and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- MediaPipe end to end
@pytest.fixture(scope="module")
def raw_source(tmp_path_factory):
    """Full-size SynthTalk renders (truth kept) + edge cases, as a ``folder`` source."""
    from vastbench.data.synthtalk.dataset import make_clip
    from vastbench.data.ingest.synthtalk_raw import pick_specs

    root = tmp_path_factory.mktemp("ingest_src")
    # round robin over identities: id00, id01, ..., id09, then id00, id01 again
    specs = [s for s in pick_specs(12, per_identity=2) if s.identity in (0, 1)][:3]
    rows = [make_clip(root / "truth", s, 256, 0) for s in specs]
    src = root / "src"
    for spk in ("spkA", "spkB", "spkC"):
        (src / spk).mkdir(parents=True)
    clips = {}
    for row in rows:
        v = media.read_video(root / "truth" / row["paths"]["video"])
        clips[row["clip_id"]] = v
    (a0, va0), (a1, va1) = [(k, v) for k, v in clips.items() if k.startswith("id00")][:2]
    b0, vb0 = next((k, v) for k, v in clips.items() if k.startswith("id01"))
    for name, v, spk in ((a0, va0, "spkA"), (a1, va1, "spkA"), (b0, vb0, "spkB")):
        media.write_video(src / spk / f"{name}.mp4", v.frames, 25, v.audio)
    f, a = va0.frames, va0.audio
    n = len(f)
    # variable frame rate: 80 frames (the clip, looped) at irregular times (mean ~30 fps, 2.7 s)
    rng = np.random.default_rng(0)
    times = np.cumsum(np.r_[0, rng.uniform(0.022, 0.045, 79)])
    _write_timed_video(src / "spkA" / "vfr.mp4", f[np.arange(80) % n], list(times),
                       np.resize(a, int((times[-1] + 0.033) * 16000)))
    # portrait 1080x1920 canvas with the 256 px frame in it (short: 2.2 s)
    canvas = np.full((56, 1920, 1080, 3), 40, np.uint8)
    canvas[:, 700:956, 412:668] = f[np.arange(56) % n]
    media.write_video(src / "spkA" / "portrait.mp4", canvas, 25, np.resize(a, 56 * 640))
    # the edge cases that must be skipped, each with its reason
    noise = np.random.default_rng(1).integers(0, 256, (75, 128, 128, 3), dtype=np.uint8)
    media.write_video(src / "spkC" / "noise.mp4", noise, 25, np.resize(a, 75 * 640))
    two = np.concatenate([f, vb0.frames[:n] if len(vb0.frames) >= n else f], axis=2)
    media.write_video(src / "spkC" / "two_faces.mp4", two[:, :, :, :], 25, a)
    media.write_video(src / "spkC" / "one_second.mp4", f[:25], 25, a[: 25 * 640])
    media.write_video(src / "spkC" / "no_audio.mp4", f, 25, None)
    (src / "spkC" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    vfr_frames = int(round((times[-1] + float(np.median(np.diff(times)))) * 25))
    return {"root": root, "src": src, "truth": root / "truth", "ids": {"a0": a0, "a1": a1, "b0": b0},
            "vfr_frames": vfr_frames}


@pytest.fixture(scope="module")
def ingested(raw_source, tmp_path_factory):
    """The real command, two worker processes."""
    from vastbench.data.ingest.pipeline import IngestConfig

    out = tmp_path_factory.mktemp("ingested")
    proc = run_cli("data", "ingest", "--layout", "folder", "--src", str(raw_source["src"]), "--out", str(out),
                   "--profile", "full", "--jobs", "2", "--components", "16", "--test-speakers", "spkB")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ingested 5 of 10 videos" in " ".join(proc.stdout.split()), proc.stdout
    cfg = IngestConfig(layout="folder", src=raw_source["src"], out=out, profile="full", jobs=2, components=16,
                       test_speakers=["spkB"])
    return cfg, json.loads((out / "dataset.json").read_text())


@e2e
def test_every_skip_has_its_one_line_reason(ingested):
    cfg, summary = ingested
    lines = [json.loads(x) for x in (Path(cfg.out) / "skipped.jsonl").read_text().splitlines()]
    reasons = {Path(r["video"]).name: r["reason"] for r in lines}
    assert set(reasons) == {"noise.mp4", "two_faces.mp4", "one_second.mp4", "no_audio.mp4", "broken.mp4"}
    assert reasons["noise.mp4"].startswith("no face")
    assert reasons["two_faces.mp4"].startswith("several faces")
    assert reasons["one_second.mp4"].startswith("too short")
    assert reasons["no_audio.mp4"] == "no audio track"
    assert reasons["broken.mp4"].startswith("unreadable")
    assert all("\n" not in r for r in reasons.values())
    assert summary["n_clips"] == 5 and summary["n_skipped"] == 5


@e2e
def test_outputs_follow_the_synthtalk_contract(ingested, raw_source):
    from vastbench.config import DatasetConfig
    from vastbench.data.base import ManifestDataset
    from vastbench.features.extract import clip_features

    cfg, summary = ingested
    manifest = ManifestDataset(DatasetConfig(name="manifest", root=str(cfg.out))).load()
    assert {"train", "test"} <= {c.split for c in manifest.clips} <= {"train", "val", "test"}
    assert {c.identity for c in manifest.split("test")} == {"spkB"}
    for clip in manifest.clips:
        v = media.read_video(clip.path("video"))
        wav, _ = media.read_wav(clip.path("audio"))
        assert v.frames.shape[1:] == (256, 256, 3) and v.fps == 25
        assert len(v.frames) == clip.n_frames and len(wav) == 640 * clip.n_frames
        f = clip_features(clip, ("ppg", "mfcc"))
        t = clip.n_frames
        assert f["expression"].shape == (t, 16) and f["pose"].shape == (t, 6)
        assert f["landmarks2d"].shape == (t, 68, 2) and f["mesh"].shape == (t, 478, 3)
        assert f["ppg"].shape[0] == 4 * t and np.allclose(f["ppg"].sum(1), 1, atol=1e-3)
        mask = G.unpack_masks(f["face_mask_bits"], 256)
        assert f["mfcc"].shape == (4 * t, 13) and mask.shape == (t, 256, 256)
        assert np.isfinite(f["expression"]).all() and np.isfinite(f["pose"]).all()
        # the face is in the middle of the crop and fills a sensible part of it
        box = f["landmarks2d"].reshape(-1, 2)
        assert 60 < box.mean(0)[0] < 196 and 60 < box.mean(0)[1] < 196
        assert 0.15 < mask.mean() < 0.6
    assert abs(manifest["spkA_vfr"].n_frames - raw_source["vfr_frames"]) <= 1
    portrait = manifest["spkA_portrait"]
    assert portrait.meta["source_size"] == [1080, 1920] and portrait.n_frames == 56
    assert (Path(cfg.out) / "face_model.npz").exists()
    ds = json.loads((Path(cfg.out) / "dataset.json").read_text())
    assert ds["speaker_disjoint_test"] and ds["face_model"]["components"] == 16


@e2e
def test_mediapipe_finds_the_synthtalk_faces_and_their_truth(ingested, raw_source):
    """Detection on full-size renders, landmarks against SynthTalk's own iBUG points, yaw/roll against truth."""

    from vastbench.data.manifest import Manifest

    cfg, _ = ingested
    m = Manifest.load(Path(cfg.out) / "manifest.jsonl")
    keep = [c for c in m.clips if c.clip_id.split("_", 1)[1] in raw_source["ids"].values()]
    assert len(keep) == 3
    res = _compare_subset(keep, raw_source["truth"])
    print("ingest on SynthTalk 256 px:", res)
    assert res["frames_with_face"] >= 0.98
    assert res["landmark_nme"] < 0.1
    assert res["pose_r"]["yaw"] > 0.8 and res["pose_r"]["roll"] > 0.8


def _compare_subset(clips, truth: Path) -> dict:
    from vastbench.data.ingest.validate import POSE_NAMES, _crop_landmarks, _truth_for

    found, nme, pe, pt = [], [], [], []
    for clip in clips:
        z = np.load(clip.path("features"))
        t = _truth_for(clip, truth)
        assert len(t["pose"]) == clip.n_frames
        found.append(z["face_found"])
        lm = _crop_landmarks(t["landmarks2d"], z["crop_box"], 256)
        iod = np.linalg.norm(lm[:, 45] - lm[:, 36], axis=1)
        nme.append(np.linalg.norm(z["landmarks2d"] - lm, axis=2).mean(1) / iod)
        pe.append(z["pose"])
        pt.append(t["pose"])
    pe, pt = np.concatenate(pe), np.concatenate(pt)
    return {"frames_with_face": float(np.concatenate(found).mean()), "landmark_nme": float(np.concatenate(nme).mean()),
            "pose_r": {n: float(np.corrcoef(pe[:, i], pt[:, i])[0, 1]) for i, n in enumerate(POSE_NAMES[:3])}}


@e2e
def test_a_second_run_reuses_everything(ingested):
    from vastbench.data.ingest.pipeline import ingest

    cfg, first = ingested
    before = (Path(cfg.out) / "manifest.jsonl").read_text()
    again = ingest(cfg)
    assert again["timing"]["new_frames"] == 0 and again["n_clips"] == first["n_clips"]
    assert (Path(cfg.out) / "manifest.jsonl").read_text() == before


@e2e
def test_capture_video_matches_the_ingested_features(ingested, tmp_path):
    """The metrics' capture path on an ingested clip, at 256 px and downscaled to the quick profile's 80 px."""
    from vastbench.data.ingest import capture_video
    from vastbench.data.manifest import Manifest

    cfg, _ = ingested
    clip = next(c for c in Manifest.load(Path(cfg.out) / "manifest.jsonl").clips if c.split == "train"
                and "vfr" not in c.clip_id and "portrait" not in c.clip_id)
    z = np.load(clip.path("features"))
    got = capture_video(clip.path("video"), Path(cfg.out), identity=clip.identity)
    assert got["expression"].shape == z["expression"].shape and got["face_found"].all()
    r = np.corrcoef(got["expression"][:, 0], z["expression"][:, 0])[0, 1]
    assert r > 0.8, r
    assert np.abs(got["landmarks2d"] - z["landmarks2d"]).mean() < 3.0   # pixels at 256
    # A small video (a quick-profile output) is upscaled for the detector; landmarks come back in its pixels.
    v = media.read_video(clip.path("video"))
    import cv2

    small = np.stack([cv2.resize(f, (80, 80), interpolation=cv2.INTER_AREA) for f in v.frames])
    media.write_video(tmp_path / "small.mp4", small, 25, v.audio)
    got80 = capture_video(tmp_path / "small.mp4", Path(cfg.out))   # unknown identity: its own mean face
    assert got80["face_found"].mean() > 0.9
    assert np.abs(got80["landmarks2d"] * (256 / 80) - z["landmarks2d"]).mean() < 6.0
    assert np.isfinite(got80["expression"]).all() and np.isfinite(got80["pose"]).all()
    assert np.corrcoef(got80["expression"][:, 0], z["expression"][:, 0])[0, 1] > 0.6
    # no face: a clear error, no numbers
    noise = np.random.default_rng(0).integers(0, 256, (30, 96, 96, 3), dtype=np.uint8)
    media.write_video(tmp_path / "noise.mp4", noise, 25, None)
    with pytest.raises(VastbenchError, match="no face found"):
        capture_video(tmp_path / "noise.mp4", Path(cfg.out))


@e2e
def test_mediapipe_rasterizer_redraws_the_ingested_faces(ingested):
    """The real-data MeshRasterizer: (expression, pose) -> the mesh, its mask and landmarks, as ingestion saw them."""
    from vastbench.data.ingest.rasterizer import MediaPipeRasterizer
    from vastbench.data.manifest import Manifest
    from vastbench.vast.conditioning import MeshRasterizer

    cfg, _ = ingested
    clip = next(c for c in Manifest.load(Path(cfg.out) / "manifest.jsonl").clips if c.split == "train")
    z = np.load(clip.path("features"))
    r = MediaPipeRasterizer(Path(cfg.out), clip.identity, 256)
    assert isinstance(r, MeshRasterizer)
    out = r.rasterize(z["expression"], z["pose"])
    assert out.mesh_images.shape == (clip.n_frames, 256, 256, 3) and out.mesh_images.dtype == np.uint8
    # 16 PCA components reconstruct the tracked face to within a pixel or two at 256 px
    assert np.linalg.norm(out.landmarks2d - z["landmarks2d"], axis=-1).mean() < 2.0
    tracked = G.unpack_masks(z["face_mask_bits"], 256)
    iou = (out.face_masks & tracked).sum() / (out.face_masks | tracked).sum()
    assert iou > 0.95
    # the red inner-mouth area follows the measured lip opening
    red = ((out.mesh_images[..., 0] > 150) & (out.mesh_images[..., 1] < 90)).sum((1, 2))
    opening = np.linalg.norm(z["landmarks2d"][:, 66] - z["landmarks2d"][:, 62], axis=-1)
    assert np.corrcoef(red, opening)[0, 1] > 0.7
    with pytest.raises(VastbenchError, match="no speaker 'nobody'"):
        MediaPipeRasterizer(Path(cfg.out), "nobody", 256).rasterize(z["expression"][:2], z["pose"][:2])



# ----------------------------------------------------------------------------- the real-data path: metrics and VAST
@e2e
def test_metrics_on_an_ingested_dataset_capture_through_mediapipe(ingested, tmp_path):
    """The runner binds face-capture metrics to the dataset: MediaPipe + its face model, labelled as such."""
    from vastbench.config import load_suite
    from vastbench.data.ingest.capture import MediaPipeCapture
    from vastbench.data.manifest import Manifest
    from vastbench.data.requests import Request
    from vastbench.metrics.expressiveness import MOUTH_VERTICES, region_std
    from vastbench.rundir import RunDir
    from vastbench.runner import Runner

    cfg, summary = ingested
    names = ["m_lmd", "f_lmd", "expr_std_mouth", "upper_dyn_dev", "style_sim"]
    suite = load_suite("controls", ["dataset.name=manifest", f"dataset.root={cfg.out}", f"metrics=[{','.join(names)}]"])
    runner = Runner(suite, RunDir(tmp_path / "run"))
    runner.stage_data()
    metrics = {m.name: m for m in runner.metrics}
    for m in metrics.values():
        assert isinstance(m.capture, MediaPipeCapture) and m.version == "1+mediapipe"
        d = m.describe()
        assert d["face_capture"].startswith("mediapipe") and d["face_model"] == summary["face_model"]["hash"]
        assert "MediaPipe" in m.footnote and summary["face_model"]["hash"] in m.footnote
    assert metrics["style_sim"].label == "Style-Sim*" and metrics["style_sim"].describe()["style_net"] is None

    # Ground truth against itself (and as its own style prompt), a held-out speaker's clip.
    clip = runner.manifest.split("test")[0]
    req = Request("r0", clip.identity, clip.clip_id, clip.clip_id, clip.clip_id, 0, clip.clip_id)
    sample = runner._sample(req, clip.path("video"))
    values = {n: metrics[n](sample) for n in names}
    print("ground truth vs itself, MediaPipe capture:", values)
    assert values["m_lmd"] == pytest.approx(0.0, abs=1e-6) and values["f_lmd"] == pytest.approx(0.0, abs=1e-6)
    assert values["upper_dyn_dev"] == pytest.approx(0.0, abs=1e-9)
    assert values["style_sim"] == pytest.approx(1.0, abs=1e-9)
    # Mouth motion in px at 256: what the dataset's own features say for this clip, within capture noise.
    truth = region_std(metrics["expr_std_mouth"].capture.vertex_motion(np.load(clip.path("features"))["expression"],
                                                                       MOUTH_VERTICES), list(range(60)))
    assert 0.2 < values["expr_std_mouth"] < 20 and values["expr_std_mouth"] == pytest.approx(truth, rel=0.2)
    # LSE's face boxes come from the same capture.
    lm = sample.cache["generated_capture_mediapipe"]["landmarks2d"]
    assert lm.shape == (clip.n_frames, 68, 2) and np.abs(lm - np.load(clip.path("features"))["landmarks2d"]).mean() < 3

    # Another speaker's clip as the style prompt: a cosine below 1.
    other = next(c for c in runner.manifest.split("train") if c.identity != clip.identity and "portrait" not in c.clip_id)
    req2 = Request("r1", clip.identity, clip.clip_id, clip.clip_id, other.clip_id, 0, clip.clip_id)
    sim = metrics["style_sim"](runner._sample(req2, clip.path("video")))
    assert -1.0 <= sim < 0.999

    # SynthTalk (no face model beside the manifest) keeps the shipped network, unlabelled.
    from vastbench.metrics.landmarks import MLMD

    plain = MLMD()
    plain.bind_dataset(Manifest(Manifest.load(Path(cfg.out) / "manifest.jsonl").clips, tmp_path / "manifest.jsonl"))
    assert plain.capture.kind == "synthtalk" and plain.version == "1" and plain.footnote is None


@e2e
def test_vast_generator_draws_mediapipe_meshes_on_an_ingested_dataset(ingested, tmp_path):
    """VAST and the systems on its renderer path rasterize the ingested speaker's MediaPipe mesh."""
    from baselines.neutral.generator import Neutral
    from baselines.styletalk_style.generator import StyleTalkStyle
    from vastbench.data.ingest.rasterizer import MediaPipeRasterizer
    from vastbench.data.manifest import Manifest
    from vastbench.generators import GenContext
    from vastbench.vast.generator import VastGenerator

    cfg, summary = ingested
    manifest = Manifest.load(Path(cfg.out) / "manifest.jsonl")
    clip = manifest.split("test")[0]
    z = np.load(clip.path("features"))
    for cls in (VastGenerator, Neutral, StyleTalkStyle):
        gen = cls(cls.name, GenContext(manifest=manifest, cache_dir=tmp_path))
        gen._check_dataset()
        rast = gen.rasterizer(clip.identity)
        assert isinstance(rast, MediaPipeRasterizer) and rast.size == gen.size == 256
        assert gen.describe()["face_model"] == summary["face_model"]["hash"]
    images = rast.rasterize(z["expression"][:10], z["pose"][:10]).mesh_images
    assert images.shape == (10, 256, 256, 3) and images.dtype == np.uint8
    assert 0.1 < (images.max(-1) > 0).mean() < 0.7   # a face-sized drawing, not an empty or full frame
    # A dataset that is neither SynthTalk nor ingested is refused with a reason.
    bare = Manifest(manifest.clips, tmp_path / "manifest.jsonl")
    with pytest.raises(VastbenchError, match="vastbench data ingest"):
        VastGenerator("vast", GenContext(manifest=bare))._check_dataset()

@needs_mediapipe
def test_wav2vec2_ppg_without_its_weights_stops_before_any_video(tmp_path, monkeypatch):
    _touch(tmp_path / "src", "alice/a.mp4")
    monkeypatch.setenv("VASTBENCH_WAV2VEC2", str(tmp_path / "no_model"))
    proc = run_cli("data", "ingest", "--layout", "folder", "--src", str(tmp_path / "src"), "--out",
                   str(tmp_path / "o"), "--ppg", "wav2vec2")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    err = (proc.stderr + proc.stdout).strip().splitlines()
    assert len(err) == 1 and "wav2vec2 phoneme model not found" in err[0]
    assert not (tmp_path / "o" / "skipped.jsonl").exists()


@e2e
def test_vast_and_its_baselines_train_and_generate_on_an_ingested_dataset(ingested, tmp_path, monkeypatch):
    """The expression models take the dataset's PCA width and channel groups; `vastbench run` goes end to end."""
    import yaml

    from vastbench.data.ingest.geometry import FaceModel
    from vastbench.data.manifest import Manifest
    from vastbench.data.requests import load_requests
    from vastbench.rundir import RunDir
    from vastbench.vast.checkpoint import load_model
    from vastbench.vast.config import dataset_overrides

    cfg, summary = ingested
    manifest = Manifest.load(Path(cfg.out) / "manifest.jsonl")
    face_model = FaceModel.load(Path(cfg.out) / "face_model.npz")
    over = dataset_overrides(manifest)
    mouth, upper = face_model.channel_groups()
    assert over["expr_dim"] == face_model.n_components == 16
    assert over["mouth_channels"] == over["articulators"] == mouth and over["upper_channels"] == upper
    assert mouth and sorted(mouth + upper) == list(range(16))
    # The component with the most variance on talking faces is speech (jaw, lips): a mouth channel.
    assert 0 in mouth, (mouth, upper)

    # A few steps: this checks shapes and plumbing, not quality (the full renderer at 256 px takes ~45 s a step
    # on two CPU cores; its outputs are not yet faces, so face-capture metrics would rightly refuse them).
    fast = {"steps": 8, "renderer_steps": 1, "renderer_clips": 1}
    suite = {
        "version": 1, "name": "ingested_vast",
        "dataset": {"name": "manifest", "root": str(cfg.out)},
        # spkB's one clip is its test clip, so its renderer would have nothing to train on: drive spkA.
        "requests": {"split": "train", "prompt": "same_style", "identities": ["spkA"], "limit": 1, "seed": 0},
        "systems": [{"label": "ground_truth", "generator": "ground_truth"},
                    {"label": "vast", "generator": "vast", "args": fast},
                    {"label": "styletalk_style", "generator": "styletalk_style", "args": fast},
                    {"label": "neutral", "generator": "neutral", "args": fast}],
        "metrics": ["psnr", "ssim"],
        "statistics": {"ci": 0.95, "bootstrap": 200, "reference": "ground_truth"},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    # A private cache: the models trained here must not show up in other tests' counts of the session cache.
    cache = tmp_path / "cache"
    monkeypatch.setenv("VASTBENCH_CACHE", str(cache))
    proc = run_cli("run", "--suite", str(path), "--out", str(tmp_path / "run"), "--jobs", "2", timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = RunDir(tmp_path / "run")
    errors = [p.read_text() for p in (tmp_path / "run").rglob("errors.jsonl") if p.read_text().strip()]
    assert not errors, errors
    clip = manifest[load_requests(run.requests_path)[0].driving]
    for system in ("vast", "styletalk_style", "neutral"):
        video = media.read_video(run.clip_path(system, "r0000"))
        assert video.frames.shape[1:] == (256, 256, 3)
        assert len(video.frames) == clip.n_frames and len(video.audio) == pytest.approx(clip.n_frames * 640, abs=640)
    models = sorted((cache / "systems").glob("vast-vast-*/model.pt"))
    loaded = [load_model(p).cfg for p in models]
    assert any(c.expr_dim == 16 and c.mouth_channels == mouth for c in loaded), [c.expr_dim for c in loaded]
