"""Face capture of any mp4 with MediaPipe, in an ingested dataset's face space (for metrics on real video).

``capture_video(path, face_model)`` returns, per frame on the 25 fps grid,
``expression`` (T x E, the dataset's PCA coefficients), ``pose`` (T x 6),
``landmarks2d`` (T x 68 x 2, iBUG order, pixels of the video), ``mesh``
(T x 478 x 3) and ``face_found`` (T,).  Frames without a face inside a video
that mostly shows one are interpolated from their neighbours; a video where
fewer than ``min_face_fraction`` of the frames show a face is an error.

Expressions are offsets from a template face: the identity's template from
the face model when ``identity`` names one of the dataset's speakers (a
generated video of that speaker), otherwise the video's own mean face, which
makes the coefficients deviations from the clip's average expression.

:class:`MediaPipeCapture` is what face-capture metrics use on an ingested dataset
(:func:`vastbench.evalnets.face_capture.capture_for` picks it): ``capture_video``
with one MediaPipe worker per process (:func:`shared_client`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vastbench.data.ingest import geometry as G
from vastbench.data.ingest import video_io
from vastbench.errors import VastbenchError

MIN_DETECT_SIDE = 192   # MediaPipe's detector finds small faces poorly: smaller frames are upscaled first
UPSCALE_TO = 256


def capture_video(path: str | Path, face_model: G.FaceModel | str | Path, identity: str | None = None,
                  client=None, min_face_fraction: float = 0.5) -> dict[str, np.ndarray]:
    import cv2

    from vastbench.data.ingest.mediapipe_env import FaceMeshClient
    from vastbench.data.ingest.pipeline import choose_faces

    path = Path(path)
    model = face_model if isinstance(face_model, G.FaceModel) else G.FaceModel.load(face_model)
    own = client is None
    client = client or FaceMeshClient().start()
    per_frame, hw = [], None
    try:
        client.reset(static=False, max_faces=2)
        for frame in video_io.iter_frames(path):
            h, w = frame.shape[:2]
            hw = (h, w)
            k = 1.0
            if min(h, w) < MIN_DETECT_SIDE:
                k = UPSCALE_TO / min(h, w)
                frame = cv2.resize(frame, (int(round(w * k)), int(round(h * k))), interpolation=cv2.INTER_CUBIC)
            faces = client.process(frame)
            if k != 1.0:
                faces = faces / np.float32(k)
            per_frame.append(faces)
    finally:
        if own:
            client.close()
    mesh, found, _ = choose_faces(per_frame)
    if found.mean() < min_face_fraction:
        raise VastbenchError(f"no face found in {path}: {int(found.sum())} of {len(found)} frames show a face (the "
                             f"capture needs at least {min_face_fraction:.0%}); check that the video shows a face")
    mesh = G.fill_gaps(mesh, found)
    # MediaPipe's x, y are measured from the image edge; landmarks2d use pixel centres (as SynthTalk's).
    mesh_c = mesh.copy()
    mesh_c[..., :2] -= 0.5
    out = model.analyse(mesh_c, hw, identity)
    return {**out, "mesh": mesh_c.astype(np.float32), "face_found": found}


# ----------------------------------------------------------------------------- metrics on an ingested dataset
_SHARED: tuple[int, object] | None = None   # (pid, FaceMeshClient): one MediaPipe worker per process


def shared_client():
    """This process's MediaPipe worker, started on first use (about a second) and closed at exit."""
    global _SHARED
    import atexit
    import os

    from vastbench.data.ingest.mediapipe_env import FaceMeshClient

    if _SHARED is None or _SHARED[0] != os.getpid():   # a forked child never shares its parent's pipes
        client = FaceMeshClient().start()
        atexit.register(client.close)
        _SHARED = (os.getpid(), client)
    return _SHARED[1]


class MediaPipeCapture:
    """The face capture of metrics on an ingested dataset: :func:`capture_video` with its face model.

    Every video a metric compares (generated, ground truth, style prompt) goes through
    the same MediaPipe face mesh and the dataset's ``face_model.npz``, so expressions
    on both sides are the dataset's PCA coefficients and landmarks come from the same
    mesh.  Each video's expressions are offsets from its speaker's template (the
    request's target for the generated clip, the clip's speaker for ground truth and
    prompt), as in the dataset's features.  The same interface as
    :class:`vastbench.evalnets.face_capture.ShippedCapture`.
    """

    kind = "mediapipe"

    def __init__(self, face_model: str | Path, manifest=None):
        self.path = Path(face_model)
        self.model = G.FaceModel.load(self.path)
        self.manifest = manifest

    def describe(self) -> dict:
        from vastbench.data.ingest.mediapipe_env import MEDIAPIPE_VERSION

        return {"face_capture": f"mediapipe {MEDIAPIPE_VERSION}", "face_model": self.model.hash(),
                "expression_space": f"dataset PCA ({self.model.n_components} components)"}

    @property
    def footnote(self) -> str:
        from vastbench.data.ingest.mediapipe_env import MEDIAPIPE_VERSION

        return (f"Face capture: MediaPipe face mesh (mediapipe {MEDIAPIPE_VERSION}) with this dataset's face model "
                f"(hash {self.model.hash()}), not the SynthTalk-trained capture network: landmarks from the mesh, "
                f"expressions in the dataset's PCA space ({self.model.n_components} components); Std and Upper-Dyn "
                f"Dev measure mouth / brow-and-eye mesh-vertex motion in px of a 256 px frame; Style-Sim* is the "
                f"cosine similarity of standardized expression statistics (no style network exists for this space).")

    def identity(self, sample, role: str) -> str | None:
        """The speaker whose template the ``role`` video's expressions are measured from (None: its own mean)."""
        req = sample.request
        clip_id = {"reference": req.ground_truth, "prompt": req.prompt}.get(role)
        if clip_id is not None and self.manifest is not None and clip_id in self.manifest:
            ident = self.manifest[clip_id].identity
        else:
            ident = req.identity if role in ("generated", "reference") else None
        return ident if ident in self.model.templates else None

    def capture(self, sample, role: str, path: Path) -> dict[str, np.ndarray]:
        return capture_video(path, self.model, self.identity(sample, role), client=shared_client())

    def vertex_motion(self, expression: np.ndarray, vertices: np.ndarray) -> np.ndarray:
        """(T, E) coefficients -> (T, 3 V): the expression's displacement of mesh ``vertices`` (pose removed;
        up to a constant offset), in pixels of a 256 px frame showing a face of the dataset's median size."""
        comp = self.model.components.reshape(self.model.n_components, G.N_FACE, 3)[:, np.asarray(vertices)]
        off = np.asarray(expression, np.float64) @ comp.reshape(len(comp), -1) * self.model.coef_scale
        return off * self.model.scale_ref * 256.0
