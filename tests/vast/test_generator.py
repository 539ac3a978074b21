"""The end-to-end VAST generator and the expression baselines that share its renderer, through the runner.

Tiny step counts (the models are barely trained): these tests check plumbing, sharing, lengths,
failure isolation and determinism, not quality (the ablation suite measures that).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from vastbench import media
from vastbench.config import SuiteConfig
from vastbench.controls.controls import n_frames_for
from vastbench.rundir import RunDir, sha256_file
from vastbench.runner import run_suite

FAST = {"steps": 12, "renderer_steps": 6, "renderer_clips": 2}


def suite(systems: list[dict], limit: int = 2, metrics=("psnr",), mos: dict | None = None) -> SuiteConfig:
    return SuiteConfig.model_validate({
        **({"mos": mos} if mos else {}),
        "version": 1, "name": "gen-test",
        "dataset": {"name": "synthtalk", "profile": "quick", "seed": 0},
        "requests": {"split": "test", "prompt": "same_style", "identities": ["id03"], "limit": limit, "seed": 0},
        "systems": systems, "metrics": list(metrics),
        "statistics": {"ci": 0.95, "bootstrap": 200, "reference": systems[0]["label"]},
    })


@pytest.fixture(scope="module")
def e2e_run(synthtalk_quick, tmp_path_factory):
    cfg = suite([
        {"label": "vast", "generator": "vast", "args": dict(FAST)},
        {"label": "no_ppg", "generator": "vast", "args": {**FAST, "renderer_ppg": False}},
        {"label": "styletalk", "generator": "styletalk_style", "args": dict(FAST)},
        {"label": "neutral", "generator": "neutral", "args": dict(FAST)},
        {"label": "broken", "generator": "vast", "args": {**FAST, "renderer": "full"}},
    ], mos={"enabled": True, "systems": ["vast", "no_ppg", "styletalk", "neutral"], "clips": 2, "judges": 2,
            "ratings_per_clip": 1})
    root = tmp_path_factory.mktemp("e2e") / "run"
    result = run_suite(cfg, RunDir(root), device="cpu", jobs=2)
    return result, synthtalk_quick


def test_every_system_writes_playable_mp4s_of_the_driving_audio_length(e2e_run):
    result, manifest = e2e_run
    run = result.run
    reqs = [json.loads(line) for line in run.requests_path.read_text().splitlines()]
    assert len(reqs) == 2 and all(r["identity"] == "id03" for r in reqs)
    for label in ("vast", "no_ppg", "styletalk", "neutral"):
        for r in reqs:
            audio, sr = media.read_wav(manifest[r["driving"]].path("audio"))
            video = media.read_video(run.clip_path(label, r["request_id"]), require_audio=True)
            assert video.frames.shape[1:] == (80, 80, 3)
            assert len(video.frames) == n_frames_for(audio, sr)
            assert video.audio is not None and abs(len(video.audio) - len(audio)) <= sr // 25
        assert result.summary["systems"][label]["n_failed"] == 0
        # the face is drawn: the output differs from the eroded background and is not constant in time
        frames = media.read_video(run.clip_path(label, reqs[0]["request_id"]), with_audio=False).frames
        assert frames.std(axis=0).mean() > 0.1


def test_systems_share_training_and_a_failed_system_is_isolated(e2e_run):
    result, _ = e2e_run
    import os
    from pathlib import Path

    systems = Path(os.environ["VASTBENCH_CACHE"]) / "systems"
    renderers = sorted(p.name for p in systems.glob("renderer-id03-*") if p.is_dir())
    assert len(renderers) == 2, renderers  # with and without PPG, shared by vast, styletalk and neutral
    assert len([p for p in systems.glob("vast-vast-*") if p.is_dir()]) == 1
    assert len([p for p in systems.glob("vast-no_style-*") if p.is_dir()]) == 1  # the neutral baseline
    assert len([p for p in systems.glob("styletalk-*") if p.is_dir()]) == 1
    broken = result.summary["systems"]["broken"]
    assert broken["n_generated"] == 0 and broken["n_failed"] == 2
    assert all("renderer preset 'full' works at 256 px" in why for why in broken["failures"].values())
    assert result.summary["systems"]["vast"]["n_generated"] == 2


def test_the_run_creates_a_ready_to_serve_mos_study(e2e_run):
    result, _ = e2e_run
    study = result.mos_study
    assert study is not None and (study / "study.json").exists() and (study / "ratings.db").exists()
    links = (study / "private" / "links.csv").read_text().strip().splitlines()
    assert len(links) == 1 + 2  # header + one link per judge
    assert (study / "private" / "admin_password.txt").stat().st_mode & 0o077 == 0
    assert "mos_study" in json.loads(result.run.manifest_path.read_text())


def test_outputs_differ_between_systems_and_regenerate_identically(e2e_run, tmp_path):
    result, manifest = e2e_run
    run = result.run
    rid = "r0000"
    shas = {label: sha256_file(run.clip_path(label, rid)) for label in ("vast", "no_ppg", "styletalk", "neutral")}
    assert len(set(shas.values())) == 4
    # A second run with the cached models writes the same video (deterministic inference; the encoder
    # may rarely differ in its last bits, tests/helpers.same_numbers, so frames, not bytes, are compared).
    cfg = suite([{"label": "vast", "generator": "vast", "args": dict(FAST)}])
    again = run_suite(cfg, RunDir(tmp_path / "again"), device="cpu", jobs=1)
    a = media.read_video(again.run.clip_path("vast", rid), with_audio=False).frames.astype(np.int16)
    b = media.read_video(run.clip_path("vast", rid), with_audio=False).frames.astype(np.int16)
    assert a.shape == b.shape and np.abs(a - b).mean() < 0.5


def test_generator_rejects_an_unknown_variant(synthtalk_quick):
    from vastbench.errors import VastbenchError
    from vastbench.generators import GenContext
    from vastbench.vast.generator import VastGenerator

    with pytest.raises(VastbenchError, match="did you mean 'no_flow'"):
        VastGenerator("x", GenContext(manifest=synthtalk_quick), variant="no_flw")
    with pytest.raises(VastbenchError, match="has no argument 'variant'"):
        from baselines.neutral.generator import Neutral

        Neutral("n", GenContext(manifest=synthtalk_quick), variant="vast")


def test_vast_expressions_follow_the_requests_batch_equals_single(e2e_run):
    result, manifest = e2e_run
    from vastbench.data.requests import load_requests
    from vastbench.generators import GenContext
    from vastbench.paths import cache_dir
    from vastbench.vast.generator import VastGenerator

    reqs = load_requests(result.run.requests_path)
    gen = VastGenerator("vast", GenContext(manifest=manifest, cache_dir=cache_dir(), requests=reqs), **FAST)
    gen.prepare(manifest, cache_dir())
    batch, _, errs = gen.expressions(reqs)
    single = [gen.expressions([r])[0][0] for r in reqs]
    assert errs == [None, None]
    for b, s in zip(batch, single):
        np.testing.assert_allclose(b, s, atol=1e-5)


@pytest.mark.browser
def test_vast_clip_plays_in_chromium_with_audio(e2e_run, chromium):
    """The generated mp4 decodes and plays in headless Chromium, with its audio track, for its full length.

    Uses the session's browser (tests/mos/conftest.py): a second sync Playwright in the same thread fails."""
    import functools
    import http.server
    import threading

    result, _ = e2e_run
    clip = result.run.clip_path("vast", "r0000")
    n_frames = len(media.read_video(clip, with_audio=False).frames)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(clip.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = chromium.new_page()
    try:
        page.set_content(f'<video src="http://127.0.0.1:{server.server_port}/{clip.name}" preload="auto"></video>')
        state = page.evaluate("""async () => { const v = document.querySelector('video');
            await new Promise((ok, bad) => { v.onloadedmetadata = ok; v.onerror = bad; if (v.readyState >= 1) ok(); });
            v.volume = 0.01; await v.play(); await new Promise(r => setTimeout(r, 700));
            return {d: v.duration, t: v.currentTime, err: v.error && v.error.code,
                    audio: v.webkitAudioDecodedByteCount, video: v.webkitVideoDecodedByteCount}; }""")
    finally:
        page.close()
        server.shutdown()
    assert state["err"] is None and state["t"] > 0, state
    assert abs(state["d"] - n_frames / media.FPS) < 0.06, (state, n_frames)
    assert state["audio"] > 0 and state["video"] > 0, f"no audio or video decoded: {state}"
