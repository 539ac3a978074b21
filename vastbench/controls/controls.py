"""Controls: ground truth, a static frame, and ground truth with shifted audio.

They anchor every table: ground truth is the ceiling, ``static`` has no motion,
and ``shifted_audio`` is the known-bad lip-sync anchor (the gold clip of MOS
studies: judges must rate its sync low).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from vastbench import media
from vastbench.data.requests import Request
from vastbench.errors import VastbenchError
from vastbench.generators import Generator
from vastbench.media import atomic_path


def n_frames_for(audio: np.ndarray, sr: int = media.SAMPLE_RATE, fps: int = media.FPS) -> int:
    """Video frames covering the audio: round(duration * fps), at least one."""
    return max(1, int(round(len(audio) / sr * fps)))


class GroundTruth(Generator):
    """The real clip of the request (bytes copied, after checking it decodes)."""

    name = "ground_truth"

    def generate_one(self, request: Request, out_path: Path) -> None:
        if request.ground_truth is None:
            raise VastbenchError(f"request {request.request_id}: no ground-truth clip exists for it (cross-identity request)")
        clip = self.ctx.manifest[request.ground_truth]
        media.read_wav(clip.path("audio"))
        media.read_video(clip.path("video"), require_audio=True)
        with atomic_path(out_path) as tmp:
            shutil.copyfile(clip.path("video"), tmp)


class StaticFrame(Generator):
    """The reference frame of the target held for the driving audio's length."""

    name = "static"
    defaults = {"frame": 0}

    def generate_one(self, request: Request, out_path: Path) -> None:
        ref = self.ctx.manifest[request.reference]
        audio, sr = media.read_wav(self.ctx.manifest[request.driving].path("audio"))
        frames = media.read_video(ref.path("video"), with_audio=False).frames
        frame = frames[min(int(self.args["frame"]), len(frames) - 1)]
        video = np.repeat(frame[None], n_frames_for(audio, sr), axis=0)
        media.write_video(out_path, video, media.FPS, audio, sr)


class ShiftedAudio(Generator):
    """Ground-truth video with its audio delayed by ``shift_frames`` (negative: advanced).

    Length is preserved: the shifted-out end is dropped and the gap is silence.
    """

    name = "shifted_audio"
    defaults = {"shift_frames": 8}

    def generate_one(self, request: Request, out_path: Path) -> None:
        if request.ground_truth is None:
            raise VastbenchError(f"request {request.request_id}: shifted_audio needs a ground-truth clip")
        clip = self.ctx.manifest[request.ground_truth]
        audio, sr = media.read_wav(clip.path("audio"))
        video = media.read_video(clip.path("video"), with_audio=False)
        media.write_video(out_path, video.frames, media.FPS,
                          shift_audio(audio, int(self.args["shift_frames"]), sr), sr)


def shift_audio(audio: np.ndarray, frames: int, sr: int = media.SAMPLE_RATE, fps: int = media.FPS) -> np.ndarray:
    """Delay (frames > 0) or advance (frames < 0) audio by whole video frames, same length."""
    n = int(round(frames * sr / fps))
    out = np.zeros_like(audio)
    if n >= 0:
        out[n:] = audio[:len(audio) - n] if n < len(audio) else []
    else:
        out[:n] = audio[-n:]
    return out
