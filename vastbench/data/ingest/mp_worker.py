"""MediaPipe face-mesh worker: runs in the isolated MediaPipe interpreter, not in vastbench's.

mediapipe 0.10.21 (the last release whose wheel ships the legacy face detector
and face-mesh models, so it runs offline) pins ``numpy<2`` and
``protobuf<5``; vastbench needs numpy 2 and Streamlit needs protobuf >= 5.26.
They cannot share one environment, so this file is run as a script by the
interpreter of a separate virtual environment (``vastbench data ingest-setup``)
and imports nothing but the standard library, numpy and mediapipe.

Protocol (binary, over stdin/stdout; one request, one answer):

* request: one JSON line, then ``nbytes`` raw bytes when the request has them;
* answer: one JSON line, then ``nbytes`` raw bytes.

Requests:

* ``{"op": "hello"}`` -> versions;
* ``{"op": "reset", "static": bool, "max_faces": int}`` -> a new tracker
  (``static``: every frame is detected on its own; otherwise faces are tracked);
* ``{"op": "frame", "h": H, "w": W, "nbytes": H*W*3}`` + RGB uint8 bytes ->
  ``{"faces": k, "nbytes": k*478*3*4}`` + float32 ``(k, 478, 3)`` landmarks in
  pixels (x right, y down, z in x's scale, smaller z = nearer the camera);
  faces too small for the mesh's own detector are found by :class:`_SmallFaces`;
* ``{"op": "topology"}`` -> the ordered face-oval loop and the mesh regions;
* ``{"op": "quit"}``.
"""

import json
import os
import sys


def _protocol_streams():
    # Keep the protocol stream clean: anything a library prints to fd 1 goes to stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    return sys.stdin.buffer, os.fdopen(out_fd, "wb", buffering=0)


def _answer(out, header, payload=b""):
    header = dict(header, nbytes=len(payload))
    out.write(json.dumps(header).encode() + b"\n" + payload)


def _read_exact(inp, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = inp.read(n - len(buf))
        if not chunk:
            raise EOFError("stream closed")
        buf += chunk
    return bytes(buf)


def _loop(edges):
    """Ordered vertex loop from a set of undirected edges forming one cycle."""
    nbr = {}
    for a, b in edges:
        nbr.setdefault(a, []).append(b)
        nbr.setdefault(b, []).append(a)
    start = min(nbr)
    loop, prev, cur = [start], None, start
    while True:
        nxt = [v for v in nbr[cur] if v != prev]
        if not nxt or nxt[0] == start:
            break
        prev, cur = cur, nxt[0]
        loop.append(cur)
    return loop


def _topology():
    from mediapipe.python.solutions import face_mesh_connections as C

    regions = {name: sorted({v for e in getattr(C, name) for v in e}) for name in (
        "FACEMESH_LIPS", "FACEMESH_LEFT_EYE", "FACEMESH_RIGHT_EYE", "FACEMESH_LEFT_EYEBROW",
        "FACEMESH_RIGHT_EYEBROW", "FACEMESH_FACE_OVAL", "FACEMESH_LEFT_IRIS", "FACEMESH_RIGHT_IRIS")}
    return {"face_oval_loop": _loop(C.FACEMESH_FACE_OVAL), "regions": regions,
            "tesselation_edges": sorted([sorted(e) for e in C.FACEMESH_TESSELATION])}


class _SmallFaces:
    """Faces too small for the face mesh's own (short-range) detector.

    The legacy face mesh finds faces with the short-range detector, made for
    faces that fill a good part of the frame (selfie distance).  A face that is a
    small part of a large frame (a portrait 1080x1920 phone video, a wide
    interview shot) shrinks to a few pixels at the detector's 128 px input.  When
    the mesh finds no face, this looks again with the full-range detector (faces
    up to 5 m), cuts a square around each face, and runs the mesh on that crop;
    the last crop is tried first on the next frame (tracking), so the detector
    does not run on every frame.
    """

    CROP = 256      # side the face crop is resized to
    MARGIN = 2.2    # crop side / detection box side

    def __init__(self, np, face_mesh, face_detection, max_faces):
        self.np = np
        self.max_faces = max_faces
        self.det = face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
        self.mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                       min_detection_confidence=0.5)
        self.last = []  # boxes (cx, cy, side) of the previous frame's faces

    def close(self):
        self.det.close()
        self.mesh.close()

    def _mesh_in(self, img, box):
        np = self.np
        import cv2

        h, w = img.shape[:2]
        cx, cy, side = box
        side = max(8, int(round(side)))
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        canvas = np.zeros((side, side, 3), np.uint8)
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
        if xb <= xa or yb <= ya:
            return None
        canvas[ya - y0:yb - y0, xa - x0:xb - x0] = img[ya:yb, xa:xb]
        crop = cv2.resize(canvas, (self.CROP, self.CROP), interpolation=cv2.INTER_AREA if side > self.CROP
                          else cv2.INTER_CUBIC)
        res = self.mesh.process(crop)
        if not res.multi_face_landmarks:
            return None
        pts = np.array([(p.x, p.y, p.z) for p in res.multi_face_landmarks[0].landmark], np.float32)
        pts[:, 0] = x0 + pts[:, 0] * side
        pts[:, 1] = y0 + pts[:, 1] * side
        pts[:, 2] = pts[:, 2] * side
        return pts

    def find(self, img):
        faces = [m for m in (self._mesh_in(img, b) for b in self.last) if m is not None]
        if len(faces) < len(self.last) or not faces:
            h, w = img.shape[:2]
            res = self.det.process(img)
            boxes = []
            for d in (res.detections or [])[: self.max_faces]:
                bb = d.location_data.relative_bounding_box
                boxes.append(((bb.xmin + bb.width / 2) * w, (bb.ymin + bb.height / 2) * h,
                              self.MARGIN * max(bb.width * w, bb.height * h)))
            faces = [m for m in (self._mesh_in(img, b) for b in boxes) if m is not None]
        self.last = []
        for m in faces:
            lo, hi = m[:468, :2].min(0), m[:468, :2].max(0)
            self.last.append((*(0.5 * (lo + hi)), self.MARGIN * float((hi - lo).max())))
        return faces


def main():
    inp, out = _protocol_streams()
    import numpy as np
    import mediapipe as mp
    from mediapipe.python.solutions import face_detection, face_mesh

    mesh = None
    small = None
    while True:
        line = inp.readline()
        if not line:
            break
        req = json.loads(line)
        op = req.get("op")
        try:
            if op == "hello":
                _answer(out, {"ok": True, "mediapipe": mp.__version__, "numpy": np.__version__,
                              "python": sys.version.split()[0]})
            elif op == "reset":
                if mesh is not None:
                    mesh.close()
                    small.close()
                small = _SmallFaces(np, face_mesh, face_detection, int(req.get("max_faces", 2)))
                mesh = face_mesh.FaceMesh(static_image_mode=bool(req.get("static", False)),
                                          max_num_faces=int(req.get("max_faces", 2)), refine_landmarks=True,
                                          min_detection_confidence=float(req.get("min_detection", 0.5)),
                                          min_tracking_confidence=float(req.get("min_tracking", 0.5)))
                _answer(out, {"ok": True})
            elif op == "frame":
                h, w = int(req["h"]), int(req["w"])
                data = _read_exact(inp, int(req["nbytes"]))
                if mesh is None:
                    raise RuntimeError("send 'reset' before the first frame")
                img = np.frombuffer(data, np.uint8).reshape(h, w, 3)
                res = mesh.process(img)
                faces = res.multi_face_landmarks or []
                arr = np.array([[(p.x * w, p.y * h, p.z * w) for p in f.landmark] for f in faces], np.float32)
                if not len(faces) and req.get("small_faces", True):
                    found = small.find(img)
                    arr = np.stack(found).astype(np.float32) if found else arr
                _answer(out, {"ok": True, "faces": int(len(arr))}, arr.tobytes())
            elif op == "topology":
                _answer(out, {"ok": True, **_topology()})
            elif op == "quit":
                _answer(out, {"ok": True})
                break
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:  # reported to the client, which raises it with context
            _answer(out, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
