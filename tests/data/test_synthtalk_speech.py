"""SynthTalk speech: eSpeak NG synthesis, phone alignment, sentence generator."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

from vastbench.data.synthtalk import sentences, speech
from vastbench.data.synthtalk.speech import Speaker, synthesize
from vastbench.errors import VastbenchError

SR = 16000
TEXT = "The quick brown fox jumps over the lazy dog, then sleeps."


@pytest.fixture(scope="module")
def result():
    return synthesize(TEXT, Speaker(variant="m3"))


def _digest(text: str, speaker: Speaker) -> str:
    res = synthesize(text, speaker)
    h = hashlib.sha256(res.audio.tobytes())
    h.update(repr([(p.symbol, p.start, p.end) for p in res.phones]).encode())
    return h.hexdigest()


def _frames(audio: np.ndarray, win: int = 320, hop: int = 160) -> np.ndarray:
    n = 1 + (len(audio) - win) // hop
    return np.stack([audio[i * hop:i * hop + win] for i in range(n)])


def _runs(mask: np.ndarray) -> int:
    """Number of runs of True in a boolean sequence."""
    m = np.concatenate([[False], mask.astype(bool)])
    return int(np.sum(m[1:] & ~m[:-1]))


def _median_f0(audio: np.ndarray) -> float:
    """Median autocorrelation pitch (60-500 Hz) over clearly voiced 40 ms frames."""
    frames = _frames(audio, win=640, hop=320)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    f0 = []
    for fr in frames[rms > 0.3 * rms.max()]:
        fr = fr - fr.mean()
        ac = np.correlate(fr, fr, "full")[len(fr) - 1:]
        lo, hi = SR // 500, SR // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.4 * ac[0]:
            f0.append(SR / lag)
    assert len(f0) >= 10, "too few voiced frames to estimate F0"
    return float(np.median(f0))


# ----------------------------------------------------------------------------- voices
def test_voices_and_variants_listed():
    voices = speech.list_voices()
    for v in ("en-us", "en", "en-gb-x-rp", "en-029"):
        assert v in voices
    variants = speech.list_variants()
    for v in ("m1", "m3", "f2", "f5", "klatt"):
        assert v in variants
    assert "variant" not in voices


# ----------------------------------------------------------------------------- audio
def test_audio_format(result):
    a = result.audio
    assert a.dtype == np.float32 and a.ndim == 1
    assert result.sample_rate == SR
    assert np.all(np.abs(a) <= 1.0)
    assert 2.0 < result.duration < 6.0
    assert result.duration == pytest.approx(len(a) / SR)
    assert np.sqrt(np.mean(a ** 2)) > 0.02


def test_is_speech_not_a_tone(result):
    frames = _frames(result.audio)
    energy = np.sqrt((frames ** 2).mean(axis=1))
    zcr = (np.abs(np.diff(np.sign(frames), axis=1)) > 0).mean(axis=1)
    loud = energy > 0.1 * energy.max()
    active = energy > 0.01 * energy.max()
    voiced = loud & (zcr < 0.15)
    unvoiced = active & (zcr > 0.25)  # fricatives and bursts: noisy
    assert _runs(voiced) >= 8  # about one per syllable nucleus (21 here)
    assert _runs(unvoiced) >= 5  # s, f, s, z, s, ... (8 here)
    assert energy.std() / energy.mean() > 0.5  # envelope rises and falls
    spec = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1))
    freqs = np.fft.rfftfreq(frames.shape[1], 1 / SR)
    centroid = (spec * freqs).sum(axis=1) / (spec.sum(axis=1) + 1e-12)
    assert centroid[active].std() > 400  # vowels low, fricatives high


# ----------------------------------------------------------------------------- phones
def test_phones_contiguous_and_cover_the_audio(result):
    ph = result.phones
    assert ph[0].start == 0.0
    assert ph[-1].end == pytest.approx(result.duration, abs=1e-9)
    for a, b in zip(ph, ph[1:]):
        assert a.end == pytest.approx(b.start, abs=1e-9)
        assert not (a.symbol == speech.SILENCE and b.symbol == speech.SILENCE)  # pauses merged
    assert all(p.end > p.start and p.symbol for p in ph)
    assert speech.SILENCE in [p.symbol for p in ph]  # the comma pause


def test_phone_count_matches_text(result):
    spoken = [p for p in result.phones if p.symbol != speech.SILENCE]
    expected = speech.text_to_phonemes(TEXT)
    assert abs(len(spoken) - len(expected)) <= max(2, 0.1 * len(expected))
    assert [speech.strip_stress(p.symbol) for p in spoken[:4]] == ["D", "@2", "k", "w"]


def test_phone_times_match_the_audio(result):
    """Fricatives are where the high-frequency energy is; the comma pause is quiet."""
    a = result.audio
    from scipy.signal import stft

    f, t, z = stft(a, SR, nperseg=256, noverlap=192)
    power = np.abs(z) ** 2
    hf_ratio = power[f > 3500].sum(axis=0) / (power.sum(axis=0) + 1e-12)
    rms = np.sqrt(power.sum(axis=0))

    def mean_in(values, wanted):
        sel = np.zeros_like(t, bool)
        for p in result.phones:
            if speech.strip_stress(p.symbol) in wanted:
                sel |= (t >= p.start + 0.01) & (t < p.end - 0.01)
        return values[sel].mean()

    vowels = {"I", "aU", "0", "V", "eI", "E", "i:", "oU"}
    assert mean_in(hf_ratio, {"s", "z", "f"}) > 3 * mean_in(hf_ratio, vowels)
    assert mean_in(rms, {speech.SILENCE}) < 0.1 * mean_in(rms, vowels)


def test_faster_rate_is_shorter():
    text = "Please measure the wooden garage near the river."
    slow = synthesize(text, Speaker(rate=120)).duration
    fast = synthesize(text, Speaker(rate=240)).duration
    assert fast < 0.7 * slow


def test_higher_pitch_raises_f0():
    text = "Our mother was waiting all morning in the valley."
    low = _median_f0(synthesize(text, Speaker(pitch=20)).audio)
    high = _median_f0(synthesize(text, Speaker(pitch=80)).audio)
    assert high > 1.25 * low


def test_female_variant_is_higher_than_male():
    text = "Our mother was waiting all morning in the valley."
    male = _median_f0(synthesize(text, Speaker(variant="m3")).audio)
    female = _median_f0(synthesize(text, Speaker(variant="f2")).audio)
    assert female > 1.4 * male


# ----------------------------------------------------------------------------- determinism
SPEAKER = Speaker(variant="f2", pitch=62, pitch_range=70, rate=170)  # f2 uses breath noise and roughness


@pytest.mark.parametrize("variant", ["f2", "klatt", "whisper"])  # roughness, Klatt noise, breath noise
def test_deterministic_whatever_came_before(variant):
    spk = Speaker(variant=variant, pitch=62, pitch_range=70, rate=170)
    first = _digest("Hello there, how are you today?", spk)
    synthesize("Something else entirely, spoken by someone else.", Speaker(variant="m7", pitch=10))
    speech.text_to_phonemes("an unrelated clause")
    assert _digest("Hello there, how are you today?", spk) == first


def test_deterministic_across_threads():
    ref = _digest(TEXT, SPEAKER)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: _digest(TEXT, SPEAKER), range(6)))
    assert got == [ref] * 6


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_deterministic_in_worker_processes(method):
    if method not in mp.get_all_start_methods():
        pytest.skip(f"{method} not available")
    ref = _digest(TEXT, SPEAKER)  # also initialises this process before a fork
    with ProcessPoolExecutor(1, mp_context=mp.get_context(method)) as pool:
        assert pool.submit(_digest, TEXT, SPEAKER).result(timeout=60) == ref


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("speaker, words", [
    (Speaker(voice="en-xx"), ["en-xx", "did you mean", "list_voices()"]),
    (Speaker(voice="en-usa"), ["did you mean 'en-us'"]),
    (Speaker(variant="m33"), ["variant", "m33", "list_variants()"]),
    (Speaker(pitch=101), ["pitch", "0..100"]),
    (Speaker(pitch=-1), ["pitch"]),
    (Speaker(pitch=50.5), ["pitch"]),
    (Speaker(pitch_range=150), ["pitch_range"]),
    (Speaker(rate=79), ["rate", "80..450"]),
    (Speaker(rate=451), ["rate"]),
])
def test_bad_speaker_is_a_one_line_error(speaker, words):
    with pytest.raises(VastbenchError) as err:
        synthesize("Hello.", speaker)
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_an_error(text):
    with pytest.raises(VastbenchError, match="empty"):
        synthesize(text, Speaker())


def test_text_to_phonemes():
    ph = speech.text_to_phonemes("Within an hour, the button was found.")
    assert "?" in ph and "n-" in ph  # glottal stop + syllabic n of "button"
    assert not any(p.startswith("_") for p in ph)  # pauses left out
    assert "w" in ph  # not glued to the pause before it
    with pytest.raises(VastbenchError, match="unknown eSpeak voice"):
        speech.text_to_phonemes("hello", voice="xx-yy")


# ----------------------------------------------------------------------------- sentences
def test_sentences_deterministic_by_seed():
    assert sentences.generate_sentences(30, 7) == sentences.generate_sentences(30, 7)
    assert sentences.generate_sentences(30, 7) != sentences.generate_sentences(30, 8)
    # a longer request starts with the shorter one (clips keep their sentence)
    assert sentences.generate_sentences(40, 7)[:30] == sentences.generate_sentences(30, 7)


def test_sentences_shape_and_variety():
    out = sentences.generate_sentences(200, 3)
    assert len(out) == 200
    assert len(set(out)) >= 195
    for s in out:
        assert sentences.MIN_WORDS <= len(s.split()) <= sentences.MAX_WORDS
        assert s[0].isupper() and s[-1] in ".?!"
    assert {s[-1] for s in out} == {".", "?", "!"}


def test_sentences_last_two_to_four_seconds():
    durations = [synthesize(s, Speaker(rate=160)).duration for s in sentences.generate_sentences(12, 5)]
    assert 1.5 < min(durations) and max(durations) < 4.5
    assert 2.0 <= float(np.median(durations)) <= 3.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fifty_sentences_cover_the_phoneme_set(seed):
    cov = sentences.phoneme_coverage(sentences.generate_sentences(50, seed))
    missing = sentences.COVERED_PHONEMES - set(cov)
    assert not missing, f"seed {seed}: no {sorted(missing)}"


@pytest.mark.parametrize("n", [0, -3])
def test_no_sentences_is_an_error(n):
    with pytest.raises(VastbenchError, match="positive"):
        sentences.generate_sentences(n, 0)
