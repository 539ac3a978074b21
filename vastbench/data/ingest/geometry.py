"""From MediaPipe face meshes to vastbench's face representation: pose, expression, 68 landmarks, masks.

MediaPipe gives 478 points per frame (468 mesh + 10 iris) in image pixels.
What a SynthTalk clip stores per frame is computed from them like this:

* **Head pose** (6: pitch, yaw, roll in radians, tx, ty, tz; SynthTalk's sign
  conventions: +pitch nods down, +yaw turns toward the image right, +roll is
  counter-clockwise in the image).  Each frame's mesh is fitted by a similarity
  transform (Umeyama's Procrustes solution: scale, rotation, translation) to a
  reference face on its rigid points.  The reference is the generalized
  Procrustes mean of the training frames; its rigid points are the 40 % of
  mesh vertices that move least once heads are aligned (forehead, nose,
  temples, cheekbones; not lips, jaw, lids or brows).  Zero pose is the
  training frames' mean head orientation, with yaw and roll made exactly
  frontal by the face's left/right symmetry; pitch is then measured from each
  speaker's mean pitch (face proportions bias it; see ``align_coords``).  ``tx, ty``: where the rigid
  centroid is, from the frame centre, in frame heights (+y up); ``tz``:
  log of the face scale over the training median (+ = nearer).
* **Expression**: the frame's mesh with pose removed (rotated, scaled and
  moved onto the reference), minus the identity's template (its mean
  pose-normalised mesh over all its clips), projected on a PCA basis fitted to
  the training frames.  Coefficients are scaled so that the first component has
  unit standard deviation on the training split; the others keep their relative
  scale, so squared error in coefficients is proportional to squared vertex
  error.  The basis, reference, rigid set and templates are the dataset's
  ``face_model.npz``.
* **68 landmarks** in iBUG order, from :data:`MESH_TO_IBUG68`.
* **Face mask**: the filled face-oval polygon of the mesh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from vastbench.errors import VastbenchError

N_FACE = 468  # mesh points without the iris

# iBUG 68-point landmarks as MediaPipe face-mesh vertices.  Jaw 0-16 from the subject's right ear (image left)
# round the chin (8: vertex 152) to the left ear; brows 17-26 outer-to-inner then inner-to-outer; nose bridge
# 27-30 (nasion 168 to the tip 4) and the lower nose 31-35; eyes 36-47 from the outer corner clockwise in the
# image (33/263 outer, 133/362 inner corners); outer lips 48-59 from the right corner (61) over the upper lip
# (0: philtrum midpoint) to the left corner (291) and back along the lower lip (17); inner lips 60-67 (78, 13,
# 308, 14 are the inner corners and midpoints).  This is the correspondence commonly used to compare MediaPipe
# with dlib/iBUG landmarks; the jaw points lie on MediaPipe's face oval, which runs a little inside the iBUG jaw
# line near the ears.
MESH_TO_IBUG68 = np.array([
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,   # jaw 0-16
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301,                                       # brows 17-26
    168, 197, 5, 4, 75, 97, 2, 326, 305,                                                 # nose 27-35
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,                           # eyes 36-47
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,                                 # outer lips 48-59
    78, 82, 13, 312, 308, 317, 14, 87,                                                   # inner lips 60-67
])
# Mirror pairs in iBUG numbering (right side of the face, left side) used to find the symmetry axis.
_IBUG_PAIRS = [(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)] + [(31, 35), (32, 34)] + \
    [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (48, 54), (49, 53), (50, 52), (59, 55), (58, 56)]
RIGID_FRACTION = 0.4
EXPRESSION_NAMES_PREFIX = "pc"


# ----------------------------------------------------------------------------- coordinates
def to_model_coords(mesh_px: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """(..., N, 3) pixels -> right-handed (x right, y up, z toward the camera) in frame heights, origin at the centre."""
    h, w = frame_hw
    m = np.asarray(mesh_px, np.float64)
    out = np.empty_like(m)
    out[..., 0] = (m[..., 0] - 0.5 * w) / h
    out[..., 1] = -(m[..., 1] - 0.5 * h) / h
    out[..., 2] = -m[..., 2] / h
    return out


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched similarity fit ``dst ~ s R src + t``.

    src (N, 3) shared; dst (T, N, 3).  Returns s (T,), R (T, 3, 3), t (T, 3).
    Umeyama (1991), "Least-squares estimation of transformation parameters between two point patterns".
    """
    mu_s = src.mean(0)
    mu_d = dst.mean(1)                                   # (T, 3)
    xs = src - mu_s                                      # (N, 3)
    yd = dst - mu_d[:, None]                             # (T, N, 3)
    cov = np.einsum("tni,nj->tij", yd, xs) / len(src)    # (T, 3, 3)
    u, d, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    sign[sign == 0] = 1
    S = np.ones((len(dst), 3))
    S[:, 2] = sign
    R = np.einsum("tij,tj,tjk->tik", u, S, vt)
    var_s = (xs ** 2).sum() / len(src)
    s = (d * S).sum(1) / var_s
    t = mu_d - s[:, None] * np.einsum("tij,j->ti", R, mu_s)
    return s, R, t


def euler_from_matrix(R: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations R = Rz(roll) Ry(yaw) Rx(pitch) (SynthTalk's order) -> (T, 3) pitch, yaw, roll."""
    pitch = np.arctan2(R[:, 2, 1], R[:, 2, 2])
    yaw = -np.arcsin(np.clip(R[:, 2, 0], -1.0, 1.0))
    roll = np.arctan2(R[:, 1, 0], R[:, 0, 0])
    return np.stack([pitch, yaw, roll], 1)


def matrix_from_euler(angles: np.ndarray) -> np.ndarray:
    """(T, 3) pitch, yaw, roll -> (T, 3, 3), the inverse of :func:`euler_from_matrix`."""
    a = np.atleast_2d(np.asarray(angles, np.float64))
    cx, sx, cy, sy, cz, sz = (np.cos(a[:, 0]), np.sin(a[:, 0]), np.cos(a[:, 1]), np.sin(a[:, 1]),
                              np.cos(a[:, 2]), np.sin(a[:, 2]))
    o, z = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([np.stack([o, z, z], -1), np.stack([z, cx, -sx], -1), np.stack([z, sx, cx], -1)], 1)
    ry = np.stack([np.stack([cy, z, sy], -1), np.stack([z, o, z], -1), np.stack([-sy, z, cy], -1)], 1)
    rz = np.stack([np.stack([cz, -sz, z], -1), np.stack([sz, cz, z], -1), np.stack([z, z, o], -1)], 1)
    return rz @ ry @ rx


def _nearest_rotation(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    return u @ np.diag([1.0, 1.0, d]) @ vt


def _pitch_only(R: np.ndarray) -> np.ndarray:
    """The pitch part of a rotation, as a rotation about x.

    A face whose proportions differ from the mean face (a longer chin, a flatter
    forehead) fits it with a constant nod; being left/right symmetric, it fits
    with no constant yaw or roll.  So only the speaker's mean pitch is taken out.
    """
    return matrix_from_euler(np.array([[euler_from_matrix(R[None])[0, 0], 0.0, 0.0]]))[0]


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector ``a`` to unit vector ``b`` (Rodrigues)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3) if c > 0 else np.diag([-1.0, -1.0, 1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx * (1.0 / (1.0 + c))


def _normalise(shape: np.ndarray, rigid: np.ndarray) -> np.ndarray:
    shape = shape - shape[rigid].mean(0)
    return shape / np.sqrt((shape[rigid] ** 2).sum(1).mean())


# ----------------------------------------------------------------------------- face model
FACE_MODEL_FILE = "face_model.npz"


def dataset_face_model(dataset) -> Path | None:
    """The face model of an ingested dataset, or None (SynthTalk, or a dataset without one).

    ``dataset``: a loaded :class:`~vastbench.data.manifest.Manifest` or its directory.
    ``vastbench data ingest`` writes ``face_model.npz`` beside the manifest; its presence
    is what marks a dataset as ingested (MediaPipe face capture, MediaPipe mesh images).
    """
    root = getattr(dataset, "path", dataset)
    if root is None:
        return None
    root = Path(root)
    path = (root if root.is_dir() else root.parent) / FACE_MODEL_FILE
    return path if path.is_file() else None


# iBUG-68 points of the lips and lower jaw line, and of the brows and eyes (expression channel groups)
LOWER_FACE_IBUG = np.r_[4:13, 48:68]
UPPER_FACE_IBUG = np.r_[17:27, 36:48]


@dataclass
class FaceModel:
    """What turns meshes into pose + expression; fitted on a dataset's training split, saved with it."""

    reference: np.ndarray            # (468, 3) frontal mean face, centred on its rigid points, unit RMS there
    rigid: np.ndarray                # (K,) vertex indices used for the pose fit
    pca_mean: np.ndarray             # (1404,) mean of the training offsets
    components: np.ndarray           # (E, 1404) orthonormal rows
    explained_variance_ratio: np.ndarray  # (E,)
    coef_scale: float                # coefficients = projection / coef_scale
    scale_ref: float                 # median face scale of the training frames (tz = log(s / scale_ref))
    face_oval: np.ndarray            # (M,) ordered face-oval vertex loop (masks)
    edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # mesh tessellation (rasterizer)
    templates: dict[str, np.ndarray] = field(default_factory=dict)  # identity -> (468, 3)
    orientations: dict[str, np.ndarray] = field(default_factory=dict)  # identity -> (3, 3) mean pitch rotation
    meta: dict = field(default_factory=dict)

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def expression_names(self) -> list[str]:
        return [f"{EXPRESSION_NAMES_PREFIX}{i:02d}" for i in range(self.n_components)]

    def channel_groups(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(mouth, upper)``: the expression components that move mainly the lower face, and the rest.

        A component is a mouth channel when its mean squared displacement per
        vertex is at least as large on the lips and lower jaw line (iBUG 4-12,
        48-67) as on the brows and eyes (iBUG 17-26, 36-47).  The VAST expression
        model's non-autoregressive path predicts the mouth channels from speech
        and its loss weights them (SynthTalk's blendshapes are grouped by name).
        There is always at least one mouth channel: the most mouth-heavy one.
        """
        if not self.n_components:
            return (), ()
        comp = self.components.reshape(self.n_components, N_FACE, 3)
        lower = (comp[:, MESH_TO_IBUG68[LOWER_FACE_IBUG]] ** 2).sum((1, 2)) / len(LOWER_FACE_IBUG)
        upper = (comp[:, MESH_TO_IBUG68[UPPER_FACE_IBUG]] ** 2).sum((1, 2)) / len(UPPER_FACE_IBUG)
        mouth = [k for k in range(self.n_components) if lower[k] >= upper[k]]
        if not mouth:
            mouth = [int(np.argmax(lower / np.maximum(upper, 1e-12)))]
        return tuple(mouth), tuple(k for k in range(self.n_components) if k not in mouth)

    # ---------------------------------------------------------------- io
    def save(self, path: str | Path) -> None:
        import json

        from vastbench.media import atomic_path

        ids = sorted(self.templates)
        with atomic_path(Path(path)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, reference=self.reference, rigid=self.rigid, pca_mean=self.pca_mean,
                         components=self.components, explained_variance_ratio=self.explained_variance_ratio,
                         coef_scale=np.float64(self.coef_scale), scale_ref=np.float64(self.scale_ref),
                         face_oval=self.face_oval, edges=self.edges, template_ids=np.array(ids, dtype=str),
                         templates=np.stack([self.templates[i] for i in ids]) if ids else np.zeros((0, N_FACE, 3)),
                         orientations=np.stack([self.orientations[i] for i in ids]) if ids else np.zeros((0, 3, 3)),
                         meta=np.array(json.dumps(self.meta, sort_keys=True)))

    @classmethod
    def load(cls, path: str | Path) -> "FaceModel":
        import json

        path = Path(path)
        if path.is_dir():
            path = path / FACE_MODEL_FILE
        if not path.exists():
            raise VastbenchError(f"{path}: no face model; it is written by `vastbench data ingest` beside "
                                 "the manifest of an ingested dataset")
        try:
            z = np.load(path)
            return cls(reference=z["reference"], rigid=z["rigid"], pca_mean=z["pca_mean"],
                       components=z["components"], explained_variance_ratio=z["explained_variance_ratio"],
                       coef_scale=float(z["coef_scale"]), scale_ref=float(z["scale_ref"]),
                       face_oval=z["face_oval"], edges=z["edges"],
                       templates={str(i): t for i, t in zip(z["template_ids"], z["templates"])},
                       orientations={str(i): r for i, r in zip(z["template_ids"], z["orientations"])},
                       meta=json.loads(str(z["meta"])))
        except (KeyError, ValueError, OSError) as exc:
            raise VastbenchError(f"{path}: not a vastbench face model ({exc}); re-run `vastbench data ingest`") from None

    def hash(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for a in (self.reference, self.rigid, self.pca_mean, self.components):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(f"{self.coef_scale:.12g}:{self.scale_ref:.12g}".encode())
        return h.hexdigest()[:16]

    # ---------------------------------------------------------------- per frame
    def align(self, mesh_px: np.ndarray, frame_hw: tuple[int, int], template: np.ndarray | None = None,
              orientation: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Pose and pose-normalised meshes of (T, >=468, 3) pixel meshes (see :meth:`align_coords`)."""
        return self.align_coords(to_model_coords(np.asarray(mesh_px)[:, :N_FACE], frame_hw), template, orientation)

    def align_coords(self, y: np.ndarray, template: np.ndarray | None = None,
                     orientation: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Fit each frame to ``template`` (default: the reference) on the rigid points.

        ``orientation``: the speaker's mean head pitch (a rotation about x); pitch is
        measured from it.  A face whose proportions differ from the mean face fits it
        with a constant nod (a long face looks nodded), which the template cannot
        undo (it is a mean of frames aligned to the reference, so it has the
        reference's orientation); measuring pitch from the speaker's mean removes
        that bias (and, with it, any habitual nod of the speaker).
        """
        src = self.reference if template is None else template
        s, R, _ = umeyama(src[self.rigid], y[:, self.rigid])
        centre = y[:, self.rigid].mean(1)
        src_c = src[self.rigid].mean(0)
        # R^T (y - centre) / s + template centre: the frame laid onto the template
        aligned = np.einsum("tji,tnj->tni", R, y - centre[:, None]) / s[:, None, None] + src_c
        angles = euler_from_matrix(R if orientation is None else R @ orientation.T)
        pose = np.concatenate([angles, centre[:, :2], np.log(s / self.scale_ref)[:, None]], 1)
        return {"pose": pose.astype(np.float32), "aligned": aligned, "scale": s}

    def expressions(self, aligned: np.ndarray, template: np.ndarray) -> np.ndarray:
        off = (aligned - template[None]).reshape(len(aligned), -1)
        return ((off - self.pca_mean) @ self.components.T / self.coef_scale).astype(np.float32)

    def reconstruct(self, expression: np.ndarray, template: np.ndarray) -> np.ndarray:
        """(T, E) coefficients -> (T, 468, 3) pose-normalised meshes (for rasterizers and checks)."""
        off = np.asarray(expression, np.float64) * self.coef_scale @ self.components + self.pca_mean
        return template[None] + off.reshape(len(off), N_FACE, 3)

    def pose_mesh(self, expression: np.ndarray, pose: np.ndarray, identity: str, frame_hw: tuple[int, int]
                  ) -> np.ndarray:
        """(T, E) expression + (T, 6) pose of a known speaker -> (T, 468, 3) meshes in pixels (the inverse of
        :meth:`analyse`, up to the PCA truncation; orthographic, depth relative to the rigid centroid)."""
        if identity not in self.templates:
            from vastbench.registry import did_you_mean

            raise VastbenchError(f"face model has no speaker '{identity}'{did_you_mean(identity, self.templates)}")
        template, orientation = self.templates[identity], self.orientations[identity]
        x = self.reconstruct(expression, template) - template[self.rigid].mean(0)
        pose = np.asarray(pose, np.float64)
        R = matrix_from_euler(pose[:, :3]) @ orientation
        s = np.exp(pose[:, 5]) * self.scale_ref
        y = s[:, None, None] * np.einsum("tij,tnj->tni", R, x)
        y[..., 0] += pose[:, None, 3]
        y[..., 1] += pose[:, None, 4]
        h, w = frame_hw
        out = np.empty_like(y)
        out[..., 0] = y[..., 0] * h + 0.5 * w
        out[..., 1] = -y[..., 1] * h + 0.5 * h
        out[..., 2] = -y[..., 2] * h
        return out

    def speaker(self, identity: str | None, mesh_px: np.ndarray, frame_hw: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray]:
        """(template, mean orientation) of the identity, or (unknown identity) of this clip alone."""
        if identity is not None and identity in self.templates:
            return self.templates[identity], self.orientations[identity]
        y = to_model_coords(np.asarray(mesh_px)[:, :N_FACE], frame_hw)
        al = self.align_coords(y)
        _, R, _ = umeyama(self.reference[self.rigid], y[:, self.rigid])
        return al["aligned"].mean(0), _pitch_only(_nearest_rotation(R.sum(0)))

    def analyse(self, mesh_px: np.ndarray, frame_hw: tuple[int, int], identity: str | None = None
                ) -> dict[str, np.ndarray]:
        """(T, 478, 3) pixel meshes -> expression (T, E), pose (T, 6), landmarks2d (T, 68, 2)."""
        template, orientation = self.speaker(identity, mesh_px, frame_hw)
        al = self.align(mesh_px, frame_hw, template, orientation)
        return {"expression": self.expressions(al["aligned"], template), "pose": al["pose"],
                "landmarks2d": landmarks68(mesh_px)}


def fit_face_model(train: list[tuple[str, int, Callable[[], np.ndarray]]], frame_hw: tuple[int, int],
                   everyone: list[tuple[str, int, Callable[[], np.ndarray]]], face_oval: np.ndarray,
                   n_components: int = 32, max_frames: int = 20000, seed: int = 0,
                   edges: np.ndarray | None = None) -> FaceModel:
    """Fit the reference (generalized Procrustes), rigid set, templates and PCA.

    ``train``: (identity, n_frames, load) of the training clips, where ``load()``
    returns the clip's (T, 478, 3) pixel meshes; ``everyone``: the same for every
    clip (templates are per identity over all its clips).  Clips are loaded one at
    a time and the training frames thinned to at most ``max_frames`` (every k-th
    frame), so memory does not grow with the dataset.
    """
    total = sum(int(n) for _, n, _ in train)
    if total == 0:
        raise VastbenchError("no training frames to fit the face model on: the train split is empty "
                             "(every video was skipped or all speakers were held out)")
    stride = max(1, -(-total // max_frames))
    ys, ids = [], []
    for ident, _, load in train:
        m = load()[::stride, :N_FACE]
        ys.append(to_model_coords(m, frame_hw))
        ids.extend([ident] * len(m))
    y = np.concatenate(ys)
    ids_arr = np.array(ids)
    if len(y) < 10:
        raise VastbenchError(f"only {len(y)} training frames with a face; the face model needs more training video")

    # Generalized Procrustes: all points first, then the rigid set (least residual motion after alignment).
    rigid = np.arange(N_FACE)
    ref = _normalise(y[0].copy(), rigid)
    for it in range(8):
        s, R, t = umeyama(ref[rigid], y[:, rigid])
        aligned = np.einsum("tji,tnj->tni", R, y - t[:, None]) / s[:, None, None]
        ref = _normalise(aligned.mean(0), rigid)
        if it == 2:
            resid = ((aligned - aligned.mean(0)) ** 2).sum(2).mean(0)
            rigid = np.sort(np.argsort(resid)[: int(round(RIGID_FRACTION * N_FACE))])
            ref = _normalise(ref, rigid)
    # Zero pose: the training frames' mean orientation, then yaw/roll from the left/right symmetry.
    _, R, _ = umeyama(ref[rigid], y[:, rigid])
    ref = ref @ _nearest_rotation(R.sum(0)).T
    pairs = np.array([(MESH_TO_IBUG68[a], MESH_TO_IBUG68[b]) for a, b in _IBUG_PAIRS])
    x_axis = (ref[pairs[:, 1]] - ref[pairs[:, 0]]).mean(0)   # subject's right (image left) -> left (image right)
    ref = _normalise(ref @ _rotation_between(x_axis, np.array([1.0, 0.0, 0.0])).T, rigid)

    model = FaceModel(reference=ref, rigid=rigid, pca_mean=np.zeros(N_FACE * 3), components=np.zeros((0, N_FACE * 3)),
                      explained_variance_ratio=np.zeros(0), coef_scale=1.0, scale_ref=1.0,
                      face_oval=np.asarray(face_oval, np.int64),
                      edges=np.asarray(edges if edges is not None else np.zeros((0, 2)), np.int64).reshape(-1, 2))
    s, _, _ = umeyama(ref[rigid], y[:, rigid])
    model.scale_ref = float(np.median(s))

    # Templates and mean orientations: each identity's over all its clips.
    sums: dict[str, np.ndarray] = {}
    rots: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for ident, _, load in everyone:
        ym = to_model_coords(load()[:, :N_FACE], frame_hw)
        a = model.align_coords(ym)["aligned"]
        _, R, _ = umeyama(ref[rigid], ym[:, rigid])
        sums[ident] = sums.get(ident, 0) + a.sum(0)
        rots[ident] = rots.get(ident, 0) + R.sum(0)
        counts[ident] = counts.get(ident, 0) + len(a)
    model.templates = {k: sums[k] / counts[k] for k in sums}
    model.orientations = {k: _pitch_only(_nearest_rotation(rots[k])) for k in rots}

    # PCA of the training offsets (each frame fitted to its speaker's template).
    from sklearn.decomposition import PCA

    off = np.empty((len(y), N_FACE * 3))
    for ident in np.unique(ids_arr):
        sel = ids_arr == ident
        tmpl = model.templates[str(ident)]
        off[sel] = (model.align_coords(y[sel], tmpl)["aligned"] - tmpl).reshape(int(sel.sum()), -1)
    k = int(min(n_components, off.shape[0] - 1, off.shape[1]))
    pca = PCA(n_components=k, svd_solver="full", random_state=seed).fit(off)
    model.pca_mean = pca.mean_
    model.components = pca.components_
    model.explained_variance_ratio = pca.explained_variance_ratio_
    model.coef_scale = float(np.sqrt(pca.explained_variance_[0])) if k else 1.0
    model.meta = {"train_frames": int(len(y)), "train_frame_stride": int(stride), "rigid_points": int(len(rigid)), "components": k,
                  "explained_variance": float(pca.explained_variance_ratio_.sum()) if k else 0.0}
    return model


# ----------------------------------------------------------------------------- landmarks and masks
def landmarks68(mesh_px: np.ndarray) -> np.ndarray:
    """(T, 478, 3) pixel meshes -> (T, 68, 2) float32 iBUG landmarks (x right, y down)."""
    return np.asarray(mesh_px)[:, MESH_TO_IBUG68, :2].astype(np.float32)


def face_masks(mesh_px: np.ndarray, face_oval: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """(T, H, W) bool: the filled face-oval polygon of each frame's mesh."""
    import cv2

    h, w = frame_hw
    out = np.zeros((len(mesh_px), h, w), np.uint8)
    loops = np.ascontiguousarray(np.round(np.asarray(mesh_px)[:, np.asarray(face_oval), :2] * 16), np.int32)  # shift 4
    for t in range(len(out)):
        cv2.fillPoly(out[t], [loops[t]], 1, lineType=cv2.LINE_8, shift=4)
    return out.astype(bool)


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> (T, H, ceil(W / 8)) uint8 (``np.packbits`` along the width): 8x less memory."""
    return np.packbits(np.asarray(masks, bool), axis=-1)


def unpack_masks(bits: np.ndarray, width: int) -> np.ndarray:
    """Inverse of :func:`pack_masks`: a features npz's ``face_mask_bits`` -> (T, H, W) bool."""
    return np.unpackbits(np.asarray(bits, np.uint8), axis=-1, count=int(width)).astype(bool)


def fill_gaps(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of the frames where ``ok`` is False (edges hold the nearest)."""
    if ok.all():
        return values
    if not ok.any():
        raise VastbenchError("no frame with a face to interpolate from")
    t = np.arange(len(values))
    flat = values.reshape(len(values), -1)
    out = np.empty_like(flat)
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(t, t[ok], flat[ok, j])
    return out.reshape(values.shape)
