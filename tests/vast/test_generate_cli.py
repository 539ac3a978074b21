"""`vastbench generate`: one clip from any wav and a style prompt; bad prompts and silent audio."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import run_cli
from vastbench import media
from vastbench.controls.controls import n_frames_for

pytestmark = pytest.mark.slow  # trains tiny models through the CLI when the cache is cold

FAST = ["--steps", "12", "--renderer-steps", "6", "--renderer-clips", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def prompt_clip(synthtalk_quick):
    return next(c for c in synthtalk_quick.split("test") if c.identity == "id05")


def test_generate_writes_a_clip_of_the_audio_length(synthtalk_quick, prompt_clip, tmp_path):
    driving = next(c for c in synthtalk_quick.split("test") if c.identity == "id03")
    out = tmp_path / "out.mp4"
    r = run_cli("generate", "--target", "id03", "--audio", str(driving.path("audio")), "--prompt",
                prompt_clip.clip_id, "--out", str(out), *FAST, check=True)
    assert "wrote" in r.stdout
    audio, sr = media.read_wav(driving.path("audio"))
    video = media.read_video(out, require_audio=True)
    assert len(video.frames) == n_frames_for(audio, sr) and video.frames.shape[1:] == (80, 80, 3)


@pytest.mark.parametrize("case, expect", [("short", "at least 25 frames (1 s)"), ("nan", "NaN")])
def test_bad_prompts_get_one_line_reasons(synthtalk_quick, prompt_clip, tmp_path, case, expect):
    z = np.load(prompt_clip.path("features"))
    expr, pose = z["expression"].copy(), z["pose"].copy()
    if case == "short":
        expr, pose = expr[:20], pose[:20]
    else:
        expr[5, 2] = np.nan
    npz = tmp_path / "prompt.npz"
    np.savez(npz, expression=expr, pose=pose)
    r = run_cli("generate", "--target", "id03", "--audio", str(prompt_clip.path("audio")), "--prompt-npz", str(npz),
                "--out", str(tmp_path / "x.mp4"), *FAST)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and expect in lines[0], r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x.mp4").exists()


def test_silent_audio_gives_a_listening_face_with_a_warning(synthtalk_quick, prompt_clip, tmp_path):
    wav = tmp_path / "silence.wav"
    media.write_wav(wav, np.zeros(2 * media.SAMPLE_RATE, np.float32))
    out = tmp_path / "silent.mp4"
    r = run_cli("generate", "--target", "id03", "--audio", str(wav), "--prompt", prompt_clip.clip_id,
                "--out", str(out), *FAST, check=True)
    assert "no speech" in r.stderr and "listening face" in r.stderr
    assert len(media.read_video(out, with_audio=False).frames) == 50


def test_unknown_target_and_missing_prompt(synthtalk_quick, prompt_clip, tmp_path):
    r = run_cli("generate", "--target", "id3", "--audio", str(prompt_clip.path("audio")), "--prompt",
                prompt_clip.clip_id, "--out", str(tmp_path / "x.mp4"), *FAST)
    assert r.returncode == 2 and "did you mean 'id03'" in r.stderr
    r = run_cli("generate", "--target", "id03", "--audio", str(prompt_clip.path("audio")),
                "--out", str(tmp_path / "x.mp4"), *FAST)
    assert r.returncode == 2 and "--prompt CLIP_ID or --prompt-npz" in r.stderr
