"""Checking and normalising the video an external method made for one request.

What a request needs (:class:`Target`) is derived from the request alone: 25 fps,
as many frames as the driving audio lasts (``round(seconds * 25)``, one frame of
tolerance), the reference video's resolution, an audio track.  A video that
already is exactly that - an H.264/yuv420p + AAC mp4 - is copied byte for byte,
so importing the ground-truth clips scores exactly like the ``ground_truth``
control.  Anything else is decoded, fixed where allowed and re-encoded through
:func:`vastbench.media.write_video`; what cannot be fixed raises a one-line
:class:`VastbenchError` naming the file, what is wrong and the fix.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vastbench import media
from vastbench.controls.controls import n_frames_for
from vastbench.data.manifest import Manifest
from vastbench.data.requests import Request
from vastbench.errors import VastbenchError

#: file types accepted in a ``videos`` folder (``<request_id><ext>``), in order of preference.
VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi")
LENGTH_TOLERANCE = 1  # frames


@dataclass(frozen=True)
class Target:
    """What the output of one request must be."""

    n_frames: int
    width: int
    height: int
    audio: Path  # the driving wav, muxed in when the video has no audio

    @property
    def seconds(self) -> float:
        return self.n_frames / media.FPS


def target_for(manifest: Manifest, request: Request) -> Target:
    """The frame count of the driving audio and the resolution of the reference video."""
    wav = manifest[request.driving].path("audio")
    audio, sr = media.read_wav(wav)
    ref = media.probe(manifest[request.reference].path("video"))
    if not ref["width"] or not ref["height"]:
        raise VastbenchError(f"{manifest[request.reference].path('video')}: reference has no video stream; "
                             "rebuild the dataset")
    return Target(n_frames=n_frames_for(audio, sr), width=int(ref["width"]), height=int(ref["height"]), audio=wav)


@dataclass(frozen=True)
class Streams:
    """Container and stream facts that decide whether a file can be kept byte for byte."""

    container: str
    codec: str
    pix_fmt: str | None
    audio_codec: str | None

    def browser_mp4(self, path: Path) -> bool:
        return (path.suffix.lower() == ".mp4" and "mp4" in self.container.split(",")
                and self.codec == "h264" and self.pix_fmt == "yuv420p" and self.audio_codec == "aac")


def inspect_streams(path: Path) -> Streams:
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise VastbenchError(f"{path}: no video stream (audio only?); write a video with the face in it")
            v = c.streams.video[0].codec_context
            a = c.streams.audio[0].codec_context.name if c.streams.audio else None
            return Streams(container=c.format.name, codec=v.name, pix_fmt=v.pix_fmt, audio_codec=a)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VastbenchError(f"{path}: cannot open video ({' '.join(str(exc).split())[:160]}); the file is corrupt "
                             "or not a video, re-encode it with ffmpeg") from None


def find_video(folder: Path, request_id: str) -> Path | None:
    """``folder/<request_id>.<ext>`` for a video extension; two candidates are an error."""
    found = [folder / f"{request_id}{ext}" for ext in VIDEO_EXTS if (folder / f"{request_id}{ext}").is_file()]
    if len(found) > 1:
        raise VastbenchError(f"{folder}: several videos for request {request_id} ({', '.join(p.name for p in found)}); "
                             "keep one")
    return found[0] if found else None


def normalise(src: Path, dst: Path, target: Target, resample: bool = False) -> list[str]:
    """Check ``src`` against ``target`` and write the conforming mp4 to ``dst`` (atomically).

    Returns what was changed (empty: the bytes were copied).  ``resample`` allows
    converting the frame rate and the resolution; without it those are refused.
    """
    src = Path(src)
    if not src.is_file():
        raise VastbenchError(f"{src}: no such video; the method wrote nothing for this request")
    streams = inspect_streams(src)
    video = media.read_video(src, with_audio=True, expected_fps=None)  # full decode: catches corrupt streams
    changes: list[str] = []
    frames = video.frames
    if abs(video.fps - media.FPS) > 1e-3:
        if not resample:
            raise VastbenchError(f"{src}: {video.fps:g} fps, the benchmark needs {media.FPS}; re-encode it "
                                 f"(ffmpeg -i IN -r {media.FPS} OUT) or set resample: true")
        frames = resample_fps(src, media.FPS)
        changes.append(f"fps {video.fps:g} -> {media.FPS}")
    n = len(frames)
    if abs(n - target.n_frames) > LENGTH_TOLERANCE:
        raise VastbenchError(
            f"{src}: {n} frames ({n / media.FPS:.2f} s at {media.FPS} fps) but the driving audio needs "
            f"{target.n_frames} (+-{LENGTH_TOLERANCE}, {target.seconds:.2f} s); generate for the whole driving audio")
    h, w = frames.shape[1:3]
    if (w, h) != (target.width, target.height):
        if not resample:
            raise VastbenchError(f"{src}: {w}x{h} but the reference video is {target.width}x{target.height}; "
                                 "render at the reference's resolution or set resample: true")
        frames = resize(frames, target.width, target.height)
        changes.append(f"size {w}x{h} -> {target.width}x{target.height}")
    audio, sr = video.audio, video.sample_rate
    if audio is None or audio.size == 0:
        audio, sr = media.read_wav(target.audio)
        changes.append("muxed the driving audio")
    if not changes and streams.browser_mp4(src):
        with media.atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
        return changes
    if not streams.browser_mp4(src):
        changes.append(f"re-encoded {streams.codec}/{streams.pix_fmt}/{streams.audio_codec} in {src.suffix or 'file'} "
                       "to H.264/AAC mp4")
    media.write_video(dst, frames, media.FPS, audio, int(sr or media.SAMPLE_RATE))
    return changes


def resample_fps(path: Path, fps: int = media.FPS) -> np.ndarray:
    """Decode ``path`` and convert it to ``fps`` with FFmpeg's ``fps`` filter (nearest frame in time).

    The filter works on the frames' timestamps, so variable-frame-rate files are
    resampled correctly too; this is what ``ffmpeg -i IN -r 25 OUT`` does.
    """
    import av

    out = []
    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            graph = av.filter.Graph()
            src = graph.add_buffer(template=stream)
            flt = graph.add("fps", f"fps={fps}:round=near")
            sink = graph.add("buffersink")
            src.link_to(flt)
            flt.link_to(sink)
            graph.configure()
            for frame in c.decode(stream):
                graph.push(frame)
                out.extend(_drain(graph))
            graph.push(None)
            out.extend(_drain(graph))
    except (av.error.FFmpegError, ValueError) as exc:
        raise VastbenchError(f"{path}: cannot resample the video ({' '.join(str(exc).split())[:160]}); "
                             f"re-encode it at {fps} fps with ffmpeg") from None
    if not out:
        raise VastbenchError(f"{path}: no frames left after resampling to {fps} fps; the video is too short")
    return np.stack(out)


def _drain(graph) -> list[np.ndarray]:
    import av

    frames = []
    while True:
        try:
            frames.append(graph.pull().to_ndarray(format="rgb24"))
        except (av.error.BlockingIOError, av.error.EOFError):
            return frames


def resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """OpenCV area averaging when shrinking (no aliasing), bicubic when enlarging."""
    import cv2

    h, w = frames.shape[1:3]
    interp = cv2.INTER_AREA if width * height < w * h else cv2.INTER_CUBIC
    return np.stack([cv2.resize(np.ascontiguousarray(f), (width, height), interpolation=interp) for f in frames])
