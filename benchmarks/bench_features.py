"""Benchmark: real-time factor of PPG and SyncNet-MFCC extraction on this CPU.

    .venv/bin/python benchmarks/bench_features.py [--seconds 60]

RTF = seconds of audio processed per second of compute (higher is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    import torch

    from vastbench.features import mfcc
    from vastbench.features.extract import recognizer
    from vastbench.torchutil import configure_threads

    threads = configure_threads()
    from vastbench.data.synthtalk.sentences import generate_sentences
    from vastbench.data.synthtalk.speech import Speaker, synthesize

    audio = np.concatenate([synthesize(s, Speaker()).audio for s in generate_sentences(30, 0)])
    n = int(args.seconds * 16000)
    audio = np.resize(audio, n).astype(np.float32)
    T = n // 640
    res = {"audio_s": args.seconds, "threads": threads, "torch": torch.__version__, "cores": os.cpu_count()}
    rec = recognizer()
    for name, fn in (("ppg", lambda: rec.posteriors(audio, T)), ("mfcc", lambda: mfcc.mfcc_for_video(audio, T))):
        fn()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        res[f"{name}_rtf"] = round(args.seconds / dt, 1)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
