"""Training: the loss goes down, checkpoints rebuild the model alone, resume == uninterrupted."""

import csv
import hashlib

import numpy as np
import pytest
import torch

from vast_fixtures import make_clips, random_batch, tiny_config
from vastbench.errors import VastbenchError
from vastbench.vast.checkpoint import checkpoint_sha256, load_checkpoint, load_model, save_checkpoint
from vastbench.vast.data import ClipDataset, WindowSampler, collate
from vastbench.vast.model import VastModel
from vastbench.vast.train import make_optimizer, train


@pytest.fixture(scope="module")
def clips():
    return make_clips(12, lengths=(40, 70))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, clips):
    out = tmp_path_factory.mktemp("vast_train")
    cfg = tiny_config(steps=6, ckpt_every=3, eval_every=3)
    seen = []
    path = train(cfg, clips, make_clips(3, seed=9), out, progress=lambda step, total, row: seen.append(step))
    assert seen == [1, 2, 3, 4, 5, 6]
    return cfg, out, path


def test_thirty_steps_on_one_batch_reduce_the_loss():
    cfg = tiny_config(dropout=0.0, lr=3e-3, lr_warmup=1)
    torch.manual_seed(0)
    model = VastModel(cfg)
    opt = make_optimizer(model, cfg)
    batch = random_batch(cfg)
    losses = []
    for step in range(30):
        out = model.loss(batch, step=0)        # step 0: no KL weight or scheduled sampling yet
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_train_writes_model_checkpoint_logs_and_curves(trained):
    cfg, out, path = trained
    assert path == out / "model.pt"
    assert {p.name for p in out.iterdir()} >= {"model.pt", "last.pt", "losses.csv", "curves.png"}
    rows = list(csv.DictReader(open(out / "losses.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert rows[2]["val_loss"] and rows[5]["val_free_l1"] and not rows[0]["val_loss"]
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 6 and state["optimizer"] is not None and "sampler" in state["rng"]
    assert load_checkpoint(path)["optimizer"] is None


def test_checkpoint_reloads_to_bit_identical_generation(trained, tmp_path):
    cfg, _, path = trained
    model = load_model(path)
    copy = tmp_path / "copy.pt"
    save_checkpoint(copy, model)
    reloaded = load_model(copy)
    clip = make_clips(2, seed=3)
    prompt = np.concatenate([clip[0]["expression"], clip[0]["pose"]], 1)
    ppg = clip[1]["ppg"]
    for kwargs in ({}, {"sample": True, "seed": 7}):
        a, b = model.generate(prompt, None, ppg, **kwargs), reloaded.generate(prompt, None, ppg, **kwargs)
        assert np.array_equal(a, b), kwargs
    assert checkpoint_sha256(copy) == hashlib.sha256(copy.read_bytes()).hexdigest()


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, clips, trained):
    cfg, full_dir, _ = trained
    part = tmp_path / "part"
    train(cfg, clips, make_clips(3, seed=9), part, steps=3, progress=False)    # "interrupted" at step 3
    train(cfg, clips, make_clips(3, seed=9), part, progress=False)             # resumed to cfg.steps = 6
    a, b = load_checkpoint(full_dir / "model.pt")["model"], load_checkpoint(part / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    cols = ("step", "loss", "kl", "val_loss")
    read = lambda d: [tuple(r[c] for c in cols) for r in csv.DictReader(open(d / "losses.csv"))]  # noqa: E731
    assert read(full_dir) == read(part)


def test_resume_with_another_config_is_an_error(tmp_path, clips, trained):
    cfg, full_dir, _ = trained
    with pytest.raises(VastbenchError, match="different VAST config"):
        train(cfg.replace(latent_dim=4), clips, None, full_dir, progress=False)


def test_bad_checkpoint_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    for path, match in ((bad, "cannot be read"), (tmp_path / "missing.pt", "does not exist")):
        with pytest.raises(VastbenchError, match=match):
            load_model(path)
    torch.save({"format": "other"}, bad)
    with pytest.raises(VastbenchError, match="not a VAST checkpoint"):
        load_model(bad)


def test_prompts_come_from_another_clip_of_the_same_style():
    cfg = tiny_config()
    clips = make_clips(9, styles=3)
    clips.append({**make_clips(1, seed=5)[0], "clip_id": "lonely", "style": "s_unique"})
    for i, c in enumerate(clips):                    # tag every frame with its clip index
        c["pose"] = c["pose"].copy()
        c["pose"][:, 0] = i
    ds = ClipDataset(clips, cfg)
    sampler = WindowSampler(ds, cfg, seed=0)
    assert sampler.n_self_prompted == 1
    for i in range(len(clips)):
        for _ in range(5):
            ex = sampler.example(i)
            j = int(ex["prompt"][0, cfg.expr_dim])
            assert ex["prompt"].shape[0] >= cfg.min_prompt_frames or j == i
            assert (j != i and clips[j]["style"] == clips[i]["style"]) or clips[i]["clip_id"] == "lonely"
            assert cfg.window_min <= len(ex["x"]) <= cfg.window_max and len(ex["ppg"]) == 4 * len(ex["x"])
    batch = collate([sampler.example(0), sampler.example(1)])
    assert batch["ppg"].shape[1] == 4 * batch["x"].shape[1] and batch["mask"].dtype == torch.bool


def test_bad_clips_name_the_clip():
    cfg = tiny_config()
    clip = make_clips(1)[0]
    with pytest.raises(VastbenchError, match="clip c000: ppg shape"):
        ClipDataset([{**clip, "ppg": clip["ppg"][:-1]}], cfg)
    with pytest.raises(VastbenchError, match="clip c000: missing 'pose'"):
        ClipDataset([{k: v for k, v in clip.items() if k != "pose"}], cfg)
    with pytest.raises(VastbenchError, match="train set: clip c000: NaN"):
        train(cfg, [{**clip, "expression": clip["expression"] * np.nan}], None, "/nonexistent/never", progress=False)
