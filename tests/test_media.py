import numpy as np
import pytest
from scipy.io import wavfile

from vastbench import media
from vastbench.errors import VastbenchError


def gradient_frames(t=30, h=48, w=64):
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, ..., 0] = (xx * 4 + i * 3) % 256
        frames[i, ..., 1] = (yy * 5) % 256
        frames[i, ..., 2] = 128
    return frames


def tone(n=19_200, f=440.0):
    return (0.4 * np.sin(2 * np.pi * f * np.arange(n) / media.SAMPLE_RATE)).astype(np.float32)


def test_video_round_trip_within_codec_tolerance(tmp_path):
    frames, audio = gradient_frames(), tone()
    p = media.write_video(tmp_path / "a.mp4", frames, 25, audio)
    v = media.read_video(p)
    assert v.frames.shape == frames.shape and v.fps == 25
    assert np.abs(v.frames.astype(int) - frames).mean() < 3.0
    # Audio length is preserved exactly and the signal is aligned (AAC priming removed).
    assert v.audio.shape == audio.shape
    lag = np.argmax(np.correlate(v.audio[2000:6000], audio[2000:6000], "full")) - 3999
    assert abs(lag) <= 2
    assert np.corrcoef(v.audio, audio)[0, 1] > 0.99
    info = media.probe(p)
    assert info["n_frames"] == 30 and info["has_audio"] and info["width"] == 64


def test_write_is_deterministic_and_atomic(tmp_path):
    frames = gradient_frames(10)
    a = media.write_video(tmp_path / "a.mp4", frames).read_bytes()
    b = media.write_video(tmp_path / "b.mp4", frames).read_bytes()
    assert a == b
    assert not list(tmp_path.glob(".*tmp*"))
    with pytest.raises(VastbenchError, match="even sizes"):
        media.write_video(tmp_path / "odd.mp4", np.zeros((2, 11, 10, 3), np.uint8))
    assert not (tmp_path / "odd.mp4").exists()


def test_bad_videos_give_one_line_reasons(tmp_path):
    with pytest.raises(VastbenchError, match="no such video file"):
        media.read_video(tmp_path / "missing.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VastbenchError, match="empty"):
        media.read_video(empty)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    with pytest.raises(VastbenchError, match="corrupt") as e:
        media.read_video(corrupt)
    assert "\n" not in str(e.value)
    silent = media.write_video(tmp_path / "silent.mp4", gradient_frames(5))
    assert media.read_video(silent).audio is None
    with pytest.raises(VastbenchError, match="no audio stream"):
        media.read_video(silent, require_audio=True)
    fast = media.write_video(tmp_path / "30fps.mp4", gradient_frames(6), fps=30)
    with pytest.raises(VastbenchError, match="30 fps is not supported"):
        media.read_video(fast)
    assert media.read_video(fast, expected_fps=None).fps == 30


def test_truncated_video_is_an_error_not_a_crash(tmp_path):
    good = media.write_video(tmp_path / "g.mp4", gradient_frames(), audio=tone()).read_bytes()
    bad = tmp_path / "trunc.mp4"
    bad.write_bytes(good[: len(good) // 3])
    with pytest.raises(VastbenchError):
        media.read_video(bad)


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
def test_wav_resampling_preserves_duration_and_pitch(tmp_path, sr):
    t = np.arange(int(sr * 0.5)) / sr
    wavfile.write(tmp_path / "a.wav", sr, (0.5 * np.sin(2 * np.pi * 300 * t) * 32767).astype(np.int16))
    audio, out_sr = media.read_wav(tmp_path / "a.wav")
    assert out_sr == 16000 and len(audio) == 8000
    spec = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spec) * 16000 / len(audio) - 300) < 3


def test_wav_formats_and_errors(tmp_path):
    stereo = np.stack([np.full(1600, 0.5), np.full(1600, -0.5)], axis=1).astype(np.float32)
    wavfile.write(tmp_path / "st.wav", 16000, stereo)
    audio, _ = media.read_wav(tmp_path / "st.wav")
    assert audio.shape == (1600,) and np.allclose(audio, 0)
    wavfile.write(tmp_path / "u8.wav", 16000, np.full(100, 255, np.uint8))
    assert media.read_wav(tmp_path / "u8.wav")[0].max() > 0.98
    wavfile.write(tmp_path / "empty.wav", 16000, np.zeros(0, np.int16))
    with pytest.raises(VastbenchError, match="no samples"):
        media.read_wav(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(VastbenchError, match="not a readable wav"):
        media.read_wav(tmp_path / "junk.wav")
    clipped = np.full(160, 2.0, np.float32)
    media.write_wav(tmp_path / "c.wav", clipped)
    assert media.read_wav(tmp_path / "c.wav")[0].max() == pytest.approx(1.0, abs=1e-4)


def test_encoding_does_not_depend_on_memory_alignment(tmp_path):
    """Same pixels at differently aligned addresses must give the same bytes (resume relies on it)."""
    frames = gradient_frames(8)
    digests = set()
    for off in (0, 16, 32, 48):
        buf = np.zeros(frames.nbytes + 64, np.uint8)
        view = buf[off:off + frames.nbytes].reshape(frames.shape)
        view[:] = frames
        digests.add(media.write_video(tmp_path / f"{off}.mp4", view).read_bytes())
    assert len(digests) == 1
