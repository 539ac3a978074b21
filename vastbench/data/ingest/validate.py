"""How well ingestion recovers the truth: MediaPipe on full-size SynthTalk renders vs their true parameters.

``python -m vastbench.data.ingest.validate --clips 20 --out DIR`` renders
SynthTalk clips at 256 px as a ``folder`` source, ingests them like any real
videos, and compares what ingestion measured with what the renderer used:

* detection: the share of videos ingested and of frames with a face;
* expression: canonical correlations between the PCA expression coefficients
  and the true blendshape weights (CCA fitted on the train split's frames,
  evaluated on the held-out test speakers' frames), and the R^2 of a linear
  map from the coefficients to each true blendshape (same split);
* head pose: per-axis Pearson r of estimated vs true (pitch, yaw, roll, tx, ty);
* landmarks: mean distance of the 68 mapped landmarks to SynthTalk's own iBUG
  landmarks, as a fraction of the outer-eye-corner distance (NME);
* throughput: frames per second per job of the per-video stage.

The numbers are written to ``DIR/validation.json``; docs/own_data.md quotes them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vastbench.data.ingest.pipeline import IngestConfig, crop_frame, ingest
from vastbench.data.ingest.synthtalk_raw import render_raw_folder
from vastbench.data.manifest import Manifest

POSE_NAMES = ("pitch", "yaw", "roll", "tx", "ty", "tz")


def _truth_for(clip, truth: Path) -> dict:
    stem = Path(clip.meta["source_video"]).stem
    z = np.load(truth / "features" / f"{stem}.npz")
    return {k: z[k] for k in ("expression", "pose", "landmarks2d")}


def _crop_landmarks(true_lm: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """SynthTalk's landmarks (source pixels, centres at integers) in the ingested crop's pixels."""
    out = np.empty_like(true_lm)
    dummy = np.zeros((2, 2, 3), np.uint8)
    for t, (lm, box) in enumerate(zip(true_lm, boxes)):
        _, (x0, y0, side) = crop_frame(dummy, box, 2)
        f = size / side
        out[t] = (lm + 0.5 - np.array([x0, y0])) * f - 0.5
    return out


def compare(root: Path, truth: Path) -> dict:
    from sklearn.cross_decomposition import CCA
    from sklearn.linear_model import LinearRegression

    from vastbench.data.synthtalk.face import EXPRESSION_NAMES

    manifest = Manifest.load(root / "manifest.jsonl")
    data = {"train": [], "test": []}
    pose_est, pose_true, nme, found, frames_mismatch, src_xy = [], [], [], [], 0, []
    for clip in manifest.clips:
        z = np.load(clip.path("features"))
        t = _truth_for(clip, truth)
        n = min(len(z["expression"]), len(t["expression"]))
        frames_mismatch += abs(len(z["expression"]) - len(t["expression"]))
        part = "train" if clip.split in ("train", "val") else "test"
        data[part].append((z["expression"][:n], t["expression"][:n]))
        pose_est.append(z["pose"][:n])
        # the head position in the source frame: crop centre + the stored (crop-relative) translation
        box = z["crop_box"][:n].astype(np.float64)
        src_xy.append(np.stack([box[:, 0] + z["pose"][:n, 3] * box[:, 2], -(box[:, 1] - z["pose"][:n, 4] * box[:, 2])], 1))
        pose_true.append(t["pose"][:n])
        found.append(z["face_found"])
        lm = _crop_landmarks(t["landmarks2d"][:n], z["crop_box"][:n], int(clip.meta["size"]))
        iod = np.linalg.norm(lm[:, 45] - lm[:, 36], axis=1)
        nme.append(np.linalg.norm(z["landmarks2d"][:n] - lm, axis=2).mean(1) / iod)
    xe_tr, yt_tr = (np.concatenate([a for a, _ in data["train"]]), np.concatenate([b for _, b in data["train"]]))
    xe_te, yt_te = (np.concatenate([a for a, _ in data["test"]]), np.concatenate([b for _, b in data["test"]]))
    # Blendshapes the chosen clips never move, or move only in lockstep with another (SynthTalk's left and right
    # smile and blink are equal in most styles), are left out: CCA needs linearly independent targets.
    live = yt_tr.std(0) > 1e-6
    corr = np.corrcoef(yt_tr[:, live].T) if live.sum() > 1 else np.ones((1, 1))
    idx = np.flatnonzero(live)
    for a in range(len(idx)):
        if live[idx[a]] and any(live[idx[b]] and abs(corr[a, b]) > 0.999 for b in range(a)):
            live[idx[a]] = False
    yt_tr, yt_te = yt_tr[:, live], yt_te[:, live]
    k = int(min(yt_tr.shape[1], xe_tr.shape[1]))
    cca = CCA(n_components=k, max_iter=2000).fit(xe_tr, yt_tr)
    u, v = cca.transform(xe_te, yt_te)
    canon = [float(np.corrcoef(u[:, i], v[:, i])[0, 1]) for i in range(k)]
    reg = LinearRegression().fit(xe_tr, yt_tr)
    pred = reg.predict(xe_te)
    r2 = 1 - ((pred - yt_te) ** 2).sum(0) / ((yt_te - yt_te.mean(0)) ** 2).sum(0)
    names = [n for n, keep in zip(EXPRESSION_NAMES, live) if keep]
    pe, pt = np.concatenate(pose_est), np.concatenate(pose_true)
    pose_r = {}
    for i, name in enumerate(POSE_NAMES):
        pose_r[name] = (float(np.corrcoef(pe[:, i], pt[:, i])[0, 1]) if pt[:, i].std() > 1e-9 else None)
    f = np.concatenate(found)
    xy = np.concatenate(src_xy)
    source_r = {"tx": float(np.corrcoef(xy[:, 0], pt[:, 3])[0, 1]), "ty": float(np.corrcoef(xy[:, 1], pt[:, 4])[0, 1])}
    groups = channel_group_check(root, np.concatenate([xe_tr, xe_te]),
                                 np.concatenate([np.concatenate([b for _, b in data[p]]) for p in ("train", "test")]))
    return {"clips": len(manifest), "frames": int(len(pe)), "frame_count_mismatch": int(frames_mismatch),
            "channel_groups": groups,
            "test_frames": int(len(xe_te)), "frames_with_face": float(f.mean()),
            "expression_canonical_correlations": [round(c, 4) for c in canon],
            "expression_r2_per_blendshape": {n: round(float(r), 4) for n, r in zip(names, r2)},
            "pose_r": {k: (round(v, 4) if v is not None else None) for k, v in pose_r.items()},
            "translation_r_in_source_frame": {k: round(v, 4) for k, v in source_r.items()},
            "landmark_nme": float(np.concatenate(nme).mean())}


def channel_group_check(root: Path, coeffs: np.ndarray, true_expr: np.ndarray) -> dict:
    """Do the face model's mouth / upper channel groups (what VAST's config takes) match SynthTalk's truth?

    For each PCA component: the R^2 of a linear fit from the true mouth blendshapes and from the true
    upper-face ones; the truth's group is the larger.  Components that neither explains (R^2 < 0.1,
    noise on a small dataset) are counted apart.
    """
    from sklearn.linear_model import LinearRegression

    from vastbench.data.ingest.geometry import FaceModel
    from vastbench.data.synthtalk.face import MOUTH_EXPRESSIONS, UPPER_EXPRESSIONS

    mouth, upper = FaceModel.load(root / "face_model.npz").channel_groups()
    rows, agree, explained = [], 0, 0
    for k in range(coeffs.shape[1]):
        r2 = {g: float(LinearRegression().fit(true_expr[:, list(idx)], coeffs[:, k])
                       .score(true_expr[:, list(idx)], coeffs[:, k]))
              for g, idx in (("mouth", MOUTH_EXPRESSIONS), ("upper", UPPER_EXPRESSIONS))}
        truth = max(r2, key=r2.get)
        assigned = "mouth" if k in mouth else "upper"
        if max(r2.values()) >= 0.1:
            explained += 1
            agree += truth == assigned
        rows.append({"component": k, "assigned": assigned, "r2_mouth": round(r2["mouth"], 3),
                     "r2_upper": round(r2["upper"], 3)})
    return {"mouth": list(mouth), "upper": list(upper), "explained_components": explained,
            "agree_with_truth": agree, "per_component": rows}


def validate(out: Path, n_clips: int = 20, jobs: int = 1, per_identity: int = 2) -> dict:
    out = Path(out)
    raw = render_raw_folder(out / "render", n_clips, size=256, per_identity=per_identity)
    summary = ingest(IngestConfig(layout="folder", src=raw, out=out / "ingested", profile="full", jobs=jobs))
    res = compare(out / "ingested", out / "render" / "truth")
    res["videos"] = summary["n_videos"]
    res["videos_ingested"] = summary["n_clips"]
    res["test_speakers"] = summary["test_speakers"]
    res["timing"] = summary["timing"]
    res["face_model"] = summary["face_model"]
    (out / "validation.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--per-identity", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    print(json.dumps(validate(args.out, args.clips, args.jobs, args.per_identity), indent=2))


if __name__ == "__main__":
    main()
