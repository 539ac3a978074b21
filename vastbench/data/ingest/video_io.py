"""Streaming video IO for ingestion: any frame rate in, 25 fps out; any audio in, 16 kHz mono out.

``vastbench.media.read_video`` decodes a whole clip into memory, which suits
SynthTalk-sized clips but not a five-minute 1080p interview (tens of GB of
frames).  Ingestion therefore streams: frames are decoded one at a time,
resampled to the 25 fps grid on the fly and handed to the caller, and the
cropped output is encoded frame by frame with the same encoder settings as
``media.write_video`` (H.264 main/yuv420p crf 16, AAC, ``+faststart``).

Frame-rate conversion works on presentation timestamps, so variable frame rate
input (phone recordings, screen captures) is handled like constant rate: output
frame ``k`` (time ``k / 25`` s after the first frame) shows the source frame
whose timestamp is nearest, the rule of ffmpeg's ``fps`` filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from vastbench import media
from vastbench.errors import VastbenchError

FPS = media.FPS
SAMPLE_RATE = media.SAMPLE_RATE
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS


@dataclass
class SourceInfo:
    path: Path
    width: int
    height: int
    fps: float | None        # average rate the container declares (None when unknown)
    duration: float | None   # seconds, from the container
    has_audio: bool


def _open(path: Path):
    import av

    if not path.exists():
        raise VastbenchError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VastbenchError(f"{path}: unreadable: the file is empty (0 bytes)")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        why = media._short(exc).replace(f": '{path}'", "").replace(str(path), path.name)
        raise VastbenchError(f"{path}: unreadable: cannot open it as a video ({why})") from None


def probe(path: str | Path) -> SourceInfo:
    """Cheap metadata; a file that is not a video raises ``VastbenchError`` ("unreadable: ...")."""
    path = Path(path)
    with _open(path) as c:
        if not c.streams.video:
            raise VastbenchError(f"{path}: unreadable: no video stream")
        v = c.streams.video[0]
        dur = None
        if v.duration is not None and v.time_base is not None:
            dur = float(v.duration * v.time_base)
        elif c.duration:
            dur = c.duration / 1e6
        return SourceInfo(path=path, width=int(v.codec_context.width), height=int(v.codec_context.height),
                          fps=float(v.average_rate) if v.average_rate else None, duration=dur,
                          has_audio=bool(c.streams.audio))


def iter_frames(path: str | Path, fps: int = FPS) -> Iterator[np.ndarray]:
    """RGB uint8 frames (H, W, 3) on the ``fps`` grid, nearest source frame by timestamp."""
    import av

    path = Path(path)
    with _open(path) as c:
        if not c.streams.video:
            raise VastbenchError(f"{path}: unreadable: no video stream")
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or fps)
        prev, prev_t, t0, k, n_in = None, None, None, 0, 0
        intervals: list[float] = []
        last_duration = None
        try:
            for frame in c.decode(stream):
                t = frame.time if frame.time is not None else n_in / rate
                n_in += 1
                if t0 is None:
                    t0 = t
                t -= t0
                if prev is not None and t <= prev_t:
                    continue  # a duplicate or out-of-order timestamp: keep the first
                img = frame.to_ndarray(format="rgb24")
                if frame.duration is not None and stream.time_base is not None:
                    last_duration = float(frame.duration * stream.time_base)
                if prev is not None:
                    intervals.append(t - prev_t)
                    mid = 0.5 * (prev_t + t)
                    while k / fps < mid:
                        yield prev
                        k += 1
                prev, prev_t = img, t
        except (av.error.FFmpegError, ValueError) as exc:
            if prev is None:
                raise VastbenchError(f"{path}: unreadable: the video stream is corrupt ({media._short(exc)})") from None
            # A damaged tail: keep what decoded (common in cut recordings).
        if prev is None:
            raise VastbenchError(f"{path}: unreadable: the video stream has no frames")
        step = last_duration or (float(np.median(intervals)) if intervals else 1.0 / rate)
        end = prev_t + step
        n_out = max(k + 1, int(round(end * fps)))
        while k < n_out:
            yield prev
            k += 1


def first_video_time(path: str | Path) -> float:
    """Presentation time (s) of the first decoded video frame: audio is aligned to it."""
    path = Path(path)
    with _open(path) as c:
        for frame in c.decode(c.streams.video[0]):
            return float(frame.time or 0.0)
    return 0.0


def read_audio(path: str | Path, n_frames: int, video_start: float = 0.0) -> np.ndarray:
    """Mono float32 16 kHz audio aligned to the video's first frame, exactly ``n_frames * 640`` samples."""
    import av

    path = Path(path)
    chunks: list[np.ndarray] = []
    start = None
    with _open(path) as c:
        if not c.streams.audio:
            raise VastbenchError(f"{path}: no audio track")
        stream = c.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in c.decode(stream):
                if start is None:
                    start = float(frame.time) if frame.time is not None else 0.0
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.error.FFmpegError, ValueError) as exc:
            if not chunks:
                raise VastbenchError(f"{path}: the audio track is corrupt ({media._short(exc)})") from None
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if audio.size == 0:
        raise VastbenchError(f"{path}: no audio track (the audio stream has no samples)")
    offset = int(round(((start or 0.0) - video_start) * SAMPLE_RATE))
    if offset > 0:
        audio = np.concatenate([np.zeros(offset, np.float32), audio])
    elif offset < 0:
        audio = audio[-offset:]
    n = n_frames * SAMPLES_PER_FRAME
    out = np.zeros(n, np.float32)
    out[: min(n, audio.size)] = audio[:n]
    return np.clip(out, -1.0, 1.0)


class VideoWriter:
    """Frame-by-frame H.264 + AAC mp4 writer with ``media.write_video``'s settings, written atomically."""

    def __init__(self, path: str | Path, size: tuple[int, int], audio: np.ndarray | None = None, fps: int = FPS,
                 crf: int = 16):
        self.path = Path(path)
        self.audio = audio
        self.w, self.h = size
        if self.w % 2 or self.h % 2:
            raise VastbenchError(f"{self.path}: H.264/yuv420p needs even sizes, got {self.w}x{self.h}")
        self.fps, self.crf = fps, crf
        self.n = 0

    def __enter__(self) -> "VideoWriter":
        import av

        self._atomic = media.atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._out = av.open(str(self._tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        vs = self._out.add_stream("libx264", rate=Fraction(int(self.fps)))
        vs.width, vs.height, vs.pix_fmt = self.w, self.h, "yuv420p"
        vs.options = {"crf": str(self.crf), "preset": "medium", "profile": "main", "threads": "1"}
        self._vs = vs
        self._as = None
        if self.audio is not None:  # every stream must exist before the first packet is muxed
            self._as = self._out.add_stream("aac", rate=SAMPLE_RATE)
            self._as.layout = "mono"
        return self

    def write(self, frame: np.ndarray) -> None:
        import av

        vf = av.VideoFrame.from_ndarray(media._aligned(np.ascontiguousarray(frame)), format="rgb24")
        for packet in self._vs.encode(vf.reformat(format="yuv420p")):
            self._out.mux(packet)
        self.n += 1

    def finish(self) -> None:
        for packet in self._vs.encode():
            self._out.mux(packet)
        if self._as is not None:
            media._encode_audio(self._out, self._as, self.audio, SAMPLE_RATE)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._out.close()
        self._atomic.__exit__(exc_type, exc, tb)
