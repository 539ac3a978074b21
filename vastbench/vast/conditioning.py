"""The renderer's conditional input: eroded background + mesh image per frame.

The renderer (``renderer.py``) never sees the target's face: it sees

* the **eroded background**: one reference frame of the target with the face
  region removed (filled with mid-grey, 0 in [-1, 1]), so that hair, ears,
  neck, clothes and the backdrop are given and the face must be drawn; and
* the **mesh image** of each frame: the face mesh of the expression and pose
  to be shown, rasterized appearance-free in the target's geometry.

Both are RGB; concatenated channel-wise they are the condition
``(B, T, 6, H, W)`` in [-1, 1] (background first, then mesh image).

The erased region must hide every mouth and jaw pixel the target can show,
or the renderer would learn to copy the reference mouth instead of following
the mesh.  It is the union of the face masks over the target's frames (its
training video: every jaw opening and head position it was seen in), dilated
by a disk of radius ``dilate_frac * H`` (0.08: 6 px at 80 px, 20 px at 256 px)
and then smeared downward by ``chin_frac * H`` (0.10: 8 px at 80 px), because
the jaw opens downward and speech drives it further than the few frames of a
reference clip do.  The test checks the result against the face masks and
mouth landmarks of every frame of held-out clips.

Where meshes come from is a :class:`MeshRasterizer`: SynthTalk draws its own
procedural face (:class:`SynthTalkRasterizer`); an ingested dataset draws the
MediaPipe face mesh its face model reconstructs
(:class:`vastbench.data.ingest.rasterizer.MediaPipeRasterizer`);
:func:`rasterizer_for` picks one for a dataset.  Everything else here is
numpy/torch on arrays and knows nothing of SynthTalk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vastbench.errors import VastbenchError

DILATE_FRAC = 0.08   # erase-mask dilation radius / frame height
CHIN_FRAC = 0.10     # extra downward extent of the erased region / frame height
MOUTH_FRAC = 0.04    # mouth-mask dilation radius / frame height (loss weight, metrics)
FILL = 128           # value of erased pixels (uint8; ~0 in [-1, 1])
MOUTH_OUTER = slice(48, 60)  # iBUG 68: outer lip contour


@dataclass(frozen=True)
class MeshFrames:
    """What a rasterizer gives for a sequence of (expression, pose)."""

    mesh_images: np.ndarray   # (T, H, W, 3) uint8, appearance-free face mesh on black
    face_masks: np.ndarray    # (T, H, W) bool, face pixels (skin, lips, mouth, eyes, brows)
    landmarks2d: np.ndarray   # (T, 68, 2) float32, iBUG order, pixel coordinates (x right, y down)


@runtime_checkable
class MeshRasterizer(Protocol):
    """Draws the target's face mesh for expression + pose, in the target's frame geometry."""

    size: int

    def rasterize(self, expressions: np.ndarray, poses: np.ndarray) -> MeshFrames:
        """expressions (T, E), poses (T, 6) -> :class:`MeshFrames`."""
        ...


class SynthTalkRasterizer:
    """:class:`MeshRasterizer` for a SynthTalk identity (its own procedural mesh).

    ``identity``: the SynthTalk identity index (3), its name ("id03") or a
    ``face.Identity``.  ``seed`` is the dataset seed that drew the identities.
    """

    def __init__(self, identity: Any, size: int, seed: int = 0, supersample: int = 2):
        from vastbench.data.synthtalk.face import Identity
        from vastbench.data.synthtalk.render import FaceRenderer

        if not isinstance(identity, Identity):
            from vastbench.data.synthtalk.dataset import identity_for

            identity = identity_for(identity_index(identity), seed)
        self.size = int(size)
        self._renderer = FaceRenderer(identity, self.size, supersample=supersample)

    def rasterize(self, expressions: np.ndarray, poses: np.ndarray) -> MeshFrames:
        expressions, poses = np.asarray(expressions), np.asarray(poses)
        if expressions.ndim != 2 or poses.ndim != 2 or len(expressions) != len(poses):
            raise VastbenchError(f"rasterize: need expressions (T, E) and poses (T, 6) of equal T, got "
                                 f"{expressions.shape} and {poses.shape}")
        n, s = len(expressions), self.size
        meshes = np.zeros((n, s, s, 3), np.uint8)
        masks = np.zeros((n, s, s), bool)
        lms = np.zeros((n, 68, 2), np.float32)
        for t, (e, p) in enumerate(zip(expressions, poses)):
            out = self._renderer.render(e, p, with_mesh_image=True)
            meshes[t], masks[t], lms[t] = out.mesh_image, out.face_mask, out.landmarks2d
        return MeshFrames(meshes, masks, lms)


    def mesh_images(self, expressions: np.ndarray, poses: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 mesh images only (inference needs no masks or landmarks: half the work)."""
        expressions, poses = np.asarray(expressions), np.asarray(poses)
        if expressions.ndim != 2 or poses.ndim != 2 or len(expressions) != len(poses):
            raise VastbenchError(f"rasterize: need expressions (T, E) and poses (T, 6) of equal T, got "
                                 f"{expressions.shape} and {poses.shape}")
        out = np.zeros((len(expressions), self.size, self.size, 3), np.uint8)
        for t, (e, p) in enumerate(zip(expressions, poses)):
            out[t] = self._renderer.render_mesh_image(e, p)
        return out


def rasterizer_for(manifest: Any, identity: str, size: int, seed: int = 0) -> MeshRasterizer:
    """The mesh rasterizer of ``identity`` in ``manifest``'s dataset: MediaPipe meshes from the face model of an
    ingested dataset (``face_model.npz`` beside the manifest), else SynthTalk's procedural face (``seed``: the
    dataset seed that drew its identities)."""
    from vastbench.data.ingest.geometry import dataset_face_model

    face_model = dataset_face_model(manifest)
    if face_model is not None:
        from vastbench.data.ingest.rasterizer import MediaPipeRasterizer

        return MediaPipeRasterizer(face_model, identity, size)
    return SynthTalkRasterizer(identity, size, seed)


def identity_index(identity: Any) -> int:
    """3, "3" or "id03" -> 3."""
    text = str(identity)
    digits = text[2:] if text.startswith("id") else text
    if not digits.isdigit():
        raise VastbenchError(f"SynthTalk identity {identity!r} is not an index or a name like 'id03'")
    return int(digits)


# ----------------------------------------------------------------------------- masks
def _disk(radius: int) -> np.ndarray:
    r = max(int(radius), 0)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return xx * xx + yy * yy <= r * r + r  # slightly rounder than <= r*r on small radii


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of (H, W) or (T, H, W) masks by a disk of ``radius`` pixels."""
    from scipy.ndimage import binary_dilation

    mask = np.asarray(mask, bool)
    if radius <= 0:
        return mask.copy()
    fp = _disk(radius)
    if mask.ndim == 3:
        fp = fp[None]
    return binary_dilation(mask, structure=fp)


def erase_mask(face_masks: np.ndarray, dilate_frac: float = DILATE_FRAC, chin_frac: float = CHIN_FRAC) -> np.ndarray:
    """(H, W) bool region to remove: union of ``face_masks`` (T, H, W) or (H, W), dilated, extended down."""
    masks = np.asarray(face_masks, bool)
    union = masks.any(axis=0) if masks.ndim == 3 else masks
    h = union.shape[0]
    grown = dilate(union, int(np.ceil(dilate_frac * h)))
    down = int(np.ceil(chin_frac * h))
    out = grown.copy()
    for k in range(1, down + 1):  # smear downward: the jaw opens down
        out[k:] |= grown[:-k]
    return out


def mouth_masks(landmarks2d: np.ndarray, size: int | tuple[int, int], dilate_frac: float = MOUTH_FRAC) -> np.ndarray:
    """(T, H, W) bool: the outer-lip polygon (landmarks 48-59) of each frame, dilated by ``dilate_frac * H``."""
    from skimage.draw import polygon

    lm = np.asarray(landmarks2d, np.float64)
    if lm.ndim == 2:
        lm = lm[None]
    h, w = (size, size) if np.isscalar(size) else size
    out = np.zeros((len(lm), h, w), bool)
    for t, pts in enumerate(lm):
        lip = pts[MOUTH_OUTER]
        rr, cc = polygon(lip[:, 1], lip[:, 0], shape=(h, w))
        out[t, rr, cc] = True
        # Landmarks at pixel centres: mark the contour pixels too (a closed mouth is a thin polygon).
        yi = np.clip(np.round(lip[:, 1]).astype(int), 0, h - 1)
        xi = np.clip(np.round(lip[:, 0]).astype(int), 0, w - 1)
        out[t, yi, xi] = True
    return dilate(out, int(np.ceil(dilate_frac * h)))


# ----------------------------------------------------------------------------- background
def eroded_background(frame: np.ndarray, erase: np.ndarray, fill: int = FILL) -> np.ndarray:
    """(H, W, 3) uint8 copy of ``frame`` with the ``erase`` (H, W) region set to ``fill``."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise VastbenchError(f"eroded_background: frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if erase.shape != frame.shape[:2]:
        raise VastbenchError(f"eroded_background: mask {erase.shape} does not match frame {frame.shape[:2]}")
    out = frame.copy()
    out[erase] = fill
    return out


def target_background(reference_frame: np.ndarray, face_masks: np.ndarray,
                      dilate_frac: float = DILATE_FRAC, chin_frac: float = CHIN_FRAC) -> tuple[np.ndarray, np.ndarray]:
    """The target's eroded background and the erased region.

    ``reference_frame`` (H, W, 3) uint8: one frame of the target's video;
    ``face_masks`` (T, H, W): face masks of the target's frames (its training
    video) -- their union, grown, is what is erased.
    """
    erase = erase_mask(face_masks, dilate_frac, chin_frac)
    return eroded_background(reference_frame, erase), erase


# ----------------------------------------------------------------------------- tensors
def to_unit(images: np.ndarray):
    """uint8 (..., H, W, 3) -> float32 tensor (..., 3, H, W) in [-1, 1]."""
    import torch

    images = np.ascontiguousarray(images)
    if not images.flags.writeable:  # broadcast views: torch wants writable memory
        images = images.copy()
    x = torch.from_numpy(images).float().div_(127.5).sub_(1.0)
    return x.movedim(-1, -3)


def from_unit(x) -> np.ndarray:
    """float tensor (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3)."""
    x = x.detach().float().clamp(-1, 1).add(1.0).mul(127.5).round().to("cpu").movedim(-3, -1)
    return x.numpy().astype(np.uint8)


def condition(background: np.ndarray, mesh_images: np.ndarray):
    """Renderer condition (..., T, 6, H, W) in [-1, 1].

    ``background``: (H, W, 3), (T, H, W, 3) or (B, T, H, W, 3) uint8, broadcast
    over the frames of ``mesh_images`` (T, H, W, 3) or (B, T, H, W, 3) uint8.
    """
    import torch

    bg, mesh = np.asarray(background), np.asarray(mesh_images)
    if mesh.ndim not in (4, 5) or mesh.shape[-1] != 3:
        raise VastbenchError(f"condition: mesh_images must be (T, H, W, 3) or (B, T, H, W, 3), got {mesh.shape}")
    if bg.shape[-3:] != mesh.shape[-3:]:
        raise VastbenchError(f"condition: background {bg.shape} and mesh images {mesh.shape} differ in size")
    bg_t = to_unit(bg)
    mesh_t = to_unit(mesh)
    while bg_t.dim() < mesh_t.dim():
        bg_t = bg_t.unsqueeze(0)
    bg_t = bg_t.expand_as(mesh_t)
    return torch.cat([bg_t, mesh_t], dim=-3)
