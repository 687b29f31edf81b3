"""Find faces and their 68 landmarks, align them to square crops, and paste crops back.

Detection is a cascade (`detector="cascade"`, the default), because no one detector finds both
masked and small faces:

1. BlazeFace (`blazeface`), which finds masked faces that dlib's detectors, trained on uncovered
   faces, miss (on the shared real masked photos ~92 % of photos against ~58 %), in ~10 ms;
2. where it finds no plausible face: dlib's HOG frontal detector on the photo padded by 30 % of
   its longer side (tight crops, chin or forehead cut off, leave HOG no margin otherwise);
3. where HOG finds nothing: dlib's CNN (MMOD) detector on a less padded, downscaled copy, which
   finds small faces in crowds that BlazeFace's short-range model misses.

`detector="dlib"` is steps 2-3 alone (the finder before BlazeFace), `"blazeface"` step 1 alone.
Landmarks always come from dlib's 68-point shape predictor, run on the detector's box in the
padded full-resolution photo, so points of a cut-off chin are still predicted (they may lie
outside the photo); alignment uses the eyes and the mouth corners, and the predictor places the
eyes of a masked face as well as an uncovered one (on BlazeFace's box: eyes within a median 0.01
eye distance of those from HOG's box, on unmasked photos).

dlib's predictor, trained on uncovered frontal faces, misplaces the eyes of some masked and
turned faces (by 0.4-0.8 eye distances on 10 of 54 masked photos checked by eye, where BlazeFace's
eye keypoints were right): when its eye centres lie further than EYE_AGREEMENT from BlazeFace's,
the 68 points are moved by the similarity transform that puts their eye centres on BlazeFace's
(`Face.refitted`), so alignment follows the eyes BlazeFace found.

False faces are rejected, whatever found them: a box narrower than MIN_FACE pixels; a face whose
geometry (BlazeFace's keypoints, and the 68 points) is not a human face's: nose and mouth below
the eye line, in that order, at distances proportional to the eye distance; and beside
BlazeFace's best face, any other scoring below EXTRA_FACE_SCORE (false boxes on stage lights, a
flag, an ear were seen at 0.51-0.54, each below the real face's score) or whose 68-point eyes
disagree with BlazeFace's (an ear beside a face scored 0.74; dlib's fit put its eyes elsewhere).

The models are loaded once per process, lazily, under a lock, and each detector serves one thread
at a time (dlib's detectors are not reentrant); worker pools should use the "spawn" start method,
since dlib's CNN hangs in a child forked after its parent ran it (`find` raises there).

Alignment is CelebA/FFHQ-like: the rotation levels the eye line, the eye midpoint lands at a
fixed point (centred, 42 % down) and the scale puts the eye centres a quarter of the crop apart,
FFHQ's framing, unless the eye-to-mouth distance would then exceed 1/3.6 of the crop (FFHQ's rule
for turned or tilted heads), in which case that distance sets the scale. FFHQ centres the crop a
tenth of the eye-to-mouth vector below the eyes; the fixed point sits lower on the face so that on
the shared photos the chin lies above 92 % of the crop height for 99 % of faces, leaving room for
the mask below it, and the forehead stays inside. A similarity transform only (no shear or
stretch), so `paste_back` inverts it exactly.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from tfunmask.data import dlib_weights

HOG_PAD = 0.30        # padding on every side before HOG, as a fraction of the longer side
CNN_PAD = 0.15        # the same before the CNN fallback (it copes better with cut-off faces)
HOG_MAX_SIDE = 1280   # the padded photo is downscaled to this longest side for HOG
CNN_MAX_SIDE = 480    # ... and to this for the CNN, whose cost grows with the pixel count
DUPLICATE_OVERLAP = 0.5  # boxes sharing more than this of the smaller box are one face
DETECTORS = ("cascade", "blazeface", "dlib")
MIN_FACE = 12            # pixels: narrower boxes are not faces one can unmask (eyes ~5 px apart)
EXTRA_FACE_SCORE = 0.6   # BlazeFace: a face besides the best-scoring one needs this score
EYE_AGREEMENT = 0.35     # BlazeFace: fitted eyes further than this (eye distances) from its own are moved

EYE_DISTANCE = 0.25        # eye centres this fraction of the crop apart (FFHQ) ...
EYE_MOUTH_DISTANCE = 1 / 3.6  # ... unless eye midpoint to mouth would exceed this (FFHQ: turned heads)
EYE_HEIGHT = 0.42          # the eye midpoint sits at this fraction of the crop height, centred

_RIGHT_EYE = slice(36, 42)  # the subject's right eye, on the left of the photo
_LEFT_EYE = slice(42, 48)
_MOUTH_CORNERS = (48, 54)


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face: box (left, top, right, bottom) clipped to the photo, landmarks (68, 2)
    float32 (x, y) photo pixels in dlib's order, the detector that found it ("blazeface" | "hog" |
    "cnn") and its score (BlazeFace: a probability; HOG and CNN: dlib's margins)."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    detector: str
    score: float
    refitted: bool = False  # landmarks moved onto BlazeFace's eye keypoints (see the module doc)


@dataclass(frozen=True, eq=False)
class Alignment:
    """The similarity transform from a photo to a square crop of `size` pixels: matrix (2, 3)."""

    matrix: np.ndarray
    size: int

    def to_crop(self, points) -> np.ndarray:
        """Photo (x, y) points (N, 2) in crop pixels, float32."""
        return _apply(self.matrix, points)

    def to_image(self, points) -> np.ndarray:
        """Crop (x, y) points (N, 2) in photo pixels, float32."""
        return _apply(self.inverse(), points)

    def inverse(self) -> np.ndarray:
        """The (2, 3) float64 matrix from crop to photo."""
        return cv2.invertAffineTransform(self.matrix)

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel."""
        return float(np.hypot(*self.matrix[0, :2]))


def _apply(matrix: np.ndarray, points) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


# --- models -------------------------------------------------------------------------------------

_models: dict = {}
_models_lock = threading.Lock()
# dlib's detectors keep per-call state in the object (HOG its feature pyramid, the CNN its
# activations) and crash when two threads share one: one call at a time each.
_call_locks = {"hog": threading.Lock(), "cnn": threading.Lock(), "landmarks": threading.Lock()}
_cnn_run_by: int | None = None  # pid of the process whose dlib thread pool the CNN has started


def load_models(use_cnn: bool = True, detector: str = "cascade") -> None:
    """Load the models now rather than on first use (a Pool initializer, before timing)."""
    names = ["landmarks"] + (["blazeface"] if detector != "dlib" else [])
    if detector != "blazeface":
        names += ["hog", "cnn"] if use_cnn else ["hog"]
    for name in names:
        _model(name)


def _model(name: str):
    """The dlib model `name` ("hog" | "cnn" | "landmarks"), loaded on first use."""
    with _models_lock:
        if name not in _models:
            _models[name] = _load_model(name)
        return _models[name]


def _load_model(name: str):
    if name == "blazeface":
        from tfunmask.data.blazeface import BlazeFace

        return BlazeFace()
    if name == "hog":
        return dlib.get_frontal_face_detector()
    if name == "cnn":
        return dlib.cnn_face_detection_model_v1(dlib_weights.path(dlib_weights.CNN_DETECTOR))
    return dlib.shape_predictor(dlib_weights.path(dlib_weights.LANDMARKS_68))


# --- detection ----------------------------------------------------------------------------------

def find(image_rgb: np.ndarray, *, max_faces: int | None = None, use_cnn: bool = True,
         detector: str = "cascade") -> list[Face]:
    """The plausible faces in a uint8 RGB photo, largest box first (at most `max_faces`).

    `detector`: "cascade" (BlazeFace, then padded HOG, then the CNN, each only where the one
    before found no plausible face), "blazeface" or "dlib" (HOG, then the CNN); `use_cnn=False`
    leaves the CNN out.
    """
    check_detector(detector)
    image = _as_rgb(image_rgb)
    height, width = image.shape[:2]
    pad = round(HOG_PAD * max(height, width))
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    faces = _blazeface_faces(image, padded, pad) if detector != "dlib" else []
    if not faces and detector != "blazeface":
        faces = _plausible(padded, pad, _hog_boxes(padded), "hog")
        if not faces and use_cnn:
            inset = pad - round(CNN_PAD * max(height, width))
            faces = _plausible(padded, pad, _cnn_boxes(padded, inset), "cnn")
    faces.sort(key=lambda face: _area(face.box), reverse=True)
    return faces[:max_faces]


def check_detector(detector: str) -> str:
    """`detector` if it names a finder of `find`, else ValueError (one line)."""
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}; use one of {', '.join(DETECTORS)}")
    return detector


def _eye_centres(landmarks) -> np.ndarray:
    """(2, 2) float64: the subject's right eye centre (left in the photo), then the left one."""
    points = np.asarray(landmarks, np.float64)
    return np.stack([points[_RIGHT_EYE].mean(axis=0), points[_LEFT_EYE].mean(axis=0)])


def _blazeface_faces(image: np.ndarray, padded: np.ndarray, pad: int) -> list[Face]:
    """BlazeFace's plausible detections with 68 points fitted (and moved onto its eyes if need be)."""
    faces = []
    for rank, found in enumerate(_model("blazeface")(image)):
        if found.box[2] - found.box[0] < MIN_FACE or (rank and found.score < EXTRA_FACE_SCORE):
            continue
        eyes, nose, mouth = found.eyes, found.keypoints[2], found.keypoints[3]
        if not _is_face_geometry(eyes[0], eyes[1], nose, mouth):
            continue
        face = _face(padded, pad, found.box + pad, found.score, "blazeface")
        fitted = _eye_centres(face.landmarks)
        if np.hypot(*(fitted - eyes).T).max() > EYE_AGREEMENT * np.hypot(*(eyes[1] - eyes[0])):
            if rank:  # beside the best face, the two models must agree (an ear scored 0.74)
                continue
            moved = _apply(_similarity(fitted, eyes), face.landmarks)
            moved.setflags(write=False)
            face = Face(box=face.box, landmarks=moved, detector="blazeface", score=face.score, refitted=True)
        if _is_face_shape(face.landmarks):
            faces.append(face)
    return faces


def _similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The (2, 3) rotation + scale + shift taking the two `source` points onto the two `target` points."""
    a, b = source[1] - source[0], target[1] - target[0]
    z = complex(*b) / complex(*a) if np.hypot(*a) > 1e-6 else 1.0
    linear = np.array([[z.real, -z.imag], [z.imag, z.real]])
    return np.column_stack([linear, target[0] - linear @ source[0]])


def _plausible(padded: np.ndarray, pad: int, boxes: list[tuple[np.ndarray, float]], detector: str) -> list[Face]:
    """The faces of dlib's boxes (duplicates merged) that are large enough and shaped like a face."""
    faces = [_face(padded, pad, box, score, detector) for box, score in _deduplicate(boxes)
             if box[2] - box[0] >= MIN_FACE]
    return [face for face in faces if _is_face_shape(face.landmarks)]


def _is_face_shape(landmarks: np.ndarray) -> bool:
    """In the frame of the eye line: the nose tip, then the mouth, lie below the eyes, near the
    middle, at heights a human face has, in eye distances: nose 0.05-1.6, mouth 0.5-2.4, both at
    most 0.8 to the side (on 160 shared photos, masked and not: nose 0.13-1.04, mouth 0.63-1.71,
    sideways up to 0.54; the margins allow for turned and tilted heads)."""
    points = np.asarray(landmarks, np.float64)
    return _is_face_geometry(*_eye_centres(points), points[30], points[[51, 57]].mean(0))


def _is_face_geometry(right_eye, left_eye, nose, mouth) -> bool:
    """``_is_face_shape`` for four points: the eye centres (left of the photo first), nose tip, mouth."""
    across = np.asarray(left_eye, np.float64) - right_eye
    spread = np.hypot(*across)
    if spread < 1e-6:
        return False
    across /= spread
    down = np.array([-across[1], across[0]])  # image y grows downwards
    centre = (np.asarray(right_eye, np.float64) + left_eye) / 2
    nose, mouth = (nose - centre) / spread, (mouth - centre) / spread
    nose_down, mouth_down = nose @ down, mouth @ down
    return bool(0.05 <= nose_down <= 1.6 and 0.5 <= mouth_down <= 2.4 and mouth_down > nose_down
                and abs(nose @ across) <= 0.8 and abs(mouth @ across) <= 0.8)


def _as_rgb(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def _downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """`image` shrunk to at most `max_side` on its longer side, and the factor applied."""
    factor = min(1.0, max_side / max(image.shape[:2]))
    if factor == 1.0:
        return image, factor
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor


def _hog_boxes(padded: np.ndarray) -> list[tuple[np.ndarray, float]]:
    small, factor = _downscaled(padded, HOG_MAX_SIDE)
    with _call_locks["hog"]:
        rects, scores, _ = _model("hog").run(small, 0, 0.0)
    return [(_box_array(rect) / factor, float(score)) for rect, score in zip(rects, scores)]


def _cnn_boxes(padded: np.ndarray, inset: int) -> list[tuple[np.ndarray, float]]:
    """CNN detections on `padded` minus `inset` pixels each side, in `padded` coordinates."""
    global _cnn_run_by
    view = padded[inset:padded.shape[0] - inset, inset:padded.shape[1] - inset]
    small, factor = _downscaled(np.ascontiguousarray(view), CNN_MAX_SIDE)
    with _call_locks["cnn"]:
        _check_not_forked_after_cnn()
        detections = _model("cnn")(small, 0)
        _cnn_run_by = os.getpid()
    return [(_box_array(found.rect) / factor + inset, float(found.confidence)) for found in detections]


def _check_not_forked_after_cnn() -> None:
    """Fail fast where dlib would hang: its CNN waits forever on a thread pool that a forked
    child inherits without threads, once the parent has run the CNN (dlib issue #1555)."""
    if _cnn_run_by not in (None, os.getpid()):
        raise RuntimeError("dlib's CNN face detector hangs in a process forked after its parent ran it: "
                           "start workers with multiprocessing.get_context('spawn') or 'forkserver', "
                           "or call find(..., use_cnn=False)")


def _box_array(rect) -> np.ndarray:
    return np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float64)


def _deduplicate(boxes: list[tuple[np.ndarray, float]]) -> list[tuple[np.ndarray, float]]:
    """Best-scoring box of every group that overlaps by more than DUPLICATE_OVERLAP."""
    kept: list[tuple[np.ndarray, float]] = []
    for box, score in sorted(boxes, key=lambda item: -item[1]):
        if all(_overlap(box, other) <= DUPLICATE_OVERLAP for other, _ in kept):
            kept.append((box, score))
    return kept


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection area over the smaller box's area."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    return float(width * height / max(1.0, min(_area(a), _area(b))))


def _area(box) -> float:
    return float(max(0, box[2] - box[0]) * max(0, box[3] - box[1]))


def _face(padded: np.ndarray, pad: int, box: np.ndarray, score: float, detector: str) -> Face:
    """Landmarks for a box in padded coordinates; box and points in photo coordinates."""
    left, top, right, bottom = (int(value) for value in np.rint(box))
    with _call_locks["landmarks"]:
        shape = _model("landmarks")(padded, dlib.rectangle(left, top, right, bottom))
    landmarks = np.array([(point.x, point.y) for point in shape.parts()], dtype=np.float32) - pad
    landmarks.setflags(write=False)
    height, width = padded.shape[0] - 2 * pad, padded.shape[1] - 2 * pad
    clipped = np.clip(np.rint(box) - pad, 0, [width, height, width, height]).astype(int)
    return Face(box=tuple(int(value) for value in clipped), landmarks=landmarks,
                detector=detector, score=score)


# --- alignment ----------------------------------------------------------------------------------

def alignment(landmarks, size: int) -> Alignment:
    """The FFHQ-like similarity transform of a face with these 68 landmarks to a `size` crop."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise ValueError(f"expected finite landmarks of shape (68, 2), got {points.shape}")
    right_eye, left_eye = _eye_centres(points)
    eye_centre = (right_eye + left_eye) / 2
    eye_to_eye = left_eye - right_eye
    eye_distance = np.hypot(*eye_to_eye)
    eye_to_mouth = np.hypot(*(points[list(_MOUTH_CORNERS)].mean(axis=0) - eye_centre))
    if eye_distance == 0 or eye_to_mouth == 0:
        raise ValueError("degenerate landmarks: the eyes or the eyes and mouth coincide")
    scale = size * min(EYE_DISTANCE / eye_distance, EYE_MOUTH_DISTANCE / eye_to_mouth)
    cos, sin = eye_to_eye / eye_distance
    linear = scale * np.array([[cos, sin], [-sin, cos]])
    target = np.array([size / 2, EYE_HEIGHT * size]) - 0.5
    return Alignment(matrix=np.column_stack([linear, target - linear @ eye_centre]), size=int(size))


def align(image: np.ndarray, landmarks, size: int) -> tuple[np.ndarray, Alignment]:
    """The aligned uint8 RGB crop (size, size, 3) of the face and its Alignment.

    A face larger than the crop is first shrunk with area averaging (no aliasing). Parts of the
    crop outside the photo repeat its border pixels, blurred so that they fade into smooth colour
    rather than the long streaks a generator would learn to draw (mirroring, as FFHQ does, puts
    ghost copies of the face there instead).
    """
    image = _as_rgb(image)
    found = alignment(landmarks, size)
    source, matrix = image, found.matrix
    if found.scale < 1.0:
        source, matrix = _shrunk_for(image, found)
    crop = cv2.warpAffine(source, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return _blur_outside(crop, source.shape[:2], matrix), found


def _blur_outside(crop: np.ndarray, source_shape: tuple[int, int], matrix: np.ndarray) -> np.ndarray:
    """Blurs the crop where it lies outside the photo (only there), fading in over a few pixels."""
    size = crop.shape[0]
    inside = cv2.warpAffine(np.ones(source_shape, np.float32), matrix, (size, size),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if inside.min() >= 1.0:
        return crop
    outside = 1.0 - inside
    outside = (cv2.GaussianBlur(outside, (0, 0), sigmaX=0.015 * size) * (outside > 0))[..., None]
    blurred = cv2.GaussianBlur(crop, (0, 0), sigmaX=0.05 * size).astype(np.float32)
    return np.rint(crop * (1.0 - outside) + blurred * outside).astype(np.uint8)


def _shrunk_for(image: np.ndarray, found: Alignment) -> tuple[np.ndarray, np.ndarray]:
    """The photo resized to the crop's scale, and the crop matrix for the resized photo."""
    height, width = image.shape[:2]
    new_size = (max(1, round(width * found.scale)), max(1, round(height * found.scale)))
    small = cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)
    sx, sy = new_size[0] / width, new_size[1] / height
    to_small = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    return small, found.matrix @ np.linalg.inv(to_small)


def paste_back(image: np.ndarray, crop: np.ndarray, alignment: Alignment, region_mask=None,
               feather: float = 0.05) -> np.ndarray:
    """A copy of `image` with `crop` (made by `align`, maybe edited) warped back and blended in.

    Without `region_mask` the whole crop replaces the photo, fading out over `feather` (a
    fraction of the crop size) inside the crop's edges. With `region_mask` (size, size) uint8,
    nonzero where the crop should win, only that region replaces the photo, fading out over
    `feather` outside the region (so its whole inside is replaced, e.g. a whole mask).
    """
    image, crop = _as_rgb(image), _as_rgb(crop)
    if crop.shape[:2] != (alignment.size, alignment.size):
        raise ValueError(f"crop is {crop.shape[:2]}, expected {alignment.size}x{alignment.size}")
    alpha = _blend_alpha(alignment.size, region_mask, feather)
    height, width = image.shape[:2]
    inverse = alignment.inverse()
    warped = cv2.warpAffine(crop, inverse, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    weight = cv2.warpAffine(alpha, inverse, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
    blended = image * (1.0 - weight) + warped * weight
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _blend_alpha(size: int, region_mask, feather: float) -> np.ndarray:
    """float32 (size, size) weights in [0, 1]: 1 on the region, smooth ramps of `feather` width,
    also inside the crop's edges (beyond them the photo is not the crop's)."""
    width = max(1.0, feather * size)
    inside = _smoothstep(_distance_to_zero(np.ones((size, size), np.uint8), edge_is_zero=True) / width)
    if region_mask is None:
        return inside
    region = np.asarray(region_mask)
    if region.shape != (size, size):
        raise ValueError(f"region_mask is {region.shape}, expected ({size}, {size})")
    return inside * region_alpha(region, feather)


def hull_mask(points, size: int) -> np.ndarray:
    """uint8 (size, size), 255 on the convex hull of crop-space `points` (x, y), else 0."""
    region = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(region, cv2.convexHull(np.rint(np.asarray(points)).astype(np.int32)), 255)
    return region


def region_alpha(region_mask: np.ndarray, feather: float) -> np.ndarray:
    """float32 weights in [0, 1] of a square uint8 `region_mask`: 1 where it is nonzero, falling
    smoothly to 0 over `feather` (a fraction of the side) outside it."""
    width = max(1.0, feather * region_mask.shape[0])
    outside = _distance_to_zero((np.asarray(region_mask) <= 127).astype(np.uint8), edge_is_zero=False)
    return (1.0 - _smoothstep(outside / width)).astype(np.float32)


def _distance_to_zero(binary: np.ndarray, *, edge_is_zero: bool) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest zero pixel (or beyond the edge)."""
    border = 0 if edge_is_zero else 1
    framed = cv2.copyMakeBorder(binary, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=border)
    distance = cv2.distanceTransform(framed, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return distance[1:-1, 1:-1]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return (x * x * (3.0 - 2.0 * x)).astype(np.float32)
