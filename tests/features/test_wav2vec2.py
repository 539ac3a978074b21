"""The wav2vec2 phoneme PPG: IPA -> phone table, time grid, and the real loading and inference code.

The model is a tiny, randomly initialised ``Wav2Vec2ForCTC`` with an IPA vocabulary,
built offline and saved with ``save_pretrained`` like a hub snapshot, then loaded
through :class:`~vastbench.features.wav2vec2.Wav2Vec2PPG`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from vastbench.errors import VastbenchError
from vastbench.features import wav2vec2 as W
from vastbench.features.phones import PHONE_INDEX, PHONES

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "|"]
# The English IPA of eSpeak (as the espeak-cv-ft models write it) and a few tokens of other languages.
ENGLISH = {
    "ə": "ah", "ɚ": "er", "æ": "ae", "ɑ": "aa", "ɑː": "aa", "ɔ": "ao", "ɔː": "ao", "ɛ": "eh", "ɪ": "ih",
    "i": "iy", "iː": "iy", "u": "uw", "uː": "uw", "ʊ": "uh", "ʌ": "ah", "eɪ": "ey", "aɪ": "ay", "ɔɪ": "oy",
    "aʊ": "aw", "oʊ": "ow", "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "g": "g", "ɡ": "g", "f": "f",
    "v": "v", "θ": "th", "ð": "dh", "s": "s", "z": "z", "ʃ": "sh", "ʒ": "zh", "h": "hh", "tʃ": "ch",
    "dʒ": "jh", "m": "m", "n": "n", "ŋ": "ng", "l": "l", "ɹ": "r", "r": "r", "w": "w", "j": "y", "ʔ": "t",
    "ɾ": "t",
    # stress, length, tie bars, syllabicity, aspiration, r-colouring
    "ˈaɪ": "ay", "ˌeɪ": "ey", "t͡ʃ": "ch", "d͡ʒ": "jh", "ɑːɹ": "aa", "ɔːɹ": "ao", "ɪɹ": "ih", "ɜː": "er",
    "ə˞": "er", "n̩": "n", "əl": "l", "kʰ": "k", "ᵻ": "ih", "ɐ": "ah", "aɪɚ": "ay", "oːɹ": "ao",
}
OTHER = ["ç", "x", "ɛ̃", "ã", "ts", "ʉː", "ɲ", "ʁ", "y", "ø", "ɪa", "ǃ", "ː", "a1"]
VOCAB = SPECIALS + list(ENGLISH) + OTHER


def test_english_ipa_table():
    for token, phone in ENGLISH.items():
        assert W.ipa_to_phone(token) == phone, token
    for token in SPECIALS + ["<blank>", " ", ""]:
        assert W.ipa_to_phone(token) == "sil", token
    assert W.ipa_to_phone("ç") == "hh" and W.ipa_to_phone("ã") == "ae" and W.ipa_to_phone("ɪa") == "ih"


def test_every_token_of_a_vocabulary_maps_to_one_phone():
    phones = W.vocab_phones(VOCAB + [None], specials=["<pad>"])
    assert len(phones) == len(VOCAB) + 1 and set(phones) <= set(PHONES)
    assert phones[-1] == "sil"  # an output id without a token
    m = W.fold_matrix(phones)
    assert m.shape == (len(phones), len(PHONES)) and (m.sum(axis=1) == 1).all()


def test_model_frames_land_on_even_ppg_frames():
    hop, rf = W.conv_geometry((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2))  # every released wav2vec2
    assert (hop, rf) == (320, 400)
    post = np.random.default_rng(0).dirichlet(np.ones(40), size=9).astype(np.float32)  # (9, 40)
    out = W.to_ppg_grid(post, 16, hop, rf)
    np.testing.assert_allclose(out[0::2], post[:8], atol=1e-6)                         # 12.5 ms + 20 ms j
    np.testing.assert_allclose(out[1::2], (post[:8] + post[1:9]) / 2, atol=1e-6)       # midpoints
    np.testing.assert_allclose(out.sum(axis=1), 1, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Wav2Vec2ForCTC + CTC tokenizer + feature extractor, saved like a hub snapshot."""
    transformers = pytest.importorskip("transformers")
    import torch

    path = tmp_path_factory.mktemp("w2v") / "wav2vec2-phoneme"
    path.mkdir()
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}, ensure_ascii=False),
                                     encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        tok = transformers.Wav2Vec2CTCTokenizer(str(path / "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                                                bos_token="<s>", eos_token="</s>", word_delimiter_token="|")
        fe = transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                                   do_normalize=True, return_attention_mask=True)
        cfg = transformers.Wav2Vec2Config(
            vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, pad_token_id=0,
            feat_extract_norm="layer", do_stable_layer_norm=True)  # the large espeak-cv-ft models' layout
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = transformers.Wav2Vec2ForCTC(cfg)
            # Sharper logits than the init's, so the folding and interpolation are tested on peaky rows.
            model.lm_head.weight.data.mul_(50)
        model.save_pretrained(path)
        tok.save_pretrained(path)
        fe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def recognizer(tiny_model_dir):
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on two shared cores are several times slower
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield W.Wav2Vec2PPG.load(tiny_model_dir, device="cpu")
    torch.set_num_threads(old)


def test_loads_the_vocabulary_and_maps_every_token(recognizer):
    assert recognizer.tokens == VOCAB and (recognizer.hop, recognizer.rf) == (320, 400)
    assert len(recognizer.phones) == len(VOCAB) and set(recognizer.phones) <= set(PHONES)
    for token, phone in ENGLISH.items():
        assert recognizer.phones[VOCAB.index(token)] == phone
    assert all(recognizer.phones[VOCAB.index(t)] == "sil" for t in SPECIALS)


@pytest.mark.parametrize("n_samples,T", [(640 * 10, 10), (640 * 7 + 77, 7), (500, 1), (640 * 3 - 111, 3)])
def test_posteriors_shape_and_rows(recognizer, n_samples, T):
    audio = (0.1 * np.random.default_rng(T).standard_normal(n_samples)).astype(np.float32)
    ppg = recognizer.posteriors(audio, T)
    assert ppg.shape == (4 * T, len(PHONES)) and ppg.dtype == np.float32
    assert np.isfinite(ppg).all() and (ppg >= 0).all()
    np.testing.assert_allclose(ppg.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(ppg, recognizer.posteriors(audio, T))  # deterministic (eval mode)
    assert recognizer.posteriors(audio, 0).shape == (0, len(PHONES))


def test_posteriors_are_the_folded_model_posteriors_on_our_grid(recognizer):
    T = 6
    audio = (0.1 * np.random.default_rng(1).standard_normal(640 * T)).astype(np.float32)
    padded = np.concatenate([audio, np.zeros(recognizer.rf, np.float32)])
    tok = recognizer.token_posteriors(padded)                       # (N, V), N = 2T + 1
    assert tok.shape == (2 * T + 1, len(VOCAB))
    folded = np.zeros((len(tok), len(PHONES)))
    for v, phone in enumerate(recognizer.phones):
        folded[:, PHONE_INDEX[phone]] += tok[:, v]
    ppg = recognizer.posteriors(audio, T)
    np.testing.assert_allclose(ppg[0::2], folded[: 2 * T], atol=1e-5)
    np.testing.assert_allclose(ppg[1::2], (folded[: 2 * T] + folded[1: 2 * T + 1]) / 2, atol=1e-5)
    assert ppg.max() > 0.5  # the peaky rows survive the folding


def test_missing_directory_is_a_one_line_error(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(VastbenchError) as e:
        W.Wav2Vec2PPG.load(missing)
    msg = str(e.value)
    assert "\n" not in msg and str(missing) in msg and W.HUB_ID in msg and "--local-dir" in msg
    assert "vastbench assets fetch wav2vec2-phoneme" in msg
    monkeypatch.setenv(W.ENV_PATH, str(missing / "env"))
    with pytest.raises(VastbenchError, match="env"):
        W.Wav2Vec2PPG.load()
    monkeypatch.delenv(W.ENV_PATH)
    assert W.default_dir().parent.name == "assets" and W.default_dir().name == "wav2vec2-phoneme"


def test_a_checkpoint_without_ctc_head_is_refused(tiny_model_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    base = tmp_path / "base"
    cfg = transformers.Wav2Vec2Config.from_pretrained(tiny_model_dir)
    transformers.Wav2Vec2Model(cfg).save_pretrained(base)
    for f in ("vocab.json", "preprocessor_config.json", "tokenizer_config.json"):
        (base / f).write_bytes((tiny_model_dir / f).read_bytes())
    with pytest.raises(VastbenchError, match="no CTC head"):
        W.Wav2Vec2PPG.load(base, device="cpu")
