"""Pretrained PPG for real speech: a wav2vec2 phoneme CTC model, from local weights only.

The built-in recognizer (:mod:`vastbench.features.ppg`) is trained on SynthTalk
voices; on real speech VAST can read its PPG from a pretrained wav2vec2 phoneme
recognizer instead: ``facebook/wav2vec2-xlsr-53-espeak-cv-ft`` (or the
``wav2vec2-lv-60-espeak-cv-ft`` family), a ``Wav2Vec2ForCTC`` whose vocabulary is
eSpeak-style IPA phonemes.  It is read through ``transformers`` from a local
directory and nothing else (``from_pretrained(dir, local_files_only=True)``):

- the ``path`` argument, else ``$VASTBENCH_WAV2VEC2``, else the asset directory
  ``$VASTBENCH_CACHE/assets/wav2vec2-phoneme/`` (``vastbench assets import DIR``
  puts it there and pins its content hash).

**Posteriors.**  The softmax of the CTC logits gives one distribution over the
model's vocabulary per model frame (~50 Hz: 20 ms hop).  Each vocabulary token
is folded onto one of our 40 phones (:data:`~vastbench.features.phones.PHONES`)
by the table below and the posteriors of tokens that share a phone are summed,
so rows still sum to 1.  CTC's blank (``<pad>``) and the other special tokens
count as ``sil``.  (CTC posteriors are peaky: between phone spikes the blank
dominates even inside words, so ``sil`` carries more mass in speech than with
the frame-trained built-in recognizer.)

**Time grid.**  Model frame ``j`` sees samples ``[j * hop, j * hop + rf)`` (hop
and receptive field ``rf`` from the config's convolution strides and kernels:
320 and 400 samples for every released wav2vec2), so its centre is
``(j * hop + rf / 2) / 16 kHz`` = 12.5 ms + 20 ms * j.  Our frames are the
built-in recognizer's: ``4T`` frames for ``T`` video frames, frame ``i`` centred
at 12.5 ms + 10 ms * i, after fitting the audio to ``640 T`` samples.  Output
frame ``i`` is the **linear interpolation** of the two model frames around its
centre (for the released models: even frames are model frames exactly, odd
frames the mean of two neighbours); a convex combination keeps rows summing to
1.  The audio is zero-padded by one receptive field at the end so that the last
output frames lie between model frames rather than past them.

**Phone table** (IPA token -> phone).  Tokens are first normalised: stress
(``ˈ ˌ``), length (``ː ˑ``), tie bars, tone digits and letters, combining
diacritics (nasalisation, syllabicity, ...) and modifier letters (``ʰ ʲ ʷ ˠ ˤ``)
are dropped; the rhotic hook ``˞`` becomes ``ɹ``.  Folding follows
:mod:`~vastbench.features.phones` (an r-coloured vowel keeps its vowel, flap and
glottal stop are ``t``, syllabic consonants their consonant)::

    specials  <pad> (CTC blank) <s> </s> <unk> | (and any <...>, [...], space) -> sil
    vowels    ə ʌ ɐ ɘ ɵ ɤ ɞ -> ah   ɚ ɝ ɜ əɹ ɜɹ -> er   æ a -> ae
              ɑ ɒ ɶ ɑɹ ɒɹ -> aa   ɔ ɔɹ oɹ œ -> ao   o ø oʊ əʊ -> ow
              ɛ ɛɹ ɛə eə -> eh   e eɪ -> ey   ɪ ᵻ ɨ ɪɹ ɪə -> ih   i iə -> iy
              ʊ ʊɹ ʊə ʏ -> uh   u ʉ y ɯ -> uw   aɪ aɪɚ aɪə aɪɹ -> ay
              aʊ aʊɚ aʊə aʊɹ -> aw   ɔɪ oɪ -> oy   əl ɫ l̩ -> l
    stops     p b t d k g ɡ -> p b t d k g   ʔ ɾ ʈ -> t   ɖ ɗ -> d   ɓ ʙ -> b
              c q x -> k   ɟ ɢ ɠ ɣ -> g
    affric.   tʃ ʈʂ tɕ -> ch   dʒ ɖʐ dʑ -> jh   ts -> s   dz -> z   pf -> f
    fric.     f ɸ -> f   v β ʋ -> v   θ -> th   ð -> dh   s -> s   z -> z
              ʃ ʂ ɕ ɧ -> sh   ʒ ʐ ʑ -> zh   h ɦ ç χ ħ ʕ ʜ ʢ -> hh
    nasals    m ɱ -> m   n ɲ ɳ -> n   ŋ ɴ -> ng
    liquids   l ɫ ɬ ɮ ɭ ʎ ʟ ɺ -> l   ɹ r ɻ ɽ ʀ ʁ -> r
    glides    w ʍ ɰ ɥ -> w   j ʝ -> y

A normalised token not in the table is folded by its longest prefix that is
(``ɪa`` -> ``ɪ`` -> ih, ``ɔːɹ`` -> ``ɔɹ`` -> ao); as a last resort it becomes
``ah`` if it holds a vowel letter and ``sil`` otherwise (logged once).  Every
token of any vocabulary therefore maps to exactly one phone.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import unicodedata
from pathlib import Path
from typing import Sequence

import numpy as np

from vastbench.errors import VastbenchError
from vastbench.features import mfcc as _mfcc
from vastbench.features.phones import PHONE_INDEX, PHONES, SILENCE

log = logging.getLogger(__name__)

SR = 16_000
ASSET = "wav2vec2-phoneme"
ENV_PATH = "VASTBENCH_WAV2VEC2"
HUB_ID = "facebook/wav2vec2-xlsr-53-espeak-cv-ft"
EXTRACTOR_ID = "ppg-wav2vec2"
OUT_HOP_S = 0.01        # our PPG grid: 10 ms hop ...
OUT_OFFSET_S = 0.0125   # ... first frame centred at 12.5 ms (25 ms windows)


# ----------------------------------------------------------------------------- IPA -> phone
def _table(*rows: tuple[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for symbols, phone in rows:
        for s in symbols.split():
            out[s] = phone
    return out


# The table of the module docstring, as data (keys are normalised tokens).
IPA_TO_PHONE: dict[str, str] = _table(
    # vowels (r-coloured and centring diphthongs fold to their vowel, as in phones.py)
    ("ə ʌ ɐ ɘ ɵ ɤ ɞ", "ah"), ("ɚ ɝ ɜ əɹ ɜɹ", "er"), ("æ a", "ae"),
    ("ɑ ɒ ɶ ɑɹ ɒɹ", "aa"), ("ɔ ɔɹ oɹ œ", "ao"), ("o ø oʊ əʊ", "ow"),
    ("ɛ ɛɹ ɛə eə", "eh"), ("e eɪ", "ey"), ("ɪ ᵻ ɨ ɪɹ ɪə", "ih"), ("i iə", "iy"),
    ("ʊ ʊɹ ʊə ʏ", "uh"), ("u ʉ y ɯ", "uw"), ("aɪ aɪɚ aɪə aɪɹ", "ay"),
    ("aʊ aʊɚ aʊə aʊɹ", "aw"), ("ɔɪ oɪ", "oy"), ("əl", "l"),
    # stops
    ("p", "p"), ("b ɓ ʙ", "b"), ("t ʔ ɾ ʈ", "t"), ("d ɖ ɗ", "d"), ("k c q x", "k"), ("g ɡ ɟ ɢ ɠ ɣ", "g"),
    # affricates
    ("tʃ ʈʂ tɕ", "ch"), ("dʒ ɖʐ dʑ", "jh"), ("ts", "s"), ("dz", "z"), ("pf", "f"),
    # fricatives
    ("f ɸ", "f"), ("v β ʋ", "v"), ("θ", "th"), ("ð", "dh"), ("s", "s"), ("z", "z"),
    ("ʃ ʂ ɕ ɧ", "sh"), ("ʒ ʐ ʑ", "zh"), ("h ɦ ç χ ħ ʕ ʜ ʢ", "hh"),
    # nasals, liquids, glides
    ("m ɱ", "m"), ("n ɲ ɳ", "n"), ("ŋ ɴ", "ng"),
    ("l ɫ ɬ ɮ ɭ ʎ ʟ ɺ", "l"), ("ɹ r ɻ ɽ ʀ ʁ", "r"), ("w ʍ ɰ ɥ", "w"), ("j ʝ", "y"),
)
assert set(IPA_TO_PHONE.values()) <= set(PHONES)

_DROP = set("ˈˌːˑ‿.-_'̯͜͡") | set("˥˦˧˨˩0123456789")
_SPECIAL = re.compile(r"^(<.*>|\[.*\]|\|)$")
_VOWEL_LETTERS = set("aeiouyæøœɑɒɔəɚɛɜɝɞɘɵɤɪʊʌʏɐɨʉɯᵻ")


def normalise_ipa(token: str) -> str:
    """The token without stress, length, tone, tie bars, diacritics and modifier letters."""
    text = unicodedata.normalize("NFD", str(token).strip().replace("˞", "ɹ"))
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in _DROP or cat == "Lm" or (cat == "Mn" and ch != "\u0327"):  # keep the cedilla of ç
            continue
        kept.append(ch)
    return unicodedata.normalize("NFC", "".join(kept))


@functools.lru_cache(maxsize=None)
def ipa_to_phone(token: str) -> str:
    """The PHONES entry for one vocabulary token of an IPA phoneme model; never raises."""
    if not str(token).strip() or _SPECIAL.match(str(token).strip()):
        return SILENCE
    base = normalise_ipa(token)
    if not base:
        return SILENCE  # a bare length or tone mark: no phone of its own
    if base in IPA_TO_PHONE:
        return IPA_TO_PHONE[base]
    for n in range(len(base) - 1, 0, -1):
        if base[:n] in IPA_TO_PHONE:
            log.debug("IPA token %r folded by its prefix %r", token, base[:n])
            return IPA_TO_PHONE[base[:n]]
    phone = "ah" if any(ch in _VOWEL_LETTERS for ch in base) else SILENCE
    log.warning("IPA token %r is not in the phone table; using %r", token, phone)
    return phone


def vocab_phones(tokens: Sequence[str | None], specials: Sequence[str] = ()) -> list[str]:
    """One phone per vocabulary id; ``None`` (an id with no token) and special tokens are silence."""
    special = set(specials)
    return [SILENCE if t is None or t in special else ipa_to_phone(t) for t in tokens]


def fold_matrix(phones: Sequence[str]) -> np.ndarray:
    """(V, 40) 0/1 matrix: ``posteriors (N, V) @ M`` sums the tokens of each phone."""
    m = np.zeros((len(phones), len(PHONES)), np.float32)
    m[np.arange(len(phones)), [PHONE_INDEX[p] for p in phones]] = 1.0
    return m


# ----------------------------------------------------------------------------- time grid
def conv_geometry(kernels: Sequence[int], strides: Sequence[int]) -> tuple[int, int]:
    """``(hop, receptive_field)`` in samples of a stack of 1-D convolutions."""
    hop, rf = 1, 1
    for k, s in zip(kernels, strides):
        rf += (int(k) - 1) * hop
        hop *= int(s)
    return hop, rf


def to_ppg_grid(post: np.ndarray, n_out: int, hop: int, rf: int, sr: int = SR) -> np.ndarray:
    """(N, P) model-frame posteriors -> (n_out, P) on our grid, by linear interpolation in time."""
    centres = OUT_OFFSET_S + OUT_HOP_S * np.arange(n_out)          # seconds
    pos = (centres * sr - rf / 2) / hop                            # fractional model frame
    pos = np.clip(pos, 0, len(post) - 1)
    j0 = np.floor(pos).astype(np.int64)
    j1 = np.minimum(j0 + 1, len(post) - 1)
    w = (pos - j0)[:, None].astype(np.float32)
    return (1 - w) * post[j0] + w * post[j1]


# ----------------------------------------------------------------------------- the recognizer
def default_dir() -> Path:
    """``$VASTBENCH_WAV2VEC2``, else ``$VASTBENCH_CACHE/assets/wav2vec2-phoneme``."""
    from vastbench.paths import cache_dir

    env = os.environ.get(ENV_PATH)
    return Path(env) if env else cache_dir() / "assets" / ASSET


def missing_message(path: Path) -> str:
    return (f"wav2vec2 phoneme model not found at {path}; on a connected machine run "
            f"`hf download {HUB_ID} --local-dir {path}` (`huggingface-cli download` with older huggingface_hub) "
            f"or `vastbench assets fetch {ASSET}`, then copy the directory here "
            f"(or anywhere and `vastbench assets import DIR`)")


def _vocabulary(path: Path) -> tuple[list[str | None], list[str]]:
    """(token per id, special tokens) from the model's tokenizer, else straight from vocab.json."""
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        vocab, specials = tok.get_vocab(), list(tok.all_special_tokens)
    except Exception as exc:  # noqa: BLE001 - e.g. an old transformers that wants phonemizer for this tokenizer
        log.info("tokenizer of %s not loadable (%s); reading vocab.json", path, exc)
        try:
            vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc2:
            raise VastbenchError(f"{path}: no readable tokenizer or vocab.json ({exc2}); "
                                 f"not a wav2vec2 CTC model directory") from None
        specials = []
    if vocab and all(isinstance(v, dict) for v in vocab.values()):  # multi-lingual vocab.json: {lang: {tok: id}}
        vocab = next(iter(vocab.values()))
    tokens: list[str | None] = [None] * (max(vocab.values()) + 1 if vocab else 0)
    for t, i in vocab.items():
        tokens[int(i)] = t
    return tokens, specials


class Wav2Vec2PPG:
    """A wav2vec2 phoneme CTC model as a PPG extractor: ``posteriors(audio, n_frames) -> (4T, 40)``."""

    def __init__(self, model, feature_extractor, tokens: Sequence[str | None], specials: Sequence[str] = (),
                 path: Path | None = None):
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.path = path
        cfg = model.config
        self.hop, self.rf = conv_geometry(cfg.conv_kernel, cfg.conv_stride)
        n_logits = int(cfg.vocab_size)
        tokens = list(tokens)[:n_logits] + [None] * max(0, n_logits - len(tokens))
        if any(t is None for t in tokens):
            log.warning("%d of %d output ids of %s have no token; counted as silence",
                        sum(t is None for t in tokens), n_logits, path)
        self.tokens = tokens
        self.phones = vocab_phones(tokens, specials)
        self.fold = fold_matrix(self.phones)               # (V, 40)
        self._sha256: str | None = None

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | None = None) -> "Wav2Vec2PPG":
        """Load from a local directory (argument, ``$VASTBENCH_WAV2VEC2``, the asset dir); never downloads."""
        path = Path(path) if path is not None else default_dir()
        if not (path / "config.json").is_file():
            raise VastbenchError(missing_message(path))
        try:
            from transformers import AutoFeatureExtractor, Wav2Vec2ForCTC
        except ImportError:
            raise VastbenchError("the wav2vec2 PPG needs transformers: pip install 'vastbench[speech]' "
                                 "(or pip install transformers)") from None
        import torch

        try:
            model, info = Wav2Vec2ForCTC.from_pretrained(str(path), local_files_only=True, output_loading_info=True)
            fe = AutoFeatureExtractor.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise VastbenchError(f"{path}: not a complete wav2vec2 CTC model directory "
                                 f"({str(exc).splitlines()[0][:160]}); {missing_message(path)}") from None
        missing = [k for k in info.get("missing_keys", ()) if "lm_head" in k]
        if missing:
            raise VastbenchError(f"{path}: the checkpoint has no CTC head ({missing[0]} missing); "
                                 f"use a phoneme CTC fine-tune such as {HUB_ID}")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokens, specials = _vocabulary(path)
        return cls(model.to(device), fe, tokens, specials, path)

    @property
    def sha256(self) -> str | None:
        """Content hash of the model directory (the asset pin), computed on first use."""
        if self._sha256 is None and self.path is not None:
            from vastbench.assets_import import tree_sha256

            self._sha256 = tree_sha256(self.path)
        return self._sha256

    def token_posteriors(self, audio_16k: np.ndarray) -> np.ndarray:
        """(N, V) softmax of the CTC logits, one row per model frame."""
        import torch

        x = np.asarray(audio_16k, np.float32)
        inputs = self.feature_extractor(x, sampling_rate=SR, return_tensors="pt")
        device = next(self.model.parameters()).device
        with torch.no_grad():
            logits = self.model(inputs.input_values.to(device)).logits[0]   # (N, V)
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def posteriors(self, audio_16k: np.ndarray, n_frames: int) -> np.ndarray:
        """(4T, 40) phone posteriors on the built-in recognizer's frame grid; rows sum to 1."""
        if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
            raise VastbenchError(f"n_frames is {n_frames!r}; use a non-negative number of video frames")
        n_out = 4 * int(n_frames)
        if n_out == 0:
            return np.zeros((0, len(PHONES)), np.float32)
        x = _mfcc.fit_to_frames(np.asarray(audio_16k, np.float32), int(n_frames))
        x = np.concatenate([x, np.zeros(self.rf, np.float32)])  # the last centres fall between model frames
        post = self.token_posteriors(x) @ self.fold                    # (N, 40)
        out = to_ppg_grid(post, n_out, self.hop, self.rf)
        return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)

    def extract(self, audio: np.ndarray, n_frames: int, cache=None) -> np.ndarray:
        """Posteriors through the content-addressed feature cache (versioned by the model's content hash)."""
        from vastbench.features.cache import FeatureCache

        cache = cache or FeatureCache()
        fitted = _mfcc.fit_to_frames(np.asarray(audio, np.float32), n_frames)
        version = (self.sha256 or "unversioned")[:12]
        return cache.get_or_compute(EXTRACTOR_ID, version, fitted, SR, lambda: self.posteriors(fitted, n_frames))
