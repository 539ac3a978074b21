"""Media IO in one place: mp4 (H.264 + AAC) and wav read/write, resampling.

Every clip vastbench writes is an mp4 that plays in Chromium: H.264 video in
yuv420p, AAC audio, ``+faststart`` so the browser can start before the whole file
arrives.  The wav beside it (16 kHz mono) is the canonical audio; AAC adds
encoder priming and padding, so audio decoded from an mp4 is trimmed to the
length the container declares.

All writes are atomic: the file is written under a temporary name in the same
directory and renamed into place, so a killed process never leaves a half clip.

Errors a user can cause (a corrupt file, a missing stream, an empty stream, a
frame rate we do not support) raise :class:`VastbenchError` with one line naming
the file and the fix.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from pathlib import Path

import numpy as np

from vastbench.errors import VastbenchError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
FPS = 25
_SUPPORTED_FPS = (25,)


@dataclass
class Video:
    """A decoded clip: frames ``(T, H, W, 3)`` uint8 RGB and optional mono audio."""

    frames: np.ndarray
    fps: float
    audio: np.ndarray | None = None  # (N,) float32 in [-1, 1]
    sample_rate: int | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps


# --------------------------------------------------------------------------- atomic
def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def atomic_path(path: str | Path):
    """Context manager yielding a temp path beside ``path``; renamed on success."""
    return _AtomicPath(Path(path))


class _AtomicPath:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}", dir=self.path.parent
        )
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.chmod(self.tmp, _FILE_MODE)  # mkstemp makes 0600; clips are served to others
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- audio
def to_mono_float(audio: np.ndarray, source: str = "audio") -> np.ndarray:
    """Mix down to mono and convert integer PCM to float32 in [-1, 1]."""
    audio = np.asarray(audio)
    if audio.ndim == 2:
        # wav files are (N, C); a (C, N) array with few rows is transposed.
        if audio.shape[0] <= 8 and audio.shape[1] > audio.shape[0]:
            audio = audio.T
        audio = audio.astype(np.float64).mean(axis=1) if not np.issubdtype(
            audio.dtype, np.integer) else _int_to_float(audio).mean(axis=1)
    elif audio.ndim != 1:
        raise VastbenchError(f"{source}: audio must be 1-D or (samples, channels), got shape {audio.shape}")
    if np.issubdtype(audio.dtype, np.integer):
        audio = _int_to_float(audio)
    audio = audio.astype(np.float32)
    if not np.all(np.isfinite(audio)):
        raise VastbenchError(f"{source}: audio contains NaN or inf samples; re-export it")
    return audio


def _int_to_float(audio: np.ndarray) -> np.ndarray:
    info = np.iinfo(audio.dtype)
    if info.min == 0:  # unsigned 8-bit wav
        return (audio.astype(np.float64) - (info.max + 1) / 2) / ((info.max + 1) / 2)
    return audio.astype(np.float64) / float(-info.min)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (scipy), exact for rational ratios such as 44.1k -> 16k."""
    if sr_in == sr_out:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(int(sr_in), int(sr_out))
    out = resample_poly(audio.astype(np.float64), sr_out // g, sr_in // g)
    return out.astype(np.float32)


def read_wav(path: str | Path, sample_rate: int | None = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Read a wav as mono float32; resample to ``sample_rate`` unless it is None."""
    from scipy.io import wavfile

    path = Path(path)
    if not path.exists():
        raise VastbenchError(f"{path}: no such audio file; check the manifest's audio path")
    try:
        sr, data = wavfile.read(path)
    except (ValueError, OSError, EOFError) as exc:
        raise VastbenchError(f"{path}: not a readable wav ({exc}); re-export it as PCM wav") from None
    if data.size == 0 or data.shape[0] == 0:
        raise VastbenchError(f"{path}: wav has no samples; re-export the audio")
    audio = to_mono_float(data, str(path))
    if sample_rate is not None:
        audio = resample(audio, int(sr), sample_rate)
        sr = sample_rate
    return audio, int(sr)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono 16-bit PCM atomically."""
    from scipy.io import wavfile

    path = Path(path)
    pcm = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    pcm = np.round(pcm * 32767.0).astype(np.int16)
    with atomic_path(path) as tmp:
        wavfile.write(tmp, int(sample_rate), pcm)
    return path


# --------------------------------------------------------------------------- video
def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: int = FPS,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    crf: int = 16,
) -> Path:
    """Encode ``frames`` (T, H, W, 3) uint8 RGB to H.264/yuv420p mp4 with optional AAC audio.

    ``crf`` 16 is close to visually lossless; metrics against ground truth then
    measure the generator, not the codec.
    """
    import av

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise VastbenchError(f"{path}: frames must be (T>0, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise VastbenchError(f"{path}: frames must be uint8, got {frames.dtype}")
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise VastbenchError(f"{path}: H.264/yuv420p needs even sizes, got {w}x{h}; crop or pad by one pixel")
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
            vs = out.add_stream("libx264", rate=Fraction(int(fps)))
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
            # Deterministic, browser-safe: main profile, one thread (x264 output
            # then does not depend on the machine's core count).
            vs.options = {"crf": str(crf), "preset": "medium", "profile": "main", "threads": "1"}
            astream = None
            if audio is not None:
                astream = out.add_stream("aac", rate=int(sample_rate))
                astream.layout = "mono"
            for frame in frames:
                vf = av.VideoFrame.from_ndarray(_aligned(frame), format="rgb24").reformat(format="yuv420p")
                for packet in vs.encode(vf):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
            if astream is not None:
                _encode_audio(out, astream, to_mono_float(audio, str(path)), int(sample_rate))
    return path


def _aligned(frame: np.ndarray, align: int = 64) -> np.ndarray:
    """A copy of ``frame`` at a 64-byte-aligned address.

    FFmpeg's colour conversion takes different SIMD paths for differently
    aligned input, so the same pixels at another address can encode to other
    bytes.  Aligning every frame makes encoding reproducible across processes,
    which resume-equals-uninterrupted relies on.
    """
    buf = np.empty(frame.nbytes + align, np.uint8)
    start = (-buf.ctypes.data) % align
    out = buf[start:start + frame.nbytes].reshape(frame.shape)
    out[...] = frame
    return out


def _encode_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    import av

    chunk = 1024
    pts = 0
    for start in range(0, len(audio), chunk):
        block = audio[start:start + chunk].astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = pts
        pts += block.shape[1]
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def read_video(
    path: str | Path,
    with_audio: bool = True,
    require_audio: bool = False,
    expected_fps: tuple[int, ...] | None = _SUPPORTED_FPS,
) -> Video:
    """Decode an mp4 into RGB frames and (optionally) mono audio at 16 kHz."""
    import av

    path = Path(path)
    if not path.exists():
        raise VastbenchError(f"{path}: no such video file; check the path in the manifest or request")
    if path.stat().st_size == 0:
        raise VastbenchError(f"{path}: video file is empty (0 bytes); regenerate or re-encode it")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VastbenchError(f"{path}: cannot open video ({_short(exc)}); the file is corrupt or not a video, re-encode it with ffmpeg") from None
    with container:
        if not container.streams.video:
            raise VastbenchError(f"{path}: no video stream; this file holds audio only")
        vstream = container.streams.video[0]
        fps = float(vstream.average_rate or vstream.guessed_rate or 0)
        if expected_fps is not None and not any(abs(fps - f) < 1e-3 for f in expected_fps):
            raise VastbenchError(
                f"{path}: frame rate {fps:g} fps is not supported (need {'/'.join(map(str, expected_fps))}); "
                f"resample with `ffmpeg -i IN -r 25 OUT`")
        try:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(vstream)]
        except (av.error.FFmpegError, ValueError) as exc:
            raise VastbenchError(f"{path}: video stream is corrupt ({_short(exc)}); re-encode it with ffmpeg") from None
        if not frames:
            raise VastbenchError(f"{path}: video stream has zero frames; regenerate the clip")
        audio = None
        sr = None
        if with_audio or require_audio:
            if not container.streams.audio:
                if require_audio:
                    raise VastbenchError(f"{path}: no audio stream; mux the speech in (ffmpeg -i video -i audio.wav)")
            else:
                audio, sr = _decode_audio(container, path)
                if audio.size == 0 and require_audio:
                    raise VastbenchError(f"{path}: audio stream has zero samples; re-encode the audio")
    return Video(frames=np.stack(frames), fps=fps, audio=audio, sample_rate=sr)


def _decode_audio(container, path: Path) -> tuple[np.ndarray, int]:
    import av

    container.seek(0)
    astream = container.streams.audio[0]
    sr_in = astream.rate or astream.sample_rate
    chunks = []
    try:
        for frame in container.decode(astream):
            data = frame.to_ndarray()
            if data.ndim == 2 and frame.format.is_planar:
                data = data.mean(axis=0)
            elif data.ndim == 2:
                data = data.reshape(-1, len(frame.layout.channels)).mean(axis=1)
            chunks.append(to_mono_float(data, str(path)))
    except (av.error.FFmpegError, ValueError) as exc:
        raise VastbenchError(f"{path}: audio stream is corrupt ({_short(exc)}); re-encode it") from None
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    # Trim AAC end padding to the declared duration.
    if astream.duration is not None and astream.time_base is not None:
        n = int(round(float(astream.duration * astream.time_base) * sr_in))
        if 0 < n < audio.size:
            audio = audio[:n]
    return resample(audio, int(sr_in), SAMPLE_RATE), SAMPLE_RATE


def probe(path: str | Path) -> dict:
    """Cheap metadata: frame count, fps, size, whether audio is present."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as c:
            v = c.streams.video[0] if c.streams.video else None
            return {
                "fps": float(v.average_rate) if v is not None and v.average_rate else None,
                "n_frames": int(v.frames) if v is not None else 0,
                "width": v.codec_context.width if v is not None else None,
                "height": v.codec_context.height if v is not None else None,
                "has_audio": bool(c.streams.audio),
                "duration": float(c.duration / 1e6) if c.duration else None,
            }
    except (av.error.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise VastbenchError(f"{path}: cannot probe video ({_short(exc)}); re-encode it") from None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160]
