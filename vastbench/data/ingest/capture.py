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
