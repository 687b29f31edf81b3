"""Evaluate an unmasking generator: ``python -m tfunmask.evaluate --model=PATH --data=DIR --out=DIR``.

Scores the model, the masked input itself and OpenCV Telea inpainting on paired test faces
(FID/KID, dlib face-embedding Fréchet distance, PSNR/SSIM/L1 whole and in the mask, identity
similarity, HOG detection rate), optionally also on faces masked by the mask family kept out of
training (``--held_out``, with the gap) and on real masked photos (``--masked_real``), and
writes metrics.json, report.md, contact sheets and bar charts into ``--out``. Thin wrapper over
``tfunmask.evaluation.suite.evaluate``.
"""
from absl import flags

from tfunmask.cli import check_arguments, fail, run_main

FLAGS = flags.FLAGS

def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_string("model", None, "Exported generator: a SavedModel folder, a training run folder "
                        "holding saved_model/, a .tflite or a .keras file.")
    flags.DEFINE_integer("epoch", None, "Score the checkpoint of this epoch of the training run folder --model "
                         "(default: the exported generator; for a run trained with --export=false, its newest "
                         "checkpoint).", lower_bound=1)
    flags.DEFINE_string("data", None, "Paired test data: the overlay tool's output folder, or a folder of "
                        "paired-<split>-*.tfrecord shards.")
    flags.DEFINE_string("out", None, "Folder for metrics.json, report.md and the PNGs.")
    flags.DEFINE_enum("split", "test", ["train", "val", "test", "all"],
                      "Which pairs of --data, and which photos of --masked_real, to score (the split "
                      "make_tfrecords gives them, with its defaults or --split_from's: a model trained unpaired "
                      "on --masked_real's train split is scored on photos it never saw).")
    flags.DEFINE_string("split_from", None, "A make_tfrecords output folder: --split is drawn with the fractions "
                        "and salt its dataset.json records (for data split with other than the defaults).")
    flags.DEFINE_integer("limit", None, "Score at most this many pairs (and real masked faces).", lower_bound=2)
    flags.DEFINE_string("held_out", None, "Paired data masked by the mask family kept out of training (e.g. "
                        "tools/overlay_masks.py --family=image over the same photos): scored like --data, with "
                        "the generalisation gap (held-out minus in-family).")
    flags.DEFINE_string("masked_real", None, "Folder of real photos of masked faces (no ground truth) to score too.")
    flags.DEFINE_bool("masked_real_aligned", False, "--masked_real holds aligned face crops, not photos.")
    flags.DEFINE_string("inception_weights", None, "InceptionV3 'notop' weights file for FID/KID (default: the "
                        "Keras cache, ~/.keras/models/).")
    flags.DEFINE_integer("batch_size", 16, "Batch size of InceptionV3.", lower_bound=1)
    flags.DEFINE_integer("score_size", None, "Score every method on crops of this size (default: the model's). "
                         "The model gets them resized to its size and its output is brought back as the photo "
                         "path does: only its mask map's region replaced at this resolution.", lower_bound=16)
    flags.DEFINE_bool("flip_average", True, "Score the model as the photo path runs it by default: each crop's "
                      "output is the mean of the generator's for the crop and for its mirror image "
                      "(--noflip_average: the generator alone).")
    flags.DEFINE_integer("sheet_faces", 8, "Faces on each contact sheet (more than 8: three per row).", lower_bound=1)
    flags.mark_flags_as_required(["model", "data", "out"])


def main(argv):
    check_arguments(argv)
    from tfunmask.evaluation.arguments import EvaluationError, check

    try:  # the paths first: TensorFlow loads only once they are good
        check(FLAGS.model, FLAGS.data, split=FLAGS.split, held_out=FLAGS.held_out, masked_real=FLAGS.masked_real,
              inception_weights=FLAGS.inception_weights, split_from=FLAGS.split_from)
    except EvaluationError as error:
        fail(str(error))
    from tfunmask.evaluation import report, suite

    try:
        metrics = suite.evaluate(
            FLAGS.model, FLAGS.data, FLAGS.out, epoch=FLAGS.epoch, split=FLAGS.split, split_from=FLAGS.split_from,
            limit=FLAGS.limit, held_out=FLAGS.held_out,
            masked_real=FLAGS.masked_real, masked_real_aligned=FLAGS.masked_real_aligned,
            inception_weights=FLAGS.inception_weights, batch_size=FLAGS.batch_size,
            score_size=FLAGS.score_size, sheet_faces=FLAGS.sheet_faces, flip_average=FLAGS.flip_average,
            log=print)
    except suite.EvaluationError as error:
        fail(str(error))
    print(report.table(metrics["paired"]["methods"]))
    if "held_out" in metrics:
        print(f"held-out mask family:\n{report.table(metrics['held_out']['methods'])}")
        print(f"generalisation gap (held-out minus in-family):\n{report.table(metrics['gap'])}")
    if "real" in metrics:
        print(report.table(metrics["real"]["methods"]))
    print(f"wrote {FLAGS.out}/metrics.json, report.md and PNGs")


def run():
    """Console entry point."""
    define_flags()
    run_main(main)


if __name__ == "__main__":
    run()
