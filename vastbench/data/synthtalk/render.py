"""CPU rasterizer for the SynthTalk face (numpy only, deterministic).

:class:`FaceRenderer` draws one identity's mesh (see ``face.py``) for an
expression vector (E,) and a head pose (6,):

* a perspective camera on the +z axis looks at the head; the head (chin to
  the top of the hair) fills about two thirds of the frame height, the
  shoulders show at the bottom, and there is margin for head motion;
* triangles are rasterized with a z-buffer (1/z interpolated in screen space,
  per-pixel nearest wins), shaded with Gouraud-interpolated Lambert + ambient
  + a small specular term under a fixed key light from the upper left, with
  flat per-triangle albedo (crisp lips, lash lines, iris);
* anti-aliasing renders at ``supersample`` x the size and box-averages.

Rasterization is vectorised: every triangle expands to the pixel centres of
its bounding box (one ``np.repeat``), barycentrics and depth are affine in
the pixel position, and ``np.maximum.at`` resolves visibility.  Work saved
per frame: back faces are culled, except where the inside of the head can
show (the skin is two-sided and its inside is drawn as the dark mouth, so no
ray through the lips or past an eyeball ever reaches the background); parts
only visible through the mouth or eye openings (cavity, teeth, eyeballs, the
inside of the head) are drawn only where their screen box meets an
opening's box; the shoulders, which never move, are drawn once in
``__init__`` into a static colour + depth layer.

Pose: (pitch, yaw, roll, tx, ty, tz).  Positive pitch nods the face down,
positive yaw turns it toward the image right (+x), positive roll turns it
counter-clockwise as seen in the image; translations are in model units (the
mean head width), +ty up, +tz toward the camera.  The head, hair and top of
the neck follow the pose; the shoulders stay.

Image coordinates: x right, y down, pixel centres at integer coordinates
(pixel (row, col) covers x in [col - 0.5, col + 0.5]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import sparse

from vastbench.data.synthtalk import face as F
from vastbench.errors import VastbenchError

CAMERA_DISTANCE = 6.0  # model units from the head centre
CAMERA_Y = -0.17  # the frame centre is a little below the head centre
HALF_EXTENT = 1.05  # half the frame height at z = 0, model units
HEAD_PIVOT = np.array([0.0, -0.42, -0.1])  # head rotates about the top of the neck
MIN_SIZE, MAX_SIZE = 32, 1024

_KEY = np.array([-0.6, 0.55, 0.75])
_KEY = _KEY / np.linalg.norm(_KEY)
_FILL = np.array([0.7, 0.05, 0.7])
_FILL = _FILL / np.linalg.norm(_FILL)
_HALF = (_KEY + np.array([0.0, 0.0, 1.0])) / np.linalg.norm(_KEY + np.array([0.0, 0.0, 1.0]))
_AMBIENT, _DIFFUSE, _FILL_K, _SHININESS = 0.36, 0.74, 0.16, 24.0
_LIGHTS = np.stack([_KEY, _FILL, _HALF], 1).astype(np.float32)  # (3, 3) columns
_INSIDE_MOUTH = np.array([0.2, 0.05, 0.05], np.float32)  # back faces seen through the lips
_HEADLIGHT = (np.array([0.0, 0.25, 1.0]) / math.hypot(0.25, 1.0)).astype(np.float32)  # mesh-image light

# Appearance-free "mesh image" colours (the neural renderer's condition).
_MESH_GREY = 0.78
_MESH_FIXED = {  # label -> (rgb, shaded?)
    F.SKIN: ((_MESH_GREY,) * 3, True),
    F.SCALP: ((_MESH_GREY,) * 3, True),
    F.HEAD: ((_MESH_GREY,) * 3, True),
    F.EAR: ((_MESH_GREY,) * 3, True),
    F.NECK: ((_MESH_GREY * 0.85,) * 3, True),
    F.LIPS: ((0.9, 0.55, 0.55), True),
    F.BROW: ((0.3, 0.3, 0.3), True),
    F.MOUTH: ((0.45, 0.0, 0.0), False),
    F.TEETH: ((1.0, 1.0, 1.0), False),
    F.TONGUE: ((0.85, 0.3, 0.3), False),
    F.SCLERA: ((0.35, 0.7, 1.0), False),
    F.IRIS: ((0.0, 0.1, 0.45), False),
}


@dataclass(frozen=True)
class RenderResult:
    """One rendered frame."""

    image: np.ndarray  # (size, size, 3) uint8
    landmarks2d: np.ndarray  # (68, 2) float32, image pixel coordinates (x right, y down)
    # (size, size) bool: facial skin, lips, inner mouth, teeth, eyes, brows (not hair,
    # ears, neck, shoulders or the cranium); a pixel counts when half its samples do.
    face_mask: np.ndarray
    depth: np.ndarray  # (size, size) float32 depth along the camera axis of the nearest surface, inf = background
    mesh_image: np.ndarray | None = None  # (size, size, 3) uint8 when render(..., with_mesh_image=True)


def pose_matrix(pose: Any) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (3, 3) and translation (3,) of a pose (6,); see the module doc."""
    p = F.check_pose(pose)
    pitch, yaw, roll = p[:3]
    cx, sx, cy, sy, cz, sz = math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw), math.cos(roll), math.sin(roll)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])  # +pitch: front goes down
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])  # +yaw: front goes to +x
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])  # +roll: counter-clockwise in the image
    return rz @ ry @ rx, p[3:].copy()


def _check_size(size: Any, supersample: Any) -> tuple[int, int]:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise VastbenchError(f"render size={size!r} is not supported; use an integer from {MIN_SIZE} to {MAX_SIZE}")
    if isinstance(supersample, bool) or not isinstance(supersample, (int, np.integer)) or not 1 <= int(supersample) <= 4:
        raise VastbenchError(f"supersample={supersample!r} is not supported; use an integer from 1 to 4")
    if int(size) * int(supersample) > 2048:
        raise VastbenchError(f"size*supersample={int(size) * int(supersample)} is too large; keep it at most 2048")
    return int(size), int(supersample)


def _background(identity: F.Identity, n: int) -> np.ndarray:
    """(n, n, 3) float32 backdrop: two colours in the identity's pattern."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    xx, yy = np.meshgrid(t, t)
    pat = identity.background_pattern
    if pat == "vertical":
        k = yy
    elif pat == "radial":
        k = np.clip(np.hypot(xx - 0.5, yy - 0.35) / 0.75, 0, 1)
    elif pat == "diagonal":
        k = 0.5 * (xx + yy)
    else:  # soft vertical stripes
        k = 0.5 + 0.5 * np.tanh(4.0 * np.sin(2.0 * np.pi * 3.5 * xx))
        k = 0.15 + 0.7 * k
    a, b = np.asarray(identity.background_rgb_a), np.asarray(identity.background_rgb_b)
    return (a[None, None] * (1.0 - k[..., None]) + b[None, None] * k[..., None]).astype(np.float32)


def _rasterize(
    x: tuple[np.ndarray, np.ndarray, np.ndarray], y: tuple[np.ndarray, np.ndarray, np.ndarray],
    z: tuple[np.ndarray, np.ndarray, np.ndarray], n: int, zinit: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffered coverage of an n x n raster.

    x, y: the three corners' pixel coordinates, each (T,) float32; z: their
    inverse depth (larger = nearer); zinit (n*n,) an optional initial z-buffer
    (a static layer already drawn).  Returns per pixel (n*n,): triangle index
    (-1 = not drawn here), barycentrics b1, b2 (weights of corners 1 and 2)
    and the inverse depth.  All arrays are 1-D and contiguous: numpy is much
    faster on those than on (T, k) columns.
    """
    tri_buf = np.full(n * n, -1, np.int32)
    b1_buf = np.zeros(n * n, np.float32)
    b2_buf = np.zeros(n * n, np.float32)
    zbuf = np.full(n * n, -np.inf, np.float32) if zinit is None else zinit.copy()
    x0, x1, x2 = x
    y0, y1, y2 = y
    xmin = np.maximum(np.ceil(np.minimum(np.minimum(x0, x1), x2)), 0.0)
    ymin = np.maximum(np.ceil(np.minimum(np.minimum(y0, y1), y2)), 0.0)
    bw = np.minimum(np.floor(np.maximum(np.maximum(x0, x1), x2)), n - 1) - xmin + 1
    bh = np.minimum(np.floor(np.maximum(np.maximum(y0, y1), y2)), n - 1) - ymin + 1
    ex1, ey1, ex2, ey2 = x1 - x0, y1 - y0, x2 - x0, y2 - y0
    area = ex1 * ey2 - ex2 * ey1
    idx = np.flatnonzero((bw > 0) & (bh > 0) & (np.abs(area) > 1e-10))
    if idx.size == 0:
        return tri_buf, b1_buf, b2_buf, zbuf
    inv = 1.0 / area[idx]
    ex1, ey1, ex2, ey2 = ex1[idx], ey1[idx], ex2[idx], ey2[idx]
    xmin, ymin = xmin[idx], ymin[idx]
    a1, bb1 = ey2 * inv, -ex2 * inv  # b1 = a1 * dx + bb1 * dy + c1 (dx, dy from the box origin)
    a2, bb2 = -ey1 * inv, ex1 * inv
    ox, oy = xmin - x0[idx], ymin - y0[idx]
    c1, c2 = a1 * ox + bb1 * oy, a2 * ox + bb2 * oy
    za = z[0][idx]
    d1, d2 = z[1][idx] - za, z[2][idx] - za
    coef = np.stack([a1, bb1, c1, a2, bb2, c2, a1 * d1 + a2 * d2, bb1 * d1 + bb2 * d2, za + c1 * d1 + c2 * d2])
    bw = bw[idx].astype(np.int32)
    cnt = bw * bh[idx].astype(np.int32)
    owner = np.repeat(np.arange(idx.size, dtype=np.int32), cnt)  # (N,) candidate pixel -> triangle
    local = np.arange(owner.size, dtype=np.int32) - np.repeat(np.cumsum(cnt, dtype=np.int32) - cnt, cnt)
    w_of = bw[owner]
    dy = local // w_of
    fx = (local - dy * w_of).astype(np.float32)
    fy = dy.astype(np.float32)
    c = coef[:, owner]  # (9, N)
    b1 = c[0] * fx + c[1] * fy + c[2]
    b2 = c[3] * fx + c[4] * fy + c[5]
    eps = np.float32(1e-5)
    sel = np.flatnonzero((b1 >= -eps) & (b2 >= -eps) & (b1 + b2 <= 1 + eps))
    fx, fy, own = fx[sel], fy[sel], owner[sel]
    zf = c[6, sel] * fx + c[7, sel] * fy + c[8, sel]
    pix = ((ymin[own] + fy) * n + (xmin[own] + fx)).astype(np.int64)
    np.maximum.at(zbuf, pix, zf)
    win = np.flatnonzero(zf >= zbuf[pix])
    pw = pix[win]
    tri_buf[pw] = idx[own[win]]
    b1_buf[pw] = b1[sel[win]]
    b2_buf[pw] = b2[sel[win]]
    return tri_buf, b1_buf, b2_buf, zbuf


class FaceRenderer:
    """Renders one identity at a fixed size; see the module doc for conventions."""

    def __init__(self, identity: F.Identity, size: int, supersample: int = 2):
        self.size, self.supersample = _check_size(size, supersample)
        self.identity = identity
        self.model = F.face_model(identity)
        m = self.model
        self.n = self.size * self.supersample
        self.focal = 0.5 * self.n * CAMERA_DISTANCE / HALF_EXTENT
        self.background = _background(identity, self.n).reshape(-1, 3)  # (n*n, 3)
        tris = m.triangles.astype(np.int64)
        V, T = m.n_vertices, len(tris)
        # Vertex normal = sum of adjacent (area-weighted) face normals.
        rows = tris.ravel()
        cols = np.repeat(np.arange(T), 3)
        self._v_from_f = sparse.csr_matrix((np.ones(3 * T, np.float32), (rows, cols)), shape=(V, T))
        self._tris = tris
        self._albedo = m.tri_albedo
        self._spec = m.tri_spec
        self._label = m.tri_label
        self._ao = m.vertex_ao
        self._abs_idx = np.flatnonzero(m.vertex_abs_light)
        self._pose_w = m.vertex_pose_weight[:, None].astype(np.float32)
        self._t0, self._t1, self._t2 = (np.ascontiguousarray(tris[:, k]) for k in range(3))
        self._face_tri = np.isin(m.tri_label, F.FACE_PARTS)
        mesh_rgb = np.zeros((T, 3), np.float32)
        mesh_shaded = np.zeros(T, bool)
        self._mesh_keep = np.zeros(T, bool)
        for label, (rgb, shaded) in _MESH_FIXED.items():
            sel = m.tri_label == label
            mesh_rgb[sel] = rgb
            mesh_shaded[sel] = shaded
            self._mesh_keep |= sel
        self._mesh_rgb, self._mesh_shaded = mesh_rgb, mesh_shaded
        # Parts that neither pose nor expression move (the shoulders) are drawn
        # once into a static layer; each frame starts from its colours and depth.
        still = (m.vertex_pose_weight == 0) & np.all(m.deltas == 0, axis=(0, 2))
        static = np.all(still[tris], axis=1)
        self._dynamic = ~static
        self._static_rgb = self.background.copy()
        self._static_z = None
        if static.any():
            verts = self._posed(np.zeros(F.N_EXPRESSIONS), np.zeros(F.N_POSE))
            xy, inv = self._project(verts)
            sel, back, tri_buf, b1, b2, zbuf = self._raster(xy, inv, static)
            self._shade(self._normals(verts), sel, back, tri_buf, b1, b2, self._static_rgb)
            self._static_z = zbuf

    # -- geometry -----------------------------------------------------------

    def _posed(self, expression: Any, pose: Any) -> np.ndarray:
        """(V, 3) float32 camera-frame vertices (camera on +z looking at -z)."""
        verts = self.model.vertices(expression)
        rot, trans = pose_matrix(pose)
        moved = (verts - HEAD_PIVOT.astype(np.float32)) @ rot.T.astype(np.float32)
        moved += (HEAD_PIVOT + trans).astype(np.float32)
        return verts + self._pose_w * (moved - verts)

    def _project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raster xy (n, 2) float32 and inverse depth (n,) float32 of camera-frame points."""
        depth = CAMERA_DISTANCE - pts[:, 2]
        if np.any(depth < 0.5):
            raise VastbenchError("head is too close to the camera; use a pose tz below 3")
        inv = (1.0 / depth).astype(np.float32)
        half = 0.5 * self.n - 0.5
        xy = np.empty((len(pts), 2), np.float32)
        xy[:, 0] = half + self.focal * pts[:, 0] * inv
        xy[:, 1] = half - self.focal * (pts[:, 1] - CAMERA_Y) * inv
        return xy, inv

    def _normals(self, verts: np.ndarray) -> np.ndarray:
        """(V, 3) float32 unit vertex normals (area-weighted face normals)."""
        a = verts[self._t0]
        e1, e2 = verts[self._t1] - a, verts[self._t2] - a
        fn = np.empty_like(e1)
        fn[:, 0] = e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1]
        fn[:, 1] = e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2]
        fn[:, 2] = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        vn = self._v_from_f @ fn
        return vn / np.maximum(np.sqrt(np.einsum("ij,ij->i", vn, vn)), 1e-12)[:, None]

    def _raster(
        self, xy: np.ndarray, inv: np.ndarray, keep: np.ndarray | None, zinit: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        """Cull and rasterize projected vertices (xy, inv from ``_project``).

        Returns drawn triangle ids (T,), their back-facing flags (T,) and the
        rasterizer buffers (triangle index into the drawn list, b1, b2, z).
        """
        px, py = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
        t0, t1, t2 = self._t0, self._t1, self._t2
        x0, x1, x2, y0, y1, y2 = px[t0], px[t1], px[t2], py[t0], py[t1], py[t2]
        # Image y points down, so outward (CCW in model space) faces have negative area.
        back = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0) > 0
        m = self.model
        # The mouth cavity, teeth, eyeballs and the inside of the head can only
        # be seen through the openings: skip them outside the openings' boxes.
        maybe = np.flatnonzero(m.tri_hidden | (back & m.tri_interior))
        through = np.zeros(len(back), bool)
        if maybe.size:
            lox = np.minimum(np.minimum(x0[maybe], x1[maybe]), x2[maybe])
            hix = np.maximum(np.maximum(x0[maybe], x1[maybe]), x2[maybe])
            loy = np.minimum(np.minimum(y0[maybe], y1[maybe]), y2[maybe])
            hiy = np.maximum(np.maximum(y0[maybe], y1[maybe]), y2[maybe])
            hit = np.zeros(maybe.size, bool)
            for loop in m.hole_loops:
                ax, ay = px[loop], py[loop]
                hit |= (lox <= ax.max() + 1) & (hix >= ax.min() - 1) & (loy <= ay.max() + 1) & (hiy >= ay.min() - 1)
            through[maybe] = hit
        draw = np.where(back, m.tri_two_sided & (~m.tri_interior | through), ~m.tri_hidden | through)
        if keep is not None:
            draw &= keep
        sel = np.flatnonzero(draw)
        raster = _rasterize(
            (x0[sel], x1[sel], x2[sel]), (y0[sel], y1[sel], y2[sel]), (inv[t0[sel]], inv[t1[sel]], inv[t2[sel]]),
            self.n, zinit,
        )
        return (sel, back[sel]) + raster

    # -- public -----------------------------------------------------------

    def render(self, expression: Any, pose: Any, with_mesh_image: bool = False) -> RenderResult:
        """Shaded frame, landmarks, face mask and depth for one (expression, pose).

        ``with_mesh_image=True`` also fills ``RenderResult.mesh_image`` (the
        same as :meth:`render_mesh_image`, sharing the geometry work).
        """
        verts = self._posed(expression, pose)
        normals = self._normals(verts)
        xy, inv = self._project(verts)
        sel, back, tri_buf, b1, b2, zbuf = self._raster(xy, inv, self._dynamic, self._static_z)
        img = self._static_rgb.copy()
        face = self._shade(normals, sel, back, tri_buf, b1, b2, img)
        return RenderResult(
            image=self._downsample_rgb(img),
            landmarks2d=self._landmarks(xy),
            face_mask=self._downsample(face) >= 0.5,
            depth=self._depth(zbuf),
            mesh_image=self._mesh(normals, xy, inv) if with_mesh_image else None,
        )

    def render_mesh_image(self, expression: Any, pose: Any) -> np.ndarray:
        """(size, size, 3) uint8 appearance-free mesh image on black.

        Grey headlight shading for skin, ears and neck; lips tinted; brows dark
        grey; inner mouth dark red, teeth white, tongue red, sclera light blue,
        iris/pupil dark blue (unshaded, so openings read clearly).  No hair,
        no shoulders, no background.
        """
        verts = self._posed(expression, pose)
        xy, inv = self._project(verts)
        return self._mesh(self._normals(verts), xy, inv)

    def _shade(
        self, normals: np.ndarray, sel: np.ndarray, back: np.ndarray, tri_buf: np.ndarray, b1: np.ndarray,
        b2: np.ndarray, img: np.ndarray,
    ) -> np.ndarray:
        """Write lit colours of covered pixels into img (n*n, 3); return the face coverage (n*n,)."""
        diffuse, spec = self._lighting(normals)
        # Per drawn triangle first (few), then per pixel (many) with one gather each.
        interior = back & self.model.tri_interior[sel]
        albedo = self._albedo[sel]
        albedo[interior] = _INSIDE_MOUTH
        ks = np.where(back, np.float32(0.0), self._spec[sel])
        face_t = (self._face_tri[sel] | interior).astype(np.float32)
        cov = np.flatnonzero(tri_buf >= 0)
        local = tri_buf[cov]
        t = sel[local]
        w1, w2 = b1[cov], b2[cov]
        w0 = 1.0 - w1 - w2
        v0, v1, v2 = self._t0[t], self._t1[t], self._t2[t]
        light = w0 * diffuse[v0] + w1 * diffuse[v1] + w2 * diffuse[v2]
        shine = (w0 * spec[v0] + w1 * spec[v1] + w2 * spec[v2]) * ks[local]
        img[cov] = albedo[local] * light[:, None] + shine[:, None]
        face = np.zeros(self.n * self.n, np.float32)
        face[cov] = face_t[local]
        return face

    def _mesh(self, normals: np.ndarray, xy: np.ndarray, inv: np.ndarray) -> np.ndarray:
        """The mesh image (size, size, 3) uint8 from posed normals and projection."""
        sel, back, tri_buf, b1, b2, _ = self._raster(xy, inv, self._mesh_keep)
        shade = 0.3 + 0.7 * np.clip(normals @ _HEADLIGHT, 0.0, 1.0)
        rgb = self._mesh_rgb[sel]
        rgb[back & self.model.tri_interior[sel]] = _MESH_FIXED[F.MOUTH][0]
        shaded = self._mesh_shaded[sel]
        cov = np.flatnonzero(tri_buf >= 0)
        local = tri_buf[cov]
        t = sel[local]
        w1, w2 = b1[cov], b2[cov]
        s = (1.0 - w1 - w2) * shade[self._t0[t]] + w1 * shade[self._t1[t]] + w2 * shade[self._t2[t]]
        s = np.where(shaded[local], s, np.float32(1.0))
        img = np.zeros((self.n * self.n, 3), np.float32)
        img[cov] = rgb[local] * s[:, None]
        return self._downsample_rgb(img)

    # -- helpers ------------------------------------------------------------

    def _lighting(self, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-vertex diffuse factor and specular intensity (V,) float32."""
        dots = normals @ _LIGHTS  # (V, 3): key, fill, half-vector
        if self._abs_idx.size:
            dots[self._abs_idx] = np.abs(dots[self._abs_idx])
        np.maximum(dots, 0.0, out=dots)
        diffuse = self._ao * (_AMBIENT + _DIFFUSE * dots[:, 0] + _FILL_K * dots[:, 1])
        spec = self._ao * dots[:, 2] ** _SHININESS
        return diffuse, spec

    def _landmarks(self, xy: np.ndarray) -> np.ndarray:
        """(68, 2) output-pixel landmarks from raster-pixel vertex positions."""
        ss = self.supersample
        return ((xy[self.model.landmark_index] + 0.5) / ss - 0.5).astype(np.float32)

    def _box(self, flat: np.ndarray, op: Any = np.add) -> np.ndarray:
        """Combine each ss x ss block of an (n*n, ...) raster with ``op`` (strided slices: fast)."""
        ss = self.supersample
        img = flat.reshape((self.n, self.n) + flat.shape[1:])
        out = img[::ss, ::ss].copy()
        for i in range(ss):
            for j in range(ss):
                if i or j:
                    op(out, img[i::ss, j::ss], out=out)
        return out

    def _downsample(self, flat: np.ndarray) -> np.ndarray:
        return self._box(flat) * (1.0 / self.supersample ** 2)

    def _downsample_rgb(self, flat: np.ndarray) -> np.ndarray:
        img = self._box(flat) * (255.0 / self.supersample ** 2)
        return (np.clip(img, 0.0, 255.0) + 0.5).astype(np.uint8)

    def _depth(self, zbuf: np.ndarray) -> np.ndarray:
        near = self._box(zbuf, np.maximum)
        with np.errstate(divide="ignore"):
            return np.where(near > 0, 1.0 / near, np.inf).astype(np.float32)


def contact_sheet(images: Sequence[np.ndarray], rows: int, cols: int, pad: int = 2) -> np.ndarray:
    """Tile equally sized (H, W, 3) uint8 images row-major into one image.

    Missing cells stay white; extra images are an error.
    """
    if len(images) == 0 or len(images) > rows * cols:
        raise VastbenchError(f"contact_sheet got {len(images)} images for a {rows}x{cols} grid; give 1..{rows * cols}")
    h, w = images[0].shape[:2]
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        if im.shape[:2] != (h, w):
            raise VastbenchError(f"contact_sheet image {i} has shape {im.shape}; all images must be {h}x{w}")
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        sheet[y:y + h, x:x + w] = im[..., :3] if im.ndim == 3 else im[..., None]
    return sheet
