"""Where dlib's trained models lie: the files the ``face-recognition-models`` wheel ships.

The wheel's own ``__init__`` finds them with ``pkg_resources``, which setuptools 81 removed (and
which warns on import before that), so the folder is found from the package's import spec
instead, without running that ``__init__``.
"""

import importlib.util
from pathlib import Path

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"
FACE_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"


def path(filename: str) -> str:
    """The full path of one of the wheel's model files; a clear error if it is not installed."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("dlib's models are missing: pip install face-recognition-models")
    file = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing: reinstall face-recognition-models")
    return str(file)
