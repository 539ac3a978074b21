"""A :class:`~vastbench.vast.conditioning.MeshRasterizer` for ingested speakers: MediaPipe meshes, drawn.

VAST's renderer sees an appearance-free mesh image of the expression and pose
to show.  SynthTalk draws its own procedural face; for a real speaker this draws
the MediaPipe face mesh that the dataset's face model reconstructs from
(expression, pose) (:meth:`FaceModel.pose_mesh`): the face-oval region in dark
grey, eye openings in light grey, the inner-mouth opening in red, and the
mesh's tessellation edges with a brightness that falls off with depth, so the
renderer can tell the jaw opening, lid closure and head turn apart.  Face masks
are the filled face oval and landmarks the 68-point mapping, as in ingestion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vastbench.data.ingest import geometry as G
from vastbench.errors import VastbenchError

_EYES = (slice(36, 42), slice(42, 48))
_INNER_MOUTH = slice(60, 68)


class MediaPipeRasterizer:
    """Mesh images of an ingested speaker at ``size`` px (the dataset's crop geometry)."""

    def __init__(self, face_model: G.FaceModel | str | Path, identity: str, size: int):
        self.model = face_model if isinstance(face_model, G.FaceModel) else G.FaceModel.load(face_model)
        if not len(self.model.edges):
            raise VastbenchError("this face model has no mesh tessellation; re-run `vastbench data ingest` to refit it")
        self.identity = identity
        self.size = int(size)

    def rasterize(self, expressions: np.ndarray, poses: np.ndarray):
        import cv2

        from vastbench.vast.conditioning import MeshFrames

        expressions, poses = np.asarray(expressions), np.asarray(poses)
        if expressions.ndim != 2 or poses.ndim != 2 or len(expressions) != len(poses) or poses.shape[1] != 6:
            raise VastbenchError(f"rasterize: need expressions (T, E) and poses (T, 6) of equal T, got "
                                 f"{expressions.shape} and {poses.shape}")
        s = self.size
        mesh = self.model.pose_mesh(expressions, poses, self.identity, (s, s))
        lms = G.landmarks68(mesh)
        masks = G.face_masks(mesh, self.model.face_oval, (s, s))
        images = np.zeros((len(mesh), s, s, 3), np.uint8)
        edges = self.model.edges
        sub = 16  # 4 bits of sub-pixel precision for cv2 drawing
        for t, m in enumerate(mesh):
            img = images[t]
            img[masks[t]] = (60, 60, 60)
            for eye in _EYES:
                cv2.fillPoly(img, [np.ascontiguousarray(np.round(lms[t, eye] * sub), np.int32)], (170, 170, 170),
                             lineType=cv2.LINE_AA, shift=4)
            cv2.fillPoly(img, [np.ascontiguousarray(np.round(lms[t, _INNER_MOUTH] * sub), np.int32)], (200, 40, 40),
                         lineType=cv2.LINE_AA, shift=4)
            z = -m[:, 2]                                          # larger = nearer the camera
            depth = (z - z.min()) / max(float(np.ptp(z)), 1e-6)
            pts = np.round(m[:, :2] * sub).astype(np.int32)
            shade = (90 + 165 * 0.5 * (depth[edges[:, 0]] + depth[edges[:, 1]])).astype(int)
            for (a, b), g in zip(edges, shade):
                cv2.line(img, tuple(pts[a]), tuple(pts[b]), (int(g), int(g), int(g)), 1, cv2.LINE_AA, shift=4)
        return MeshFrames(images, masks, lms.astype(np.float32))
