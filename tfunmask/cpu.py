"""What this machine's CPU can do, read from /proc/cpuinfo (Linux; elsewhere: nothing special).

Two choices depend on it: TensorFlow's oneDNN kernels (``use_onednn``) and the precision
``--mixed_precision=auto`` picks (bfloat16 where the CPU has bf16 matrix instructions).
"""

import functools
import os
from pathlib import Path


@functools.cache
def flags():
    """The CPU's feature flags (empty when /proc/cpuinfo cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def has_bf16():
    """bfloat16 matrix instructions: AMX or AVX512-BF16."""
    return bool({"amx_bf16", "avx512_bf16"} & flags())


def has_fp16():
    """float16 arithmetic instructions: AVX512-FP16 or AMX-FP16."""
    return bool({"avx512_fp16", "amx_fp16"} & flags())


def use_onednn():
    """Turns on TensorFlow's oneDNN CPU kernels on x86 CPUs with AVX2 unless the user chose
    (``TF_ENABLE_ONEDNN_OPTS`` set); must run before TensorFlow is imported.

    TensorFlow turns them on by itself only on CPUs with AVX512-VNNI, AVX-VNNI, AVX512-BF16 or
    AMX; elsewhere its convolutions run as Eigen contractions. On a 2-core AMD EPYC (Zen 3, AVX2
    only) a 256 px Pix2Pix float32 training step of batch 4 took 6.1-6.5 s with oneDNN against
    8.5-10.0 s without (fused upsampling: 5.8-6.2 s against 7.6-8.7 s).
    """
    if "avx2" in flags():
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
