"""SynthTalk parametric face and its CPU renderer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vastbench.data.synthtalk import face as F
from vastbench.data.synthtalk.render import FaceRenderer, RenderResult, contact_sheet, pose_matrix
from vastbench.errors import VastbenchError

SIZE = 96
NEUTRAL_POSE = np.zeros(F.N_POSE)


def expr(**weights: float) -> np.ndarray:
    w = np.zeros(F.N_EXPRESSIONS)
    for name, value in weights.items():
        w[F.EXPRESSION_NAMES.index(name)] = value
    return w


@pytest.fixture(scope="module")
def people() -> list[F.Identity]:
    rng = np.random.default_rng(1234)
    return [F.Identity()] + [F.sample_identity(rng) for _ in range(4)]


@pytest.fixture(scope="module")
def renderer() -> FaceRenderer:
    return FaceRenderer(F.Identity(), SIZE, 2)


def box_of(points: np.ndarray, margin: int, size: int) -> tuple[slice, slice]:
    lo = np.floor(points.min(axis=0)).astype(int) - margin
    hi = np.ceil(points.max(axis=0)).astype(int) + margin
    lo, hi = np.clip(lo, 0, size), np.clip(hi, 0, size)
    return slice(lo[1], hi[1]), slice(lo[0], hi[0])


def inner_mouth_pixels(mesh_img: np.ndarray) -> int:
    """Mesh-image pixels of the inner mouth (dark red) or tongue (red); teeth are white."""
    img = mesh_img.astype(int)
    red = (img[..., 0] > 60) & (img[..., 1] < 0.45 * img[..., 0]) & (img[..., 2] < 0.45 * img[..., 0])
    return int(np.sum(red))


# -- constants and identity -----------------------------------------------------


def test_constants_are_consistent():
    assert F.N_EXPRESSIONS == 11 and F.EXPRESSION_NAMES[F.JAW_OPEN] == "jaw_open"
    assert F.EXPRESSION_NAMES[F.CHEEK] == "cheek"
    assert sorted(F.MOUTH_EXPRESSIONS + F.UPPER_EXPRESSIONS) == list(range(F.N_EXPRESSIONS))
    assert F.POSE_NAMES == ("pitch", "yaw", "roll", "tx", "ty", "tz")
    assert len(F.LANDMARK_NAMES) == F.N_LANDMARKS == 68
    covered = sorted(i for g in ("jaw", "brows", "nose", "eyes", "mouth") for i in F.LANDMARK_GROUPS[g])
    assert covered == list(range(68))


def test_identity_round_trips(people):
    for idt in people:
        assert F.Identity.from_vector(idt.to_vector()) == idt
        assert F.Identity.from_dict(json.loads(json.dumps(idt.to_dict()))) == idt
        assert idt.to_vector().shape == (len(F.IDENTITY_VECTOR_NAMES),)


def test_sample_identity_is_deterministic_and_varied():
    a = [F.sample_identity(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(8)
    many = [F.sample_identity(rng) for _ in range(30)]
    assert len({i.hair_style for i in many}) >= 4
    assert len({i.skin_rgb for i in many}) == 30


def test_bad_identity_values_are_user_errors():
    with pytest.raises(VastbenchError, match="head_width"):
        F.Identity(head_width=3.0)
    with pytest.raises(VastbenchError, match="skin_rgb"):
        F.Identity(skin_rgb=(1.2, 0.5, 0.5))
    with pytest.raises(VastbenchError, match="hair_style"):
        F.Identity(hair_style="mohawk")
    with pytest.raises(VastbenchError, match="unknown identity key"):
        F.Identity.from_dict({"nose_size": 1.0})
    with pytest.raises(VastbenchError, match="identity vector"):
        F.Identity.from_vector(np.zeros(3))


# -- mesh model -----------------------------------------------------------------


def test_expression_model_is_linear():
    model = F.face_model(F.Identity())
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 0.7, F.N_EXPRESSIONS), rng.uniform(0, 0.7, F.N_EXPRESSIONS)
    v0 = model.vertices(np.zeros(F.N_EXPRESSIONS)).astype(np.float64)
    va, vb = model.vertices(a).astype(np.float64), model.vertices(b).astype(np.float64)
    vab = model.vertices(a + b).astype(np.float64)
    np.testing.assert_allclose(vab - v0, (va - v0) + (vb - v0), atol=1e-5)
    assert v0.shape == (model.n_vertices, 3) and model.triangles.shape == (model.n_triangles, 3)
    lm = F.landmarks3d(F.Identity(), a)
    np.testing.assert_allclose(lm, va[model.landmark_index], atol=1e-5)
    assert lm.shape == (68, 3)


def test_jaw_open_parts_the_lips_in_3d():
    idt = F.Identity()
    gap = [np.subtract(*F.landmarks3d(idt, expr(jaw_open=j))[[F.LM_UPPER_LIP_INNER, F.LM_LOWER_LIP_INNER], 1])
           for j in (0.0, 0.5, 1.0)]
    assert abs(gap[0]) < 1e-6 and 0.03 < gap[1] < gap[2]


# -- renderer -----------------------------------------------------------------------


def test_render_shapes_and_dtypes(renderer):
    res = renderer.render(np.zeros(F.N_EXPRESSIONS), NEUTRAL_POSE)
    assert isinstance(res, RenderResult)
    assert res.image.shape == (SIZE, SIZE, 3) and res.image.dtype == np.uint8
    assert res.landmarks2d.shape == (68, 2) and res.landmarks2d.dtype == np.float32
    assert res.face_mask.shape == (SIZE, SIZE) and res.face_mask.dtype == bool
    assert res.depth.shape == (SIZE, SIZE) and res.depth.dtype == np.float32
    assert np.isinf(res.depth[0, 0]) and np.isfinite(res.depth[res.face_mask]).all()
    assert res.mesh_image is None
    mesh = renderer.render_mesh_image(np.zeros(F.N_EXPRESSIONS), NEUTRAL_POSE)
    assert mesh.shape == (SIZE, SIZE, 3) and mesh.dtype == np.uint8
    assert np.all(mesh[0, 0] == 0) and mesh.max() > 150
    w, pose = expr(jaw_open=0.6, blink_left=0.5), np.array([0.1, 0.2, 0.0, 0.0, 0.0, 0.0])
    both = renderer.render(w, pose, with_mesh_image=True)
    assert np.array_equal(both.mesh_image, renderer.render_mesh_image(w, pose))
    assert np.array_equal(both.image, renderer.render(w, pose).image)


def test_render_is_deterministic(people):
    w = expr(jaw_open=0.4, smile_left=0.3, blink_right=0.5)
    pose = np.array([0.05, -0.2, 0.03, 0.02, -0.01, 0.0])
    a = FaceRenderer(people[1], 64, 2).render(w, pose)
    b = FaceRenderer(people[1], 64, 2).render(w, pose)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.landmarks2d, b.landmarks2d)
    assert np.array_equal(a.face_mask, b.face_mask)


def test_jaw_open_grows_the_dark_inner_mouth(people):
    r = FaceRenderer(F.Identity(), SIZE, 2)
    lm = r.render(np.zeros(F.N_EXPRESSIONS), NEUTRAL_POSE).landmarks2d
    rows, cols = box_of(lm[list(F.LANDMARK_GROUPS["mouth"])], 10, SIZE)
    dark = []
    for j in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        img = r.render(expr(jaw_open=j), NEUTRAL_POSE).image[rows, cols].astype(float)
        dark.append(int(np.sum(img.mean(axis=-1) < 70)))
    assert all(b > a for a, b in zip(dark, dark[1:])), dark
    assert dark[-1] > 60 and dark[-1] > 4 * dark[0], dark
    for idt in people:  # appearance-free check for every skin tone
        rm = FaceRenderer(idt, SIZE, 2)
        counts = [inner_mouth_pixels(rm.render_mesh_image(expr(jaw_open=j), NEUTRAL_POSE)) for j in (0, 0.5, 0.75, 1)]
        assert counts[0] == 0 and counts[-1] > 40 and all(b > a for a, b in zip(counts, counts[1:])), counts


def test_blink_left_closes_only_the_left_eye(renderer):
    lm = renderer.render(np.zeros(F.N_EXPRESSIONS), NEUTRAL_POSE).landmarks2d
    left = box_of(lm[list(F.LANDMARK_GROUPS["eye_left"])], 2, SIZE)
    right = box_of(lm[list(F.LANDMARK_GROUPS["eye_right"])], 2, SIZE)
    # Subject's left eye is on the image right.
    assert lm[list(F.LANDMARK_GROUPS["eye_left"]), 0].mean() > lm[list(F.LANDMARK_GROUPS["eye_right"]), 0].mean()

    def eye_pixels(img: np.ndarray, box: tuple[slice, slice]) -> int:
        # Sclera and iris are the only bluish parts of the mesh image.
        part = img[box].astype(int)
        return int(np.sum(part[..., 2] > part[..., 0] + 40))

    open_mesh = renderer.render_mesh_image(np.zeros(F.N_EXPRESSIONS), NEUTRAL_POSE)
    shut_mesh = renderer.render_mesh_image(expr(blink_left=1.0), NEUTRAL_POSE)
    assert eye_pixels(shut_mesh, left) < 0.1 * eye_pixels(open_mesh, left)
    assert eye_pixels(shut_mesh, right) == eye_pixels(open_mesh, right) > 20
    a = renderer.render(np.zeros(F.N_EXPRESSIONS), NEUTRAL_POSE).image.astype(int)
    b = renderer.render(expr(blink_left=1.0), NEUTRAL_POSE).image.astype(int)
    assert np.abs(a[left] - b[left]).mean() > 10.0
    assert np.array_equal(a[right], b[right])


def test_mouth_corners_follow_stretch_smile_and_round(renderer):
    def width(w: np.ndarray) -> float:
        lm = renderer.render(w, NEUTRAL_POSE).landmarks2d
        return float(np.linalg.norm(lm[F.LM_MOUTH_CORNER_LEFT] - lm[F.LM_MOUTH_CORNER_RIGHT]))

    base = width(np.zeros(F.N_EXPRESSIONS))
    assert width(expr(lip_stretch=1.0)) > base * 1.1
    assert width(expr(smile_left=1.0, smile_right=1.0)) > base * 1.1
    assert width(expr(smile_left=1.0)) > base * 1.03
    assert width(expr(lip_round=1.0)) < base * 0.85
    lm0 = renderer.render(np.zeros(F.N_EXPRESSIONS), NEUTRAL_POSE).landmarks2d
    lm1 = renderer.render(expr(smile_left=1.0), NEUTRAL_POSE).landmarks2d
    assert lm1[F.LM_MOUTH_CORNER_LEFT, 1] < lm0[F.LM_MOUTH_CORNER_LEFT, 1] - 1.0  # corner rises (y down)
    assert abs(lm1[F.LM_MOUTH_CORNER_RIGHT, 1] - lm0[F.LM_MOUTH_CORNER_RIGHT, 1]) < 0.5


def test_brows_and_pose_move_landmarks(renderer):
    lm0 = renderer.render(np.zeros(F.N_EXPRESSIONS), NEUTRAL_POSE).landmarks2d
    up = renderer.render(expr(brow_raise=1.0), NEUTRAL_POSE).landmarks2d
    assert np.all(up[list(F.LANDMARK_GROUPS["brows"]), 1] < lm0[list(F.LANDMARK_GROUPS["brows"]), 1] - 0.5)
    nose = [renderer.render(np.zeros(F.N_EXPRESSIONS), np.array([0, yaw, 0, 0, 0, 0])).landmarks2d[F.LM_NOSE_TIP]
            for yaw in (-0.3, 0.0, 0.3)]
    assert nose[0][0] < nose[1][0] - 3 and nose[2][0] > nose[1][0] + 3
    assert abs(nose[2][1] - nose[1][1]) < 2
    down = renderer.render(np.zeros(F.N_EXPRESSIONS), np.array([0.3, 0, 0, 0, 0, 0])).landmarks2d[F.LM_NOSE_TIP]
    assert down[1] > nose[1][1] + 2
    rot, _ = pose_matrix(np.array([0.1, 0.2, 0.3, 0, 0, 0]))
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)


def test_landmarks_lie_inside_the_face_mask(people):
    for idt in people:
        res = FaceRenderer(idt, SIZE, 2).render(np.zeros(F.N_EXPRESSIONS), NEUTRAL_POSE)
        xy = np.round(res.landmarks2d).astype(int)
        inside = res.face_mask[xy[:, 1], xy[:, 0]]
        # Long hair may hide the upper jaw contour; everything else must be on the face.
        assert inside[17:].all(), np.flatnonzero(~inside)
        if idt.hair_style not in ("long", "bob"):
            assert inside.all(), np.flatnonzero(~inside)


def test_face_mask_covers_a_plausible_area(people):
    for idt in people:
        res = FaceRenderer(idt, SIZE, 2).render(expr(jaw_open=0.5), np.array([0, 0.2, 0, 0, 0, 0]))
        frac = res.face_mask.mean()
        assert 0.08 < frac < 0.35, frac
        assert not res.face_mask[:, :5].any() and not res.face_mask[-5:].any()


def test_identities_look_clearly_different(people):
    imgs = [FaceRenderer(p, 64, 2).render(np.zeros(F.N_EXPRESSIONS), NEUTRAL_POSE).image.astype(float) for p in people]
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            assert np.abs(imgs[i] - imgs[j]).mean() > 8.0, (i, j)


def test_bad_inputs_are_user_errors(renderer):
    with pytest.raises(VastbenchError, match="expression has shape"):
        renderer.render(np.zeros(F.N_EXPRESSIONS - 1), NEUTRAL_POSE)
    bad = np.zeros(F.N_EXPRESSIONS)
    bad[3] = np.nan
    with pytest.raises(VastbenchError, match="NaN"):
        renderer.render(bad, NEUTRAL_POSE)
    with pytest.raises(VastbenchError, match="pose"):
        renderer.render(np.zeros(F.N_EXPRESSIONS), np.array([0, np.inf, 0, 0, 0, 0]))
    with pytest.raises(VastbenchError, match="pose has shape"):
        renderer.render_mesh_image(np.zeros(F.N_EXPRESSIONS), np.zeros(3))
    for size in (31, 1025, 64.0, True):
        with pytest.raises(VastbenchError, match="size"):
            FaceRenderer(F.Identity(), size)
    with pytest.raises(VastbenchError, match="supersample"):
        FaceRenderer(F.Identity(), 64, supersample=0)
    with pytest.raises(VastbenchError, match="expected an Identity"):
        F.face_model("alice")  # type: ignore[arg-type]


def test_expression_weights_are_clipped(renderer):
    a = renderer.render(expr(jaw_open=1.5), NEUTRAL_POSE).image
    b = renderer.render(expr(jaw_open=9.0), NEUTRAL_POSE).image
    assert np.array_equal(a, b)


def test_contact_sheet_tiles_images():
    ims = [np.full((10, 12, 3), i * 40, np.uint8) for i in range(5)]
    sheet = contact_sheet(ims, 2, 3, pad=1)
    assert sheet.shape == (2 * 11 + 1, 3 * 13 + 1, 3)
    assert sheet[1, 1, 0] == 0 and sheet[12, 1, 0] == 120 and sheet[-2, -2, 0] == 255
    with pytest.raises(VastbenchError, match="contact_sheet"):
        contact_sheet(ims, 1, 2)
