"""Speech for SynthTalk: eSpeak NG driven through ctypes, with phoneme alignment.

eSpeak NG comes from the ``espeakng-loader`` wheel, which ships ``libespeak-ng``
and its ``espeak-ng-data`` directory, so this works offline from PyPI alone.

How it is driven
----------------
* ``AUDIO_OUTPUT_SYNCHRONOUS`` mode: ``espeak_Synth`` returns when the whole
  utterance is synthesized; a synth callback collects the int16 samples and the
  event list that comes with each buffer.
* ``espeakINITIALIZE_PHONEME_EVENTS``: every phoneme produces an
  ``espeakEVENT_PHONEME`` whose ``id.string`` is the eSpeak mnemonic (with its
  stress mark, e.g. ``'aU``) and whose ``sample`` field is the index of its first
  sample in the native 22050 Hz output (``audio_position`` is the same instant in
  whole milliseconds, which is too coarse for 10 ms labels, so ``sample`` is used
  and checked against ``audio_position``). Measured on fricatives, the event
  positions need no timing offset (the high-frequency energy inside fricative
  segments peaks at a shift of 0 ms, +-2 ms).
* The audio is resampled 22050 -> 16000 Hz with ``resample_poly(160, 441)``;
  phone times are in seconds, so they carry over unchanged.

Determinism
-----------
eSpeak keeps synthesis state in C statics that survive between utterances and
cannot be reset through its API (the pitch "flutter" phase, an automatic gain
control, a cycle counter for rough voices), and it seeds its noise generator from
the clock at initialisation. The same text therefore comes out slightly different
depending on what was spoken before. To make ``synthesize`` a pure function of its
inputs, every call loads a *private copy* of the shared library, initialises it,
seeds its random generators, speaks, terminates and unloads it (``dlclose``), so
the statics start from their initial values each time. This costs a few
milliseconds per call. The private copy (rather than the wheel's file) guarantees
the reference count really drops to zero even if some other package in the same
process loaded ``libespeak-ng`` too.

Concurrency: eSpeak is global state, so a module-level lock serialises every use.
Nothing is initialised at import; each process (spawned or forked worker) loads
its own library on first use, and the lock is held across ``fork`` so a child
never inherits it locked.
"""

from __future__ import annotations

import ctypes
import difflib
import functools
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from vastbench.errors import VastbenchError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
SILENCE = "_"  # the symbol of every pause/silence phone in SpeechResult.phones

RATE_MIN, RATE_MAX = 80, 450  # eSpeak's documented words-per-minute range
_LIST_HINT = "(see vastbench.data.synthtalk.speech.list_voices())"
_VARIANT_HINT = "(see vastbench.data.synthtalk.speech.list_variants())"

# speak_lib.h constants (API revision 12, eSpeak NG 1.52)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000  # never let the library call exit() on bad data
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EV_LIST_TERMINATED, _EV_PHONEME, _EV_SAMPLERATE = 0, 7, 8
_P_RATE, _P_VOLUME, _P_PITCH, _P_RANGE, _P_PUNCTUATION, _P_CAPITALS, _P_WORDGAP = 1, 2, 3, 4, 5, 6, 7
_RAND_SEED = 12345  # fixed: breath/aspiration noise must not depend on the clock


# ----------------------------------------------------------------------------- ctypes layouts
class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # sample index at the native rate
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    """``espeak_VOICE``; ``languages`` stays a raw pointer: it holds several strings."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


# ----------------------------------------------------------------------------- public types
@dataclass(frozen=True)
class Speaker:
    """How an utterance is voiced: eSpeak voice (+ variant), pitch, pitch range, rate."""

    voice: str = "en-us"
    variant: str | None = None  # e.g. "m3", "f2", "klatt": spoken as "voice+variant"
    pitch: int = 50  # 0..100, eSpeak's base pitch (50 = the voice's normal pitch)
    pitch_range: int = 50  # 0..100, 0 = monotone
    rate: int = 160  # words per minute, 80..450


@dataclass
class Phone:
    """One aligned phone: eSpeak mnemonic (stress marks kept) and its span in seconds."""

    symbol: str
    start: float
    end: float


@dataclass
class SpeechResult:
    """16 kHz float32 mono audio in [-1, 1] and contiguous phones covering it."""

    audio: np.ndarray
    sample_rate: int = SAMPLE_RATE
    phones: list[Phone] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.audio) / float(self.sample_rate)


# ----------------------------------------------------------------------------- library loading
_LOCK = threading.Lock()
# Hold the lock across fork so a child never starts with it taken by a thread
# that does not exist in the child.
os.register_at_fork(before=_LOCK.acquire, after_in_parent=_LOCK.release, after_in_child=_LOCK.release)


@dataclass
class _Collector:
    """Where the synth callback puts what eSpeak hands back for one utterance."""

    chunks: list[np.ndarray]
    events: list[tuple[int, int, int, str]]  # (type, sample, audio_position ms, phoneme name)
    sample_rate: int = 0
    error: BaseException | None = None


_COLLECTOR: _Collector | None = None


def _on_synth(wav, n_samples, events) -> int:  # called by eSpeak from inside espeak_Synth
    col = _COLLECTOR
    if col is None:
        return 1  # abort: nobody is listening
    try:
        if wav and n_samples > 0:
            col.chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EV_SAMPLERATE:
                col.sample_rate = ev.id.number
            elif ev.type == _EV_PHONEME:
                name = ev.id.string.decode("utf-8", "replace")
                col.events.append((ev.type, ev.sample, ev.audio_position, name))
            i += 1
    except BaseException as exc:  # never let an exception unwind through C
        col.error = exc
        return 1
    return 0


_CALLBACK = _SynthCallback(_on_synth)  # module-level: must outlive every synthesis


@functools.lru_cache(maxsize=1)
def _private_library_path() -> str:
    """A copy of libespeak-ng only this module loads (see module docstring)."""
    import espeakng_loader

    src = Path(espeakng_loader.get_library_path())
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"vastbench-espeak-{digest}" / f"libespeak-ng-vastbench{src.suffix}"
    try:
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)  # atomic: concurrent workers never load a half-copied file
        _unload(ctypes.CDLL(str(target)))  # e.g. a noexec temp directory fails here
    except OSError as exc:
        log.warning("cannot use a private copy of libespeak-ng at %s (%s); using the wheel's copy, so "
                    "synthesis is deterministic only if nothing else in this process loads it", target, exc)
        return str(src)
    return str(target)


def _unload(lib: ctypes.CDLL) -> None:
    """dlclose (FreeLibrary on Windows) a library this module loaded; ``lib`` is dead afterwards."""
    import _ctypes

    handle = lib._handle
    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary")
    close(handle)


def _data_parent() -> bytes:
    import espeakng_loader

    # espeak_Initialize wants the directory that *contains* espeak-ng-data.
    return os.path.dirname(espeakng_loader.get_data_path()).encode()


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int


@contextmanager
def _session() -> Iterator[tuple[ctypes.CDLL, int]]:
    """Lock, load a pristine libespeak-ng, initialise it; unload afterwards.

    Yields the library and its native sample rate. Loading afresh is what makes
    synthesis independent of earlier calls (module docstring).
    """
    with _LOCK:
        lib = ctypes.CDLL(_private_library_path())
        try:
            _declare(lib)
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, _data_parent(),
                                         _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
            if rate <= 0:
                raise VastbenchError("eSpeak NG failed to initialise from the espeakng-loader wheel; "
                                     "reinstall it with `pip install --force-reinstall espeakng-loader`")
            lib.espeak_SetSynthCallback(_CALLBACK)
            try:
                yield lib, rate
            finally:
                lib.espeak_Terminate()
        finally:
            _unload(lib)


# ----------------------------------------------------------------------------- voices
def _languages(ptr: int | None) -> list[str]:
    """Decode espeak_VOICE.languages: (priority byte, NUL-terminated name)*, then a 0 byte."""
    out: list[str] = []
    while ptr:
        if ctypes.c_ubyte.from_address(ptr).value == 0:
            break
        name = ctypes.string_at(ptr + 1)
        out.append(name.decode("utf-8", "replace"))
        ptr += 2 + len(name)
    return out


def _list(lib: ctypes.CDLL, spec: _Voice | None) -> list[tuple[str, str, list[str]]]:
    table = lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
    out, i = [], 0
    while table[i]:
        v = table[i].contents
        out.append((v.name.decode("utf-8", "replace"), v.identifier.decode("utf-8", "replace"),
                    _languages(v.languages)))
        i += 1
    return out


@functools.lru_cache(maxsize=1)
def _catalogue() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(language codes usable as voices, variant names), read once per process."""
    with _session() as (lib, _):
        voices = _list(lib, None)
        marker = ctypes.create_string_buffer(b"variant")
        spec = _Voice()
        spec.languages = ctypes.addressof(marker)
        variants = _list(lib, spec)
    codes = sorted({lang for _, _, langs in voices for lang in langs if lang != "variant"})
    names = sorted({ident.split("/", 1)[1] for _, ident, _ in variants if ident.startswith("!v/")})
    return tuple(codes), tuple(names)


def list_voices() -> list[str]:
    """Voice (language) codes accepted by ``Speaker.voice``, e.g. 'en-us', 'en-gb-x-rp', 'en-029'."""
    return list(_catalogue()[0])


def list_variants() -> list[str]:
    """Voice variants accepted by ``Speaker.variant``, e.g. 'm3', 'f2', 'klatt'."""
    return list(_catalogue()[1])


def _did_you_mean(bad: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(bad, choices, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _check_voice(voice: str) -> None:
    codes = _catalogue()[0]
    if not isinstance(voice, str) or voice not in codes:
        raise VastbenchError(f"unknown eSpeak voice {voice!r}{_did_you_mean(str(voice), codes)} {_LIST_HINT}")


def _check_speaker(speaker: Speaker) -> None:
    _check_voice(speaker.voice)
    if speaker.variant is not None:
        variants = _catalogue()[1]
        if speaker.variant not in variants:
            raise VastbenchError(f"unknown eSpeak voice variant {speaker.variant!r}"
                                 f"{_did_you_mean(str(speaker.variant), variants)} {_VARIANT_HINT}")
    for field, lo, hi in (("pitch", 0, 100), ("pitch_range", 0, 100), ("rate", RATE_MIN, RATE_MAX)):
        value = getattr(speaker, field)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise VastbenchError(f"Speaker.{field} is {value!r}; use an integer in {lo}..{hi}")


def _check_text(text: str) -> bytes:
    if not isinstance(text, str):
        raise VastbenchError(f"text to speak must be a str, got {type(text).__name__}")
    clean = " ".join(text.replace("\x00", " ").split())  # NUL would end the C string early
    if not clean:
        raise VastbenchError("text to speak is empty; give at least one word")
    return clean.encode("utf-8")


# ----------------------------------------------------------------------------- synthesis
def _set_voice(lib: ctypes.CDLL, name: str) -> None:
    if lib.espeak_SetVoiceByName(name.encode()) != 0:
        raise VastbenchError(f"eSpeak could not load voice {name!r} {_LIST_HINT}")


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)
    except OSError:  # no process-wide C library handle on this platform
        return None


def _seed_libc_rand(seed: int) -> None:
    """libespeak-ng imports libc rand() (older sources use it for breath noise): seed it too."""
    libc = _libc()
    if libc is not None and hasattr(libc, "srand"):
        libc.srand(ctypes.c_uint(seed))


def _speak(text: bytes, speaker: Speaker) -> _Collector:
    """Run eSpeak on ``text``; return raw native-rate samples and phoneme events."""
    global _COLLECTOR
    name = speaker.voice if speaker.variant is None else f"{speaker.voice}+{speaker.variant}"
    with _session() as (lib, native_rate):
        _set_voice(lib, name)
        # Parameters after the voice: loading a voice may reset them.
        for param, value in ((_P_RATE, speaker.rate), (_P_PITCH, speaker.pitch), (_P_RANGE, speaker.pitch_range),
                             (_P_VOLUME, 100), (_P_PUNCTUATION, 0), (_P_CAPITALS, 0), (_P_WORDGAP, 0)):
            lib.espeak_SetParameter(param, int(value), 0)
        lib.espeak_ng_SetRandSeed(_RAND_SEED)
        _seed_libc_rand(_RAND_SEED)
        col = _Collector(chunks=[], events=[], sample_rate=native_rate)
        _COLLECTOR = col
        try:
            status = lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        finally:
            _COLLECTOR = None
    if col.error is not None:
        raise RuntimeError("eSpeak synth callback failed") from col.error
    if status != 0:
        raise RuntimeError(f"espeak_Synth returned error {status} for voice {name!r}")
    return col


def _event_samples(col: _Collector) -> list[tuple[str, int]]:
    """(name, sample index) per phoneme event; ``audio_position`` cross-checks ``sample``."""
    out = []
    for _, sample, ms, name in col.events:
        if abs(sample * 1000.0 / col.sample_rate - ms) > 2.0:
            # 'sample' is documented as internal; fall back to the millisecond field.
            log.debug("eSpeak event %r: sample %d disagrees with %d ms; using ms", name, sample, ms)
            sample = int(round(ms * col.sample_rate / 1000.0))
        out.append((name, sample))
    return out


def _is_pause(symbol: str) -> bool:
    return symbol.startswith("_") or symbol in ("", "||", "|")


def _build_phones(events: list[tuple[str, int]], n_native: int, native_rate: int, duration: float) -> list[Phone]:
    """Contiguous phones over [0, duration]: leading silence added, pauses merged as '_'."""
    bounds: list[tuple[str, int]] = [(SILENCE, 0)]
    for name, sample in events:
        sample = min(max(sample, 0), n_native)
        bounds.append((SILENCE if _is_pause(name) else name, sample))
    bounds.sort(key=lambda b: b[1])  # stable: events are already in order
    phones: list[Phone] = []
    for i, (name, start) in enumerate(bounds):
        end = bounds[i + 1][1] if i + 1 < len(bounds) else n_native
        if end <= start:
            continue  # zero-length (e.g. the final '_' marker, or the empty leading gap)
        if phones and name == SILENCE and phones[-1].symbol == SILENCE:
            phones[-1].end = end / native_rate
            continue
        phones.append(Phone(name, start / native_rate, end / native_rate))
    # The resampled length differs from the native one by < 1/16000 s: clamp to it.
    phones = [Phone(p.symbol, p.start, min(p.end, duration)) for p in phones if p.start < duration]
    if not phones:
        return [Phone(SILENCE, 0.0, duration)]
    phones[-1].end = duration
    return phones


def _resample(samples: np.ndarray, native_rate: int) -> np.ndarray:
    from scipy.signal import resample_poly

    x = samples.astype(np.float64) / 32768.0
    if native_rate != SAMPLE_RATE:
        g = np.gcd(SAMPLE_RATE, native_rate)
        x = resample_poly(x, SAMPLE_RATE // g, native_rate // g)  # 160/441 for 22050 Hz
    return np.clip(x, -1.0, 1.0).astype(np.float32)  # the filter may ring past full scale


def synthesize(text: str, speaker: Speaker = Speaker()) -> SpeechResult:
    """Speak ``text`` with ``speaker``: 16 kHz audio plus its phone alignment.

    Deterministic: the same text and speaker give bit-identical audio and phones,
    in any process and whatever was synthesized before.
    """
    data = _check_text(text)
    _check_speaker(speaker)
    col = _speak(data, speaker)
    native = np.concatenate(col.chunks) if col.chunks else np.zeros(0, np.int16)
    if native.size == 0:
        raise VastbenchError(f"eSpeak produced no audio for {text!r}; give text with pronounceable words")
    audio = _resample(native, col.sample_rate)
    duration = len(audio) / SAMPLE_RATE
    phones = _build_phones(_event_samples(col), len(native), col.sample_rate, duration)
    return SpeechResult(audio=audio, sample_rate=SAMPLE_RATE, phones=phones)


# ----------------------------------------------------------------------------- text -> phonemes
_STRESS = re.compile(r"^[',%=]+")


def strip_stress(symbol: str) -> str:
    """An eSpeak mnemonic without its leading stress marks: "'aU" -> "aU", ",oU" -> "oU"."""
    return _STRESS.sub("", symbol)


def text_to_phonemes(text: str, voice: str = "en-us") -> list[str]:
    """eSpeak's phoneme mnemonics for ``text`` (stress marks kept, pauses left out).

    Uses espeak_TextToPhonemes, clause by clause.

    This is the dictionary/rule translation only; the synthesizer may still
    realise a few phonemes differently (use ``synthesize(...).phones`` for what
    was actually spoken).
    """
    data = _check_text(text)
    _check_voice(voice)
    # phonememode: ascii names (bit 1 clear), '|' between phonemes (bits 8-23).
    mode = ord("|") << 8
    out: list[str] = []
    with _session() as (lib, _):
        _set_voice(lib, voice)
        buf = ctypes.create_string_buffer(data)
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        while ptr.value:  # one clause per call; eSpeak sets ptr to NULL at the end
            clause = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, mode)
            if clause:
                out += _phoneme_tokens(clause.decode("utf-8", "replace"))
    return out


# eSpeak's pause mnemonics; TextToPhonemes sometimes glues one to the next
# phoneme without a separator ("_!w" for "_! w"), so they are split off here.
_PAUSE = re.compile(r"^_(?:::|:|!|\||\^_|;_|X1)?")


def _phoneme_tokens(clause: str) -> list[str]:
    out = []
    for token in re.split(r"[|\s]+", clause):
        token = _PAUSE.sub("", token) if token.startswith("_") else token
        if token:
            out.append(token)
    return out
