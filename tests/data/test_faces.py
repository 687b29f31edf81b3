"""Alignment geometry on synthetic landmarks, paste_back, and detection on a few real shared photos."""
import dataclasses
import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image

from tfunmask.data import faces
from tfunmask.data.images import list_images, read_image

SIZE = 64


def template_landmarks() -> np.ndarray:
    """A frontal face in dlib's 68-point order: eye centres 40 px apart at y=85, mouth 40 px below."""
    jaw_angle = np.linspace(np.pi, 0, 17)
    jaw = np.stack([100 + 45 * np.cos(jaw_angle), 90 + 60 * np.sin(jaw_angle)], axis=1)
    brows = np.stack([np.r_[np.linspace(62, 92, 5), np.linspace(108, 138, 5)], np.full(10, 72.0)], axis=1)
    bridge = np.stack([np.full(4, 100.0), np.linspace(82, 106, 4)], axis=1)
    nostrils = np.stack([np.linspace(90, 110, 5), np.full(5, 112.0)], axis=1)
    eye_angle = np.linspace(np.pi, -np.pi, 6, endpoint=False)
    ring = np.stack([-8 * np.cos(eye_angle), 3 * np.sin(eye_angle)], axis=1)
    mouth_angle = np.linspace(np.pi, -np.pi, 12, endpoint=False)
    outer = np.stack([100 - 18 * np.cos(mouth_angle), 125 + 7 * np.sin(mouth_angle)], axis=1)
    inner_angle = np.linspace(np.pi, -np.pi, 8, endpoint=False)
    inner = np.stack([100 - 12 * np.cos(inner_angle), 125 + 3 * np.sin(inner_angle)], axis=1)
    points = np.concatenate([jaw, brows, bridge, nostrils, ring + (80, 85), ring + (120, 85), outer, inner])
    return points.astype(np.float32)


def moved(points: np.ndarray, angle_degrees=0.0, zoom=1.0, shift=(0.0, 0.0), centre=(100, 100)) -> np.ndarray:
    """`points` rotated by `angle_degrees` and scaled by `zoom` about `centre`, then shifted."""
    matrix = cv2.getRotationMatrix2D(centre, angle_degrees, zoom)
    return (points @ matrix[:, :2].T + matrix[:, 2] + shift).astype(np.float32)


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points[36:42].mean(axis=0), points[42:48].mean(axis=0)


def smooth_image(height=240, width=260) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [128 + 100 * np.sin(x / 23.0), 128 + 100 * np.cos(y / 31.0), 128 + 60 * np.sin((x + y) / 41.0)]
    return np.clip(np.stack(channels, axis=2), 0, 255).astype(np.uint8)


# --- alignment ----------------------------------------------------------------------------------

@pytest.mark.parametrize("angle, zoom, shift", [(0, 1, (0, 0)), (25, 2.5, (40, -10)), (-40, 0.4, (-30, 7))])
def test_alignment_levels_the_eyes_at_fixed_points(angle, zoom, shift):
    found = faces.alignment(moved(template_landmarks(), angle, zoom, shift), SIZE)
    right_eye, left_eye = eye_centres(found.to_crop(moved(template_landmarks(), angle, zoom, shift)))
    eye_y = faces.EYE_HEIGHT * SIZE - 0.5
    half_gap = faces.EYE_DISTANCE * SIZE / 2
    np.testing.assert_allclose(right_eye, [SIZE / 2 - 0.5 - half_gap, eye_y], atol=1e-3)
    np.testing.assert_allclose(left_eye, [SIZE / 2 - 0.5 + half_gap, eye_y], atol=1e-3)


def test_turned_head_is_scaled_by_eye_to_mouth_and_keeps_the_chin():
    turned = template_landmarks() * (0.5, 1.0)  # eyes half as far apart, mouth as far below
    crop_points = faces.alignment(turned, SIZE).to_crop(turned)
    right_eye, left_eye = eye_centres(crop_points)
    eye_mid, mouth = (right_eye + left_eye) / 2, crop_points[[48, 54]].mean(axis=0)
    assert right_eye[1] == pytest.approx(left_eye[1], abs=1e-3)
    assert np.hypot(*(mouth - eye_mid)) == pytest.approx(SIZE * faces.EYE_MOUTH_DISTANCE, rel=1e-4)
    assert 0 < crop_points[:, 1].min() and crop_points[:, 1].max() < 0.95 * SIZE


def test_whole_face_is_inside_the_crop():
    crop_points = faces.alignment(template_landmarks(), SIZE).to_crop(template_landmarks())
    assert crop_points.min() > 0.05 * SIZE and crop_points.max() < 0.95 * SIZE


def test_to_crop_to_image_round_trip():
    points = moved(template_landmarks(), 17, 1.7, (5, 9))
    found = faces.alignment(points, 128)
    np.testing.assert_allclose(found.to_image(found.to_crop(points)), points, atol=1e-3)
    square = np.vstack([found.inverse(), [0, 0, 1]]) @ np.vstack([found.matrix, [0, 0, 1]])
    np.testing.assert_allclose(square, np.eye(3), atol=1e-9)
    assert found.matrix.shape == (2, 3) and found.matrix.dtype == np.float64


def test_alignment_rejects_bad_landmarks():
    with pytest.raises(ValueError, match="68, 2"):
        faces.alignment(np.zeros((5, 2)), SIZE)
    with pytest.raises(ValueError, match="degenerate"):
        faces.alignment(np.zeros((68, 2)), SIZE)


@pytest.mark.parametrize("angle, zoom", [(20, 0.4), (-10, 4.0)])  # zoom 4: the shrink-first path
def test_align_puts_the_eye_pixels_at_the_eye_positions(angle, zoom):
    points = moved(template_landmarks(), angle, zoom, centre=(0, 0)) + (150 * zoom, 120 * zoom)
    image = np.full((int(260 * zoom), int(300 * zoom), 3), 128, np.uint8)
    right_eye, left_eye = eye_centres(points)
    radius = max(3, int(6 * zoom))
    cv2.circle(image, tuple(int(v) for v in np.rint(right_eye)), radius, (255, 0, 0), -1)
    cv2.circle(image, tuple(int(v) for v in np.rint(left_eye)), radius, (0, 0, 255), -1)
    crop, found = faces.align(image, points, SIZE)
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    crop_right, crop_left = (np.rint(eye).astype(int) for eye in eye_centres(found.to_crop(points)))
    assert tuple(crop[crop_right[1], crop_right[0]]) == (255, 0, 0)
    assert tuple(crop[crop_left[1], crop_left[0]]) == (0, 0, 255)


def test_shrinking_first_matches_the_direct_warp_on_a_smooth_image():
    crop, found = faces.align(smooth_image(), template_landmarks(), SIZE)
    assert found.scale < 1
    direct = cv2.warpAffine(smooth_image(), found.matrix, (SIZE, SIZE), borderMode=cv2.BORDER_REPLICATE)
    assert np.abs(crop.astype(int) - direct).max() <= 1


def test_crop_keeps_the_photo_pixels_and_smooths_what_lies_outside_the_photo():
    stripes = np.where(np.arange(200) % 8 < 4, 40, 220).astype(np.uint8)  # sharp vertical stripes
    image, points = np.tile(stripes[None, :, None], (140, 1, 3)), template_landmarks()  # no chin
    crop, found = faces.align(image, points, 160)
    assert found.scale == pytest.approx(1.0)
    direct = cv2.warpAffine(image, found.matrix, (160, 160), borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(np.ones(image.shape[:2], np.float32), found.matrix, (160, 160)) == 1.0
    assert (crop[inside] == direct[inside]).all() and not inside[-1].any()
    assert crop[-1].astype(float).std(axis=0).mean() < direct[-1].astype(float).std(axis=0).mean() / 2


def test_paste_back_of_the_unchanged_crop_reproduces_the_face_region():
    image, points = smooth_image(), template_landmarks()
    crop, found = faces.align(image, points, 128)
    pasted = faces.paste_back(image, crop, found)
    left, top = np.floor(points.min(axis=0)).astype(int)
    right, bottom = np.ceil(points.max(axis=0)).astype(int)
    difference = np.abs(pasted.astype(int) - image)[top:bottom, left:right]
    assert difference.mean() < 1 and difference.max() <= 4
    outside = cv2.warpAffine(np.ones((128, 128), np.uint8), found.inverse(), image.shape[1::-1]) == 0
    assert (pasted[outside] == image[outside]).all()


def test_paste_back_of_a_region_replaces_only_the_region():
    image, points = smooth_image(), template_landmarks()
    _, found = faces.align(image, points, SIZE)
    edited = np.full((SIZE, SIZE, 3), (255, 0, 255), np.uint8)
    region = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(region, (SIZE // 2, SIZE // 2), SIZE // 6, 255, -1)
    pasted = faces.paste_back(image, edited, found, region_mask=region, feather=0.05)
    centre_x, centre_y = np.rint(found.to_image([[SIZE / 2, SIZE / 2]])[0]).astype(int)
    assert tuple(pasted[centre_y, centre_x]) == (255, 0, 255)
    far_x, far_y = np.rint(found.to_image([[SIZE * 0.1, SIZE * 0.1]])[0]).astype(int)
    assert (pasted[far_y, far_x] == image[far_y, far_x]).all()


def test_paste_back_checks_the_crop_size():
    image = smooth_image()
    _, found = faces.align(image, template_landmarks(), SIZE)
    with pytest.raises(ValueError, match="crop is"):
        faces.paste_back(image, np.zeros((32, 32, 3), np.uint8), found)


# --- detection ----------------------------------------------------------------------------------

def test_no_face_in_a_synthetic_image():
    image = smooth_image(120, 160)
    cv2.rectangle(image, (20, 30), (70, 90), (30, 160, 40), -1)
    cv2.circle(image, (120, 60), 25, (200, 200, 40), -1)
    assert faces.find(image) == []


def test_find_rejects_non_rgb_input():
    with pytest.raises(ValueError, match="uint8 RGB"):
        faces.find(np.zeros((64, 64), np.uint8))


def _find_in_child(image):
    return faces.find(image)


def test_cnn_in_a_child_forked_after_the_parent_ran_it_raises_instead_of_hanging():
    image = smooth_image(96, 96)
    assert faces.find(image) == []  # HOG finds nothing, so the CNN runs here
    with multiprocessing.get_context("fork").Pool(1) as pool:
        with pytest.raises(RuntimeError, match="spawn"):
            pool.apply_async(_find_in_child, (image,)).get(timeout=60)


def portraits(shared_faces, count: int) -> list[np.ndarray]:
    """The first `count` loose portraits (shorter side >= 280 px) of the shared unmasked photos."""
    chosen = []
    for path in list_images(shared_faces / "unmasked"):
        if min(Image.open(path).size) >= 280:
            chosen.append(read_image(path))
        if len(chosen) == count:
            return chosen
    pytest.skip("not enough loose portraits in the shared photos")


def test_landmarks_on_real_faces(shared_faces):
    for image in portraits(shared_faces, 4):
        found = faces.find(image)
        assert found, "no face found in a loose portrait"
        face = found[0]
        height, width = image.shape[:2]
        assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
        assert (face.landmarks >= 0).all() and (face.landmarks < (width, height)).all()
        right_eye, left_eye = eye_centres(face.landmarks)
        nose_tip, mouth, chin = face.landmarks[30], face.landmarks[48:68].mean(axis=0), face.landmarks[8]
        assert right_eye[0] < nose_tip[0] < left_eye[0]
        assert max(right_eye[1], left_eye[1]) < nose_tip[1] < mouth[1] < chin[1]
        left, top, right, bottom = face.box
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        assert face.detector == "blazeface" and 0.5 <= face.score <= 1


def test_several_faces_largest_first(shared_faces):
    first, second = portraits(shared_faces, 2)
    height = min(first.shape[0], second.shape[0])
    smaller = cv2.resize(second, (second.shape[1] * height // second.shape[0] * 2 // 3, height * 2 // 3))
    canvas = np.zeros((height, first.shape[1] + smaller.shape[1], 3), np.uint8)
    canvas[:, : first.shape[1]] = first[:height]
    canvas[: smaller.shape[0], first.shape[1]:] = smaller
    found = faces.find(canvas)
    assert len(found) == 2
    assert found[0].box[2] <= first.shape[1] <= found[1].box[0]
    assert faces.find(canvas, max_faces=1)[0].box == found[0].box


def test_threads_sharing_the_models_get_the_serial_results(shared_faces):
    photos = portraits(shared_faces, 4) * 4
    boxes = [[face.box for face in faces.find(photo)] for photo in photos]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda photo: [face.box for face in faces.find(photo)], photos)) == boxes


def test_cnn_fallback_finds_a_face_in_a_tight_crop(shared_faces):
    for path in list_images(shared_faces / "unmasked")[:20]:
        image = read_image(path)
        if not faces.find(image, use_cnn=False, detector="dlib"):
            break
    else:
        pytest.skip("padded HOG found a face in every photo tried")
    found = faces.find(image, detector="dlib")
    assert [face.detector for face in found] == ["cnn"]
    assert np.isfinite(found[0].landmarks).all() and 0 < found[0].score


def test_faces_are_frozen(shared_faces):
    face = faces.find(portraits(shared_faces, 1)[0])[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        face.detector = "cnn"
    with pytest.raises(ValueError):
        face.landmarks[0, 0] = 1.0


# --- the cascade --------------------------------------------------------------------------------

def masked_photos(shared_faces, count: int) -> list[np.ndarray]:
    return [read_image(path) for path in list_images(shared_faces / "masked_real")[:count]]


def test_output_contract_on_masked_and_unmasked_photos(shared_faces):
    """Boxes inside the photo, eyes and nose inside the box, largest box first, scores in range."""
    seen = 0
    for image in masked_photos(shared_faces, 12) + portraits(shared_faces, 3):
        found = faces.find(image)
        height, width = image.shape[:2]
        areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in found]
        assert areas == sorted(areas, reverse=True)
        for face in found:
            left, top, right, bottom = face.box
            assert 0 <= left < right <= width and 0 <= top < bottom <= height
            assert right - left >= faces.MIN_FACE
            slack = 0.15 * (right - left)  # a fitted point may sit on the box's edge
            for point in (*eye_centres(face.landmarks), face.landmarks[30]):
                assert left - slack <= point[0] <= right + slack and top - slack <= point[1] <= bottom + slack
            assert face.detector in ("blazeface", "hog", "cnn") and np.isfinite(face.landmarks).all()
            seen += 1
    assert seen >= 12


def test_masked_face_that_padded_hog_misses_is_found(shared_faces):
    for image in masked_photos(shared_faces, 30):
        if not faces.find(image, use_cnn=False, detector="dlib"):
            break
    else:
        pytest.skip("padded HOG found a face in every masked photo tried")
    found = faces.find(image, use_cnn=False)
    assert found and found[0].detector == "blazeface"
    nose = faces.alignment(found[0].landmarks, 64).to_crop(found[0].landmarks[30:31])[0]
    assert 0.3 * 64 < nose[0] < 0.7 * 64 and 0.42 * 64 < nose[1] < 0.8 * 64  # aligned: nose below the eyes


@pytest.mark.parametrize("kind", ["noise", "checkerboard"])
def test_non_faces_are_not_faces(kind):
    rng = np.random.default_rng(0)
    if kind == "noise":
        image = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    else:
        image = np.kron((np.indices((8, 8)).sum(0) % 2) * 255, np.ones((25, 25))).astype(np.uint8)
        image = np.repeat(image[..., None], 3, axis=2)
    assert faces.find(image) == []


def test_face_geometry_check():
    points = template_landmarks()
    assert faces._is_face_shape(points)
    assert faces._is_face_shape(moved(points, angle_degrees=30))  # in the eye line's frame: tilt is fine
    squashed = points.copy()
    squashed[27:36] = points[27:36] * [1, 0] + [0, 85]  # the nose on the eye line
    assert not faces._is_face_shape(squashed)
    swapped = points.copy()
    swapped[48:68], swapped[27:36] = points[27:36].mean(0), points[48:68].mean(0)  # mouth above the nose
    assert not faces._is_face_shape(swapped)
    assert not faces._is_face_geometry((80, 85), (120, 85), (100, 112), (190, 125))  # mouth far aside


class _Fake:
    """Stands in for a detector model: records calls and returns nothing."""

    def __init__(self):
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return []

    def run(self, *args):  # dlib's HOG interface: (rects, scores, kinds)
        self.calls += 1
        return [], [], []


def test_fallback_order(shared_faces, monkeypatch):
    """cascade: BlazeFace; HOG only where BlazeFace finds nothing; the CNN only where HOG also
    finds nothing (and use_cnn); "dlib" never runs BlazeFace."""
    image = portraits(shared_faces, 1)[0]
    assert faces.find(image)[0].detector == "blazeface"
    blazeface = _Fake()
    monkeypatch.setitem(faces._models, "blazeface", blazeface)
    assert faces.find(image)[0].detector == "hog"
    hog = _Fake()
    monkeypatch.setitem(faces._models, "hog", hog)
    assert faces.find(image, use_cnn=False) == []
    assert faces.find(image)[0].detector == "cnn"
    assert (blazeface.calls, hog.calls) == (3, 2)
    faces.find(image, detector="dlib")
    assert blazeface.calls == 3 and hog.calls == 3
    with pytest.raises(ValueError, match="unknown face detector"):
        faces.find(image, detector="yolo")


def test_an_ear_beside_a_face_is_not_a_second_face(shared_faces):
    """BlazeFace scores this photo's ear 0.74 (the face 0.76): only the face is kept."""
    path = shared_faces / "masked_real" / "64460a315186.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not in the shared photos")
    found = faces.find(read_image(path))
    assert len(found) == 1 and found[0].box[2] - found[0].box[0] > 100
