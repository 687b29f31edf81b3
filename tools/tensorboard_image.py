"""Save an image that training wrote to TensorBoard as a PNG file.

    python tools/tensorboard_image.py --logdir runs/pix2pix/logs \
        --tag samples/input_output_target --out docs/grid.png [--step N]

Without --step the latest image of that tag is saved. Used for the figures in docs/.
"""

import sys
from pathlib import Path

from absl import flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfunmask.cli import fail, run_main  # noqa: E402

def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_string("logdir", None, "A run's logs/ folder.")
    flags.DEFINE_string("tag", "samples/input_output_target", "Image summary tag.")
    flags.DEFINE_string("out", None, "PNG file to write.")
    flags.DEFINE_integer("step", None, "Training step of the image (default: the latest).")


FLAGS = flags.FLAGS


def find_image(logdir, tag, step=None):
    """(step, PNG bytes) of the image summary ``tag`` at ``step``, or the latest one."""
    import tensorflow as tf

    found = {}
    for events in sorted(Path(logdir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                if value.tag == tag:
                    found[event.step] = tf.make_ndarray(value.tensor)[2]  # [width, height, png...]
    if not found:
        raise LookupError(f"no image tagged {tag!r} in {logdir}")
    if step is None:
        step = max(found)
    if step not in found:
        raise LookupError(f"no {tag!r} image at step {step}; steps: {sorted(found)}")
    return step, found[step]


def main(argv):
    if not FLAGS.logdir or not FLAGS.out:
        fail("--logdir and --out are required")
    if not Path(FLAGS.logdir).is_dir():
        fail(f"--logdir {FLAGS.logdir} is not a folder")
    try:
        step, png = find_image(FLAGS.logdir, FLAGS.tag, FLAGS.step)
    except LookupError as error:
        fail(str(error))
    Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
    Path(FLAGS.out).write_bytes(png)
    print(f"{FLAGS.tag} at step {step} -> {FLAGS.out}")


if __name__ == "__main__":
    define_flags()
    run_main(main)
