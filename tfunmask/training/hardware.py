"""What the machine decides for a run: its precision and its distribution strategy (a cluster
of machines: ``tfunmask.training.cluster``)."""

import tensorflow as tf

from tfunmask import cpu
from tfunmask.config import ConfigError
from tfunmask.training import cluster

PRECISIONS = {"none": "float32", "float32": "float32", "bfloat16": "mixed_bfloat16",
              "float16": "mixed_float16"}


def precision_policy(name):
    """Keras dtype policy for ``--mixed_precision``; "auto" picks float16 on GPUs,
    bfloat16 on CPUs that have bf16 instructions, float32 otherwise."""
    if name == "auto":
        if tf.config.list_physical_devices("GPU"):
            return "mixed_float16"
        return "mixed_bfloat16" if cpu.has_bf16() else "float32"
    if name not in PRECISIONS:
        raise ConfigError(f"--mixed_precision must be auto, none, bfloat16 or float16 (got {name!r})")
    return PRECISIONS[name]


def resolve_precision(runtime):
    """The run's dtype policy: ``runtime.precision`` when it is set (a resumed run keeps its own),
    else the one ``runtime.mixed_precision`` picks on this machine, stored into ``runtime``."""
    if runtime.precision is None:
        runtime.precision = precision_policy(runtime.mixed_precision)
    return runtime.precision


def emulated_precision(policy):
    """A one-line warning when ``policy`` is a 16-bit float the machine lacks both a GPU and CPU
    instructions for, so that TensorFlow emulates it; else None. On a 2-core AVX2-only AMD EPYC
    (Zen 3) a 128 px Pix2Pix step of batch 4 ran 3.3x slower in float16 and 9.3x slower in
    bfloat16 than in float32 (``benchmarks/train_throughput.py``)."""
    if policy not in ("mixed_bfloat16", "mixed_float16") or tf.config.list_physical_devices("GPU"):
        return None
    if policy == "mixed_bfloat16" and not cpu.has_bf16():
        return ("bfloat16 on a CPU without bf16 instructions (AMX or AVX512-BF16) is emulated, several times "
                "slower than float32: --mixed_precision=auto picks float32 here")
    if policy == "mixed_float16" and not cpu.has_fp16():
        return ("float16 on a CPU without float16 instructions (AVX512-FP16 or AMX-FP16) is emulated, several "
                "times slower than float32: --mixed_precision=auto picks "
                f"{'bfloat16' if cpu.has_bf16() else 'float32'} here")
    return None


def make_strategy(name, cluster_timeout=300):
    """``--strategy``: mirrored over all GPUs (or all logical CPUs when there is no GPU), one
    device, multi_worker (MultiWorkerMirroredStrategy over the hosts ``TF_CONFIG`` names, joined
    within ``cluster_timeout`` seconds), or auto (multi_worker when ``TF_CONFIG`` names a cluster,
    else mirrored when a GPU is visible, else one device)."""
    tf_config = cluster.read_tf_config() if name in ("auto", "multi_worker") else None
    if name == "multi_worker" or tf_config:
        if not tf_config:
            raise ConfigError("--strategy=multi_worker needs TF_CONFIG to describe the cluster "
                              "(see README: Training on several machines)")
        return cluster.join(*tf_config, cluster_timeout)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if gpus else "one_device"
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    raise ConfigError(f"--strategy must be auto, mirrored, one_device or multi_worker (got {name!r})")
