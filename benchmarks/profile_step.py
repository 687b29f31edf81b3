"""Where a training step's time goes, by TensorFlow op and by oneDNN primitive.

    python benchmarks/profile_step.py --model=pix2pix --image_size=256 --batch_size=4
    python benchmarks/profile_step.py --model=cyclegan --image_size=128 --batch_size=1 --precision=bfloat16

Two views of the same steps, after two warm-up steps, with ``--inter_op_threads=1`` (the default
here: one op at a time, so that times add up; training itself runs two inter-op threads):

* TensorFlow's profiler traces the steps and the time of every kernel is summed per op type
  (``_MklNativeConv2DBackpropFilter``, ``MirrorPadGrad``, ``AssignSubVariableOp``...): all of the
  step's work, oneDNN's and Eigen's;
* a child process runs them again with ``ONEDNN_VERBOSE=1`` (oneDNN prints one line per
  primitive it executes: kind, propagation, implementation, shapes, milliseconds), summed per
  kind and propagation, then the largest single primitives with their shapes, which say which
  layer and which kernel (``brg_conv_fwd:avx512_core_amx``, ``jit:avx2``, ``gemm``...).

Convolutions run on oneDNN only on x86 builds with ``TF_ENABLE_ONEDNN_OPTS=1``, which
``tfunmask.startup`` sets on AVX2 CPUs.
"""

import collections
import os
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

MARK = "profile_step:"


def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_enum("model", "pix2pix", ["pix2pix", "cyclegan", "aggan"], "Model to profile.")
    flags.DEFINE_integer("image_size", 256, "Image size.")
    flags.DEFINE_integer("batch_size", 4, "Batch size.")
    flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Precision of the step.")
    flags.DEFINE_enum("upsampling", "fused", ["fused", "plain"], "Decoder upsampling form.")
    flags.DEFINE_integer("resnet_blocks", 9, "CycleGAN/AttentionGAN residual blocks.")
    flags.DEFINE_integer("aggan_scheme", 2, "AttentionGAN scheme.")
    flags.DEFINE_integer("steps", 2, "Profiled steps (after 2 warm-up steps).", lower_bound=1)
    flags.DEFINE_integer("inter_op_threads", 1, "TensorFlow inter-op threads (1: ops do not overlap).")
    flags.DEFINE_integer("top", 12, "How many op types and single primitives to list.")
    flags.DEFINE_bool("child", False, "Internal: run the steps (in the ONEDNN_VERBOSE child process).")


FLAGS = flags.FLAGS


def warmed_model():
    """(model, batch): the model built and trained for two steps, so no tracing is profiled."""
    from tfunmask import startup

    startup.load_tensorflow()
    import tensorflow as tf

    import train_throughput  # beside this script: the same model, optimizers and batch it times

    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)
    model = train_throughput.build(FLAGS.precision, FLAGS.upsampling)
    batch = train_throughput.fake_batch(model.DATA, FLAGS.image_size, FLAGS.batch_size)
    for _ in range(2):
        model.train_on_batch(batch)
    return model, batch


def timed_steps(model, batch):
    """Runs ``--steps`` training steps; wall ms per step."""
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
        model.train_on_batch(batch)
    return (time.perf_counter() - start) / FLAGS.steps * 1000


def run_steps():
    """The child: marks the timed steps on stdout, between oneDNN's lines."""
    model, batch = warmed_model()
    sys.stdout.flush()
    print(f"{MARK} start", flush=True)
    wall = timed_steps(model, batch)
    sys.stdout.flush()
    print(f"{MARK} wall {wall:.1f}", flush=True)


def tensorflow_ops():
    """(wall ms per step, Counter of kernel ms per step by op type) from TensorFlow's profiler."""
    import tempfile

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    model, batch = warmed_model()
    with tempfile.TemporaryDirectory() as folder:
        tf.profiler.experimental.start(folder)
        wall = timed_steps(model, batch)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(next(Path(folder).rglob("*.xplane.pb")).read_bytes())
    by_type = collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_"):  # the executor's compute threads
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" in name and "::" not in name:  # "layer/op:OpType", not the executor's own events
                    by_type[name.rsplit(":", 1)[1]] += event.duration_ps / 1e9 / FLAGS.steps
    return wall, by_type


def parse(lines):
    """(wall ms per step, [(kind, propagation, implementation, shape, ms)]) of the timed steps.

    oneDNN 3's execution lines read ``onednn_verbose,[timestamp,]primitive,exec,cpu,KIND,IMPL,
    PROP,...,SHAPE,MS``."""
    records, timed, wall = [], False, None
    for line in lines:
        if line.startswith(MARK):
            word, _, value = line[len(MARK):].strip().partition(" ")
            timed = word == "start"
            wall = float(value) if word == "wall" else wall
            continue
        fields = line.strip().split(",")
        if not timed or not line.startswith("onednn_verbose") or "exec" not in fields:
            continue
        at = fields.index("exec")
        if fields[at + 1] != "cpu" or len(fields) < at + 6:
            continue
        try:
            ms = float(fields[-1])
        except ValueError:
            continue
        records.append((fields[at + 2], fields[at + 4], fields[at + 3], fields[-2], ms))
    return wall, records


def report_ops(wall, by_type, top):
    total = sum(by_type.values())
    print(f"TensorFlow's profiler: {wall:.0f} ms per step, kernels {total:.0f} ms")
    for name, ms in by_type.most_common(top):
        print(f"  {name:<44} {ms:8.1f} ms  {ms / wall:6.1%}")


def report_onednn(wall, records, steps, top):
    total = sum(r[-1] for r in records) / steps
    print(f"oneDNN (ONEDNN_VERBOSE=1): {wall:.0f} ms per step; primitives {total:.0f} ms "
          f"({len(records) // steps} per step), the rest (TensorFlow's own kernels, overhead) {wall - total:.0f} ms")
    by_kind = collections.Counter()
    for kind, prop, _, _, ms in records:
        by_kind[f"{kind} {prop}"] += ms / steps
    for name, ms in by_kind.most_common():
        print(f"  {name:<44} {ms:8.1f} ms  {ms / wall:6.1%}")
    single = collections.Counter()
    for kind, prop, impl, shape, ms in records:
        single[(kind, prop, impl, shape)] += ms / steps
    print(f"largest {top} single primitives (summed over repeats within a step):")
    for (kind, prop, impl, shape), ms in single.most_common(top):
        print(f"  {ms:8.1f} ms  {kind} {prop} {impl} {shape}")


def main(_):
    if FLAGS.child:
        run_steps()
        return
    print(f"{FLAGS.model} {FLAGS.image_size}px batch {FLAGS.batch_size} {FLAGS.precision} {FLAGS.upsampling}, "
          f"{FLAGS.steps} profiled steps, {FLAGS.inter_op_threads} inter-op thread(s)")
    environment = dict(os.environ, ONEDNN_VERBOSE="1", TF_ENABLE_ONEDNN_OPTS="1")
    command = [sys.executable, __file__, "--child"] + [a for a in sys.argv[1:] if a != "--child"]
    result = subprocess.run(command, env=environment, capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__)))
    if result.returncode:
        sys.exit(f"the profiled steps failed: {result.stderr.strip().splitlines()[-1:]}")
    wall, records = parse(result.stdout.splitlines())
    report_ops(*tensorflow_ops(), FLAGS.top)
    if wall is None or not records:
        print("oneDNN printed no primitives: this TensorFlow build does not run its convolutions on oneDNN")
    else:
        report_onednn(wall, records, FLAGS.steps, FLAGS.top)


if __name__ == "__main__":
    define_flags()
    app.run(main)
