"""The PPG phone inventory, the eSpeak -> phone table, and frame labels."""

from __future__ import annotations

import logging
import os
import struct

import numpy as np
import pytest

from vastbench.data.synthtalk import sentences, speech
from vastbench.data.synthtalk.speech import Phone, Speaker, synthesize
from vastbench.errors import VastbenchError
from vastbench.features import phones as P


def _en_us_phoneme_table() -> set[str]:
    """Every mnemonic eSpeak's en-us table can produce, read from espeak-ng-data/phontab.

    Layout (phoneme.h): u8 table count, 3 pad bytes; per table: u8 n_phonemes,
    u8 includes (1-based parent), 2 pad, name[32], then n_phonemes x 16-byte
    PHONEME_TAB {u32 mnemonic, u32 flags, u16 program, u8 code, u8 type, ...}.
    en-us inherits en, base1, base; type 1 entries are stress marks.
    """
    import espeakng_loader

    data = open(os.path.join(espeakng_loader.get_data_path(), "phontab"), "rb").read()
    off, tables = 4, []
    for _ in range(data[0]):
        n, includes = data[off], data[off + 1]
        name = data[off + 4:off + 36].split(b"\0")[0].decode()
        off += 36
        entries = {}
        for _ in range(n):
            mnemonic, _flags, _prog, code, typ = struct.unpack_from("<IIHBB", data, off)
            off += 16
            text = mnemonic.to_bytes(4, "little").rstrip(b"\0").decode("latin-1")
            if text:
                entries[code] = (text, typ)
        tables.append((name, includes, entries))
    by_name = {t[0]: i for i, t in enumerate(tables)}
    chain, i = [], by_name["en-us"]
    while True:
        chain.append(i)
        if tables[i][1] == 0:
            break
        i = tables[i][1] - 1
    merged: dict[int, tuple[str, int]] = {}
    for i in reversed(chain):
        merged.update(tables[i][2])
    return {text for text, typ in merged.values() if typ != 1}


def test_inventory():
    assert P.PHONES[0] == "sil"
    assert len(P.PHONES) == 40 == len(set(P.PHONES))
    assert all(p == p.lower() for p in P.PHONES)
    assert P.PHONE_INDEX["sil"] == 0 and P.PHONES[P.PHONE_INDEX["zh"]] == "zh"


@pytest.mark.parametrize("symbol, phone", [
    ("'aU", "aw"), (",oU", "ow"), ("%aI", "ay"), ("=E", "eh"), ("i:", "iy"), ("'3:", "er"), ("3", "er"),
    ("_", "sil"), ("_:", "sil"), ("_!", "sil"), ("", "sil"), ("'", "sil"),
    ("tS", "ch"), ("dZ", "jh"), ("T", "th"), ("D", "dh"), ("S", "sh"), ("Z", "zh"), ("N", "ng"), ("j", "y"),
    ("n-", "n"), ("@L", "l"), ("?", "t"), ("t#", "t"), (";", "y"), ("r-", "r"),
    ("a", "ae"), ("aa", "ae"), ("a#", "ah"), ("A:", "aa"), ("0", "aa"), ("O2", "ao"), ("o@", "ao"),
    ("'OI", "oy"), ("U@", "uh"), ("aI3", "ay"), ("i@3", "ih"), ("@2", "ah"),
])
def test_espeak_to_phone_examples(symbol, phone):
    assert P.espeak_to_phone(symbol) == phone


def test_every_en_us_mnemonic_is_in_the_table():
    table = _en_us_phoneme_table()
    assert len(table) > 100
    missing = {s for s in table if not s.startswith("_") and s not in P.ESPEAK_TO_PHONE}
    assert not missing
    assert set(P.ESPEAK_TO_PHONE.values()) == set(P.PHONES)  # every class reachable


def test_unknown_symbols_fall_back_without_raising(caplog):
    with caplog.at_level(logging.WARNING, logger="vastbench.features.phones"):
        got = {s: P.espeak_to_phone(s) for s in ("y:", "e~:", "tS#2", "kh", "R5", "\u0294", "~~")}
    assert set(got.values()) <= set(P.PHONES)
    assert got["y:"] == "uw" and got["tS#2"] == "ch" and got["kh"] == "k" and got["~~"] == "sil"
    assert "not in the phone table" in caplog.text


def test_synthesized_symbols_need_no_fallback(caplog):
    with caplog.at_level(logging.WARNING, logger="vastbench.features.phones"):
        for text in sentences.generate_sentences(8, 21):
            for ph in synthesize(text, Speaker(variant="m1")).phones:
                assert P.espeak_to_phone(ph.symbol) in P.PHONES
    assert "not in the phone table" not in caplog.text


def test_covered_phonemes_reach_every_phone():
    reached = {P.espeak_to_phone(s) for s in sentences.COVERED_PHONEMES} | {"sil"}
    assert reached == set(P.PHONES)


# ----------------------------------------------------------------------------- frame labels
HAND = [Phone("_", 0.0, 0.1), Phone("b", 0.1, 0.15), Phone("'a", 0.15, 0.3), Phone("t", 0.3, 0.34)]


def test_frame_labels_by_centre():
    labels = P.frame_labels(HAND, 40)
    assert labels.shape == (40,) and labels.dtype.kind == "i"
    idx = P.PHONE_INDEX
    expected = [0] * 10 + [idx["b"]] * 5 + [idx["ae"]] * 15 + [idx["t"]] * 4 + [0] * 6
    assert labels.tolist() == expected


def test_frame_labels_inputs_and_options():
    tuples = [(p.symbol, p.start, p.end) for p in HAND]
    assert np.array_equal(P.frame_labels(tuples[::-1], 40), P.frame_labels(HAND, 40))  # order-free
    assert P.frame_labels(HAND, 0).shape == (0,)
    assert P.frame_labels([], 7).tolist() == [0] * 7
    coarse = P.frame_labels(HAND, 6, hop_s=0.03)  # centres 0.015, 0.045, 0.075, 0.105, 0.135, 0.165
    assert coarse.tolist() == [0, 0, 0, P.PHONE_INDEX["b"], P.PHONE_INDEX["b"], P.PHONE_INDEX["ae"]]
    # 25 ms windows: centre of frame i at 0.0125 + 0.01 i
    shifted = P.frame_labels(HAND, 40, centre_offset_s=0.0125)
    assert shifted[9] == P.PHONE_INDEX["b"] and shifted[14] == P.PHONE_INDEX["ae"]


@pytest.mark.parametrize("n, hop", [(-1, 0.01), (2.5, 0.01), (10, 0.0), (10, -0.01)])
def test_frame_labels_bad_arguments(n, hop):
    with pytest.raises(VastbenchError):
        P.frame_labels(HAND, n, hop_s=hop)


def test_frame_labels_of_real_speech():
    res = synthesize("Joseph measured the yellow garage, then he laughed.", Speaker(variant="m3"))
    n = int(np.ceil(res.duration / 0.01))
    labels = P.frame_labels(res.phones, n)
    assert labels.shape == (n,)
    # silence share of the frames equals the silence share of the time (within a frame per pause)
    sil_time = sum(p.end - p.start for p in res.phones if p.symbol == speech.SILENCE)
    pauses = sum(p.symbol == speech.SILENCE for p in res.phones)
    assert abs((labels == 0).sum() * 0.01 - sil_time) <= 0.01 * (pauses + 1)
    # the run sequence of labels follows the phones (phones of 20 ms or more cannot be skipped)
    runs = [int(v) for i, v in enumerate(labels) if i == 0 or v != labels[i - 1]]
    long_phones = [P.phone_index(p.symbol) for p in res.phones if p.end - p.start >= 0.02]
    long_phones = [v for i, v in enumerate(long_phones) if i == 0 or v != long_phones[i - 1]]
    it = iter(runs)
    assert all(any(r == want for r in it) for want in long_phones)  # subsequence
    assert P.PHONE_INDEX["zh"] in labels and P.PHONE_INDEX["dh"] in labels
