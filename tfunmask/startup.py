"""Start TensorFlow without its native start-up noise, for the command-line programs.

On a machine without a GPU, importing TensorFlow and probing for GPUs prints lines from C++ that
read like failures to a user ("failed call to cuInit: ... CUDA error", "Could not find cuda
drivers", a notice to rebuild for AVX2/FMA). They are written to file descriptor 2 before
Python's logging exists, so neither ``TF_CPP_MIN_LOG_LEVEL`` nor absl hides them all.
``quiet_tensorflow`` arranges for TensorFlow's first import, wherever it happens, to run (and to
probe the GPUs) with descriptor 2 sent to a file, then writes back every line that is not one of
those known start-up lines: real warnings and errors stay visible. ``TF_CPP_MIN_LOG_LEVEL``
defaults to 1 (TensorFlow's INFO lines off, warnings on). The programs call it once their flags
parse, so a program that stops at a user error, or never needs TensorFlow (the overlay tool),
does not spend the ~5 s TensorFlow takes to import; ``load_tensorflow`` imports it at once.

LiteRT prints a line of its own whenever it builds an interpreter ("Created TensorFlow Lite
XNNPACK delegate for CPU"); ``filtered_stderr`` hides it the same way where the package builds one.
So it does for oneDNN's "supports DT_HALF only on platforms with AVX-512" wherever the package loads
a SavedModel (``inference.generators.load_saved_model``: a ``saved_model_float16`` export, served or
read by ``training.warm_start``, widens its kernels to float32 inside the graph; nothing is computed
in float16 there). An
explicit ``--mixed_precision=float16`` on such a CPU still shows it, beside the program's own warning.
Apache Beam warns at import that "apitools" and BigQuery's client are missing, which matters only
for Google Cloud runners; ``tools/synthesize.py`` imports Beam inside the same filter.

It also turns on TensorFlow's oneDNN kernels on AVX2 CPUs that TensorFlow leaves them off for
(``tfunmask.cpu.use_onednn``; ``TF_ENABLE_ONEDNN_OPTS=0`` keeps them off).

``--verbosity``/``-v`` on the command line (or ``TFUNMASK_VERBOSE=1``) turns all of this off.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

_NOISE = re.compile("|".join([
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers",
    r"cuda_platform\.cc:\d+\] failed call to cuInit",
    r"cuda_executor\.cc:\d+\] .*(no NVIDIA GPU|kernel driver)",
    r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
    r"^To enable the following instructions: .* rebuild TensorFlow",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation_placer\.cc:\d+\] computation placer already registered",
    r"TF-TRT Warning: Could not find TensorRT",
    r"oneDNN custom operations are on",
    r"Created TensorFlow Lite XNNPACK delegate for CPU",
    r"oneDNN supports DT_HALF only on platforms with AVX-512",
    r"apitools not found, and bigquery client libraries are not available",
]))


def is_noise(line):
    """True for a known TensorFlow start-up line that says nothing to a user."""
    return bool(_NOISE.search(line))


def verbose_requested(argv=None):
    """True when the user asked for everything: ``--verbosity``/``-v`` or TFUNMASK_VERBOSE=1."""
    argv = sys.argv[1:] if argv is None else argv
    flag = any(arg.split("=")[0] in ("--verbosity", "-v") or re.fullmatch(r"-v\d+", arg) for arg in argv)
    return flag or os.environ.get("TFUNMASK_VERBOSE") == "1"


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run under ``filtered_stderr``; it then lists the GPUs (which
    initialises CUDA and prints the rest of the start-up lines) inside the same filter."""

    def __init__(self, loader, verbose):
        self._loader, self._verbose = loader, verbose

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with filtered_stderr(self._verbose):
            self._loader.exec_module(module)
            module.config.list_physical_devices("GPU")

    def __getattr__(self, name):  # resource readers and the like: TensorFlow's loader answers
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: on the first ``import tensorflow`` it takes itself off ``sys.meta_path``,
    lets the other finders find TensorFlow and hands its loader to ``_QuietLoader``."""

    def __init__(self, verbose):
        self.verbose = verbose

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None:
            spec.loader = _QuietLoader(spec.loader, self.verbose)
        return spec


def quiet_tensorflow(verbose=None):
    """Makes TensorFlow's first import (and GPU probe) quiet, whenever and wherever it comes; sets
    ``TF_CPP_MIN_LOG_LEVEL`` and oneDNN's switch, which must precede the import. Does nothing once
    TensorFlow is imported; calling it again only updates ``verbose``."""
    if "tensorflow" in sys.modules:
        return
    if verbose is None:
        verbose = verbose_requested()
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    from tfunmask import cpu

    cpu.use_onednn()
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _QuietFinder)]
    sys.meta_path.insert(0, _QuietFinder(verbose))


def load_tensorflow(verbose=None):
    """Imports TensorFlow now (``quiet_tensorflow``'s way) and returns it."""
    quiet_tensorflow(verbose)
    import tensorflow as tf

    return tf


@contextlib.contextmanager
def filtered_stderr(verbose=None):
    """Inside the block, file descriptor 2 goes to a file; on leaving, every line that ``is_noise``
    does not match is written to stderr (so native and Python output both pass the filter)."""
    if verbose is None:
        verbose = verbose_requested()
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not is_noise(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
