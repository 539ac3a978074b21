"""A style classifier on expression statistics, trained on ground truth only.

It answers "which speaking style is this?" from a few seconds of expression and
pose, using hand-readable statistics (per-channel level, spread, speed, extremes,
left/right asymmetry, blink rate).  It is fitted on ground-truth SynthTalk clips,
never on model outputs, so it can judge any system's expressions fairly; a
held-out-identity accuracy shows it learned style, not faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vastbench.errors import VastbenchError

WINDOW = 75  # frames: 3 s at 25 fps


def window_features(expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Statistics of one window: (F,) from expression (T, E) and pose (T, 6)."""
    x = np.concatenate([expression, pose], axis=1).astype(np.float64)  # (T, D)
    if len(x) < 2:
        raise VastbenchError(f"a style window needs at least 2 frames, got {len(x)}")
    vel = np.abs(np.diff(x, axis=0))
    feats = [x.mean(0), x.std(0), vel.mean(0), np.percentile(x, 90, axis=0) - np.percentile(x, 10, axis=0)]
    if expression.shape[1] >= 11:  # SynthTalk blendshapes: asymmetry and blinks are style cues
        feats.append(np.array([
            (expression[:, 3] - expression[:, 4]).mean(),          # smile left - right
            (expression[:, 8] > 0.5).mean(),                       # fraction of time blinking
            np.corrcoef(expression[:, 0], expression[:, 6])[0, 1] if expression[:, 6].std() > 1e-6 else 0.0,
        ]))
    return np.nan_to_num(np.concatenate(feats))


def windows(expression: np.ndarray, pose: np.ndarray, length: int = WINDOW, hop: int | None = None):
    """Consecutive windows of ``length`` frames (the whole clip when it is shorter)."""
    hop = hop or length
    if len(expression) <= length:
        yield expression, pose
        return
    for s in range(0, len(expression) - length + 1, hop):
        yield expression[s:s + length], pose[s:s + length]


@dataclass
class StyleClassifier:
    model: object
    classes: list[str]

    @classmethod
    def fit(cls, clips: list[tuple[np.ndarray, np.ndarray, str]], seed: int = 0) -> "StyleClassifier":
        """Fit on (expression, pose, style) of ground-truth clips (3-s windows)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X, y = [], []
        for e, p, style in clips:
            for we, wp in windows(e, p, hop=WINDOW // 2):
                X.append(window_features(we, wp))
                y.append(style)
        if len(set(y)) < 2:
            raise VastbenchError("the style classifier needs clips of at least two styles")
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000, random_state=seed))
        model.fit(np.stack(X), np.array(y))
        return cls(model, sorted(set(y)))

    def predict_clip(self, expression: np.ndarray, pose: np.ndarray) -> str:
        """The style of a clip: the class with the highest mean probability over its windows."""
        X = np.stack([window_features(e, p) for e, p in windows(expression, pose)])
        proba = self.model.predict_proba(X).mean(axis=0)
        return str(self.model.classes_[int(np.argmax(proba))])

    def predict_windows(self, expression: np.ndarray, pose: np.ndarray) -> list[str]:
        X = np.stack([window_features(e, p) for e, p in windows(expression, pose)])
        return [str(c) for c in self.model.predict(X)]


def accuracy(clf: StyleClassifier, clips: list[tuple[np.ndarray, np.ndarray, str]], per: str = "window") -> float:
    """Accuracy over 3-s windows (``per='window'``) or whole clips."""
    hits = total = 0
    for e, p, style in clips:
        preds = clf.predict_windows(e, p) if per == "window" else [clf.predict_clip(e, p)]
        hits += sum(pr == style for pr in preds)
        total += len(preds)
    return hits / max(total, 1)
