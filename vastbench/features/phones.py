"""The fixed phone inventory of the phonetic posteriorgrams (PPG), and eSpeak -> phone.

``PHONES`` is the 39-phone ARPAbet set of the CMU dictionary (lower case, stress
dropped) plus ``"sil"`` at index 0: 40 classes. It never changes: PPG networks
and their checkpoints index into it.

``espeak_to_phone(symbol)`` maps an eSpeak NG mnemonic, as found in
``Phone.symbol`` of ``vastbench.data.synthtalk.speech`` (stress marks such as
``'`` ``,`` ``%`` ``=`` allowed in front), to exactly one phone. Every mnemonic
of eSpeak's en-us phoneme table (en-us <- en <- base1 <- base, eSpeak NG 1.52) is
listed below; folding follows the usual TIMIT 61 -> 39 conventions (syllabic
consonants to their consonant, reduced vowels to full ones) and CMU-dictionary
spellings (a vowel + r such as ``A@`` "car" is folded to its vowel; the r-colour
is lost, the vowel dominates the mouth shape).

Mapping table (eSpeak en-us mnemonic -> phone; "*" = seen in SynthTalk output)::

    pauses   _* _: _:: _! _| _^_ _;_ _X1 || 1 - :  (any "_...", empty, stress-only) -> sil
    stops    p* b* t* d* k* g*                      -> p b t d k g
             t2* t[ t# (flap, "water")* * (tap)     -> t
             ? (glottal stop, "button")*            -> t    (it realises /t/ in en-us)
             d[ d#                                  -> d
             c q                                    -> k
    affric.  tS* tS;                                -> ch
             dZ* dZ;                                -> jh
    fric.    f* v* s* z* h*                         -> f v s z hh
             T* D* S* Z*                            -> th dh sh zh
             s. -> s   s; S; -> sh   z. z/2 z# -> z   z; Z; -> zh   v# B -> v
             x -> k (CMU "loch")   C X #X1 -> hh   l# -> l   w# -> w
             Q Q" -> g   Q^ J^ -> y   J -> jh
    nasals   m* n* N*                               -> m n ng
             n- (syllabic, "button")* n. n^ -> n   m- -> m   N- -> ng
    liquids  l* l. l/ l/2 l/3 l^ L L/ l- -> l
             r* r- (linking r)* r. r/ r" R R2 R3 ** -> r
    glides   w* -> w   j* -> y
             ; (linking glide after a front vowel, "the apple")* -> y
    vowels   a* aa* (en-us trap/bath, "cat", "ask")  -> ae
             a# a#2 a2 (weak a, "again", "a")*       -> ah
             A:* A@* A# A~ 0* 0# 02 ("father", "car", "lot") -> aa
             O:* O2* O@* o@* O O~ ("thought", "long", "for", "more") -> ao
             oU* oU# o o: ("go")                     -> ow
             OI* ("boy")                             -> oy
             V* @* @2* @5 @- @# ("cup", schwa)*      -> ah
             E* E# E2 e e# e@* ("bed", "air")        -> eh
             eI* e: ("day")                          -> ey
             I* I# I2* I2# i@3* IR ("bit", "roses", "near") -> ih
             i* i:* i@* ("happy", "see", "idea")     -> iy
             U* U@* ("book", "tour")                 -> uh
             u* u:* ("blue")                         -> uw
             aI* aI@* aI3* ("my", "quiet", "fire")   -> ay
             aU* aU@ ("now", "hour")                 -> aw
             3* 3:* VR ("butter", "bird")            -> er
             @L* ("bottle", syllabic l)              -> l
             #@ #a -> ah   #e -> eh   #i -> ih   #o -> ao   #u -> uh  (virtual, never voiced)

Anything else (another language's mnemonic, a future eSpeak symbol) is folded by
dropping stress and length marks and trailing modifiers (``:`` ``#`` ``-``
``;`` ``/`` ``.`` ``^`` digits) and looking up what remains, then by its first
character (vowel letters to the nearest vowel, consonant letters to the
consonant); as a last resort it becomes ``ah`` if it contains a vowel letter and
``sil`` otherwise. It never raises: one odd symbol must not stop a dataset
build. Each fallback is logged once.

``frame_labels`` turns an alignment into one phone index per 10 ms frame, by the
phone under the frame centre.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Iterable, Sequence

import numpy as np

from vastbench.errors import VastbenchError

log = logging.getLogger(__name__)

PHONES: tuple[str, ...] = (
    "sil",
    "aa", "ae", "ah", "ao", "aw", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g", "hh", "ih", "iy", "jh",
    "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th", "uh", "uw", "v", "w", "y", "z", "zh",
)
PHONE_INDEX: dict[str, int] = {p: i for i, p in enumerate(PHONES)}
SILENCE = "sil"


def _table(*rows: tuple[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for symbols, phone in rows:
        for s in symbols.split():
            out[s] = phone
    return out


# The table in the module docstring, as data (space-separated mnemonics -> phone).
ESPEAK_TO_PHONE: dict[str, str] = _table(
    ("_ _: _:: _! _| _^_ _;_ _X1 || 1 - :", "sil"),
    ("p", "p"), ("b", "b"), ("t t2 t[ t# * ?", "t"), ("d d[ d#", "d"), ("k c q x", "k"), ("g Q Q\"", "g"),
    ("tS tS;", "ch"), ("dZ dZ; J", "jh"),
    ("f", "f"), ("v v# B", "v"), ("s s.", "s"), ("z z. z/2 z#", "z"), ("h C X #X1", "hh"),
    ("T", "th"), ("D", "dh"), ("S s; S;", "sh"), ("Z z; Z;", "zh"),
    ("m m-", "m"), ("n n- n. n^", "n"), ("N N-", "ng"),
    ("l l. l/ l/2 l/3 l^ L L/ l- l# @L", "l"), ("r r- r. r/ r\" R R2 R3 **", "r"),
    ("w w#", "w"), ("j ; Q^ J^", "y"),
    ("a aa", "ae"), ("a# a#2 a2 V @ @2 @5 @- @# #@ #a", "ah"), ("A: A@ A# A~ 0 0# 02", "aa"),
    ("O: O2 O@ o@ O O~ #o", "ao"), ("oU oU# o o:", "ow"), ("OI", "oy"),
    ("E E# E2 e e# e@ #e", "eh"), ("eI e:", "ey"), ("I I# I2 I2# i@3 IR #i", "ih"), ("i i: i@", "iy"),
    ("U U@ #u", "uh"), ("u u:", "uw"), ("aI aI@ aI3", "ay"), ("aU aU@", "aw"), ("3 3: VR", "er"),
)

# Fallback by first character, for symbols not in the table.
_FIRST_CHAR: dict[str, str] = {
    "a": "ae", "A": "aa", "0": "aa", "O": "ao", "o": "ow", "V": "ah", "@": "ah", "E": "eh", "e": "eh",
    "I": "ih", "i": "iy", "U": "uh", "u": "uw", "y": "uw", "Y": "uw", "W": "uh", "3": "er",
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "g": "g", "c": "k", "q": "k", "f": "f", "v": "v",
    "s": "s", "z": "z", "S": "sh", "Z": "zh", "T": "th", "D": "dh", "h": "hh", "x": "k", "X": "hh",
    "m": "m", "n": "n", "N": "ng", "l": "l", "L": "l", "r": "r", "R": "r", "w": "w", "j": "y",
}
_STRESS = re.compile(r"^[',%=!]+")
_MODIFIERS = re.compile(r"[:#\-;/.^\[\]\"0-9]+$")


def _strip_stress(symbol: str) -> str:
    return _STRESS.sub("", symbol.strip())


@functools.lru_cache(maxsize=None)
def espeak_to_phone(symbol: str) -> str:
    """The PHONES entry for one eSpeak mnemonic (stress marks allowed); never raises."""
    base = _strip_stress(str(symbol))
    if not base or base.startswith("_"):
        return SILENCE
    if base in ESPEAK_TO_PHONE:
        return ESPEAK_TO_PHONE[base]
    return _fallback(base)


def _fallback(base: str) -> str:
    """Nearest sensible phone for a symbol outside the table (logged once per symbol)."""
    trimmed = _MODIFIERS.sub("", base)
    if trimmed and trimmed in ESPEAK_TO_PHONE:
        phone = ESPEAK_TO_PHONE[trimmed]
    elif base[0] in _FIRST_CHAR:
        phone = _FIRST_CHAR[base[0]]
    else:
        phone = "ah" if re.search(r"[aeiouAEIOU@03]", base) else SILENCE
    log.warning("eSpeak phoneme %r is not in the phone table; using %r", base, phone)
    return phone


def phone_index(symbol: str) -> int:
    """Index into PHONES of an eSpeak mnemonic."""
    return PHONE_INDEX[espeak_to_phone(symbol)]


def _spans(phones: Iterable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, label ids) from Phone objects or (symbol, start, end) tuples, sorted by start."""
    rows = []
    for p in phones:
        symbol, start, end = (p.symbol, p.start, p.end) if hasattr(p, "symbol") else p
        rows.append((float(start), float(end), phone_index(symbol)))
    rows.sort(key=lambda r: r[0])
    if not rows:
        return np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
    arr = np.asarray(rows, dtype=np.float64)
    return arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int64)


def frame_labels(phones: Sequence, n_frames: int, hop_s: float = 0.01,
                 centre_offset_s: float | None = None) -> np.ndarray:
    """Phone index (into PHONES) per frame, from the phone under each frame centre.

    Frame ``i`` is centred at ``centre_offset_s + i * hop_s`` (default offset
    ``hop_s / 2``: the middle of the hop; pass 0.0125 for 25 ms windows).
    Frames outside every phone are silence (index 0). ``phones`` holds
    ``speech.Phone`` objects or ``(espeak_symbol, start_s, end_s)`` tuples.
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
        raise VastbenchError(f"n_frames is {n_frames!r}; use a non-negative integer")
    if not hop_s > 0:
        raise VastbenchError(f"hop_s is {hop_s!r}; use a positive frame hop in seconds (e.g. 0.01)")
    offset = hop_s / 2 if centre_offset_s is None else float(centre_offset_s)
    centres = offset + np.arange(int(n_frames)) * hop_s
    starts, ends, ids = _spans(phones)
    labels = np.zeros(int(n_frames), np.int64)
    if ids.size == 0:
        return labels
    j = np.searchsorted(starts, centres, side="right") - 1  # last phone starting at or before the centre
    ok = (j >= 0) & (centres < ends[np.clip(j, 0, None)])
    labels[ok] = ids[j[ok]]
    return labels
