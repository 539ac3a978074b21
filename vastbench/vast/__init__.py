"""VAST: zero-shot expressive facial style transfer (DESIGN.md section 6).

One file per module, read top to bottom:

    config.py         VastConfig (architecture + recipe), PRESETS, ABLATIONS, make_config
    layers.py         masks, pooling, a small pre-norm transformer
    style_encoder.py  prompt expression + pose (any length >= 1 s) -> style feature (B, S)
    householder.py    Householder flow z0 -> zK (volume preserving)
    enhancer.py       variational style enhancer: q(z0 | X, A), flow, KL of Eq. 7
    decoder.py        hybrid decoder: NAR content path + AR (GRU) path
    model.py          VastModel: forward / loss (Eq. 7) / generate / style_code / interpolate
    inputs.py         checks of inference inputs (one-line errors), the silence rule
    data.py           clips -> windows with same-style prompts -> padded batches
    checkpoint.py     self-contained checkpoints, load_model, sha256
    train.py          train(cfg, train_set, val_set, out_dir, ...) -> model.pt

Nothing is imported here, so ``import vastbench.vast`` does not import torch.
"""
