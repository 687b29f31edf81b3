"""Unmask photos: ``python -m tfunmask.unmask --model=PATH INPUT... --out DIR``.

INPUT is any mix of image files, folders (searched recursively) and globs. Every face of every
photo is found, aligned, unmasked by the generator at PATH (a SavedModel folder or training run
folder, a ``.tflite`` or a ``.keras`` file) and blended back; DIR receives ``unmasked/``,
optionally ``compare/`` and ``crops/``, and ``report.json``. Unreadable files and photos without
a face are reported and skipped. Exit code: 0 when every input was unmasked or only had no face
(common in real photo folders: reported, not a failure), 1 when any input could not be used
(unreadable, not an image, ...), 2 for bad arguments. Thin wrapper over
``tfunmask.inference.folders.unmask_files``.
"""

import sys

from absl import flags

from tfunmask.cli import fail, run_main

FLAGS = flags.FLAGS
def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_string("model", None, "SavedModel folder (or training run folder), .tflite or .keras file "
                        "(default: the model shipped in savedmodels/).")
    flags.DEFINE_string("out", None, "Output folder (must not be an input folder).")
    flags.DEFINE_bool("assume_cropped", False, "Each input is one aligned face crop: no detection, "
                      "the whole image is unmasked.")
    flags.DEFINE_bool("compare", False, "Also write input|output side by side into OUT/compare/.")
    flags.DEFINE_bool("save_crops", False, "Also write each face's aligned input and output crops into OUT/crops/.")
    flags.DEFINE_integer("max_faces", None, "Unmask at most this many faces per photo (largest first).")
    flags.DEFINE_enum("detector", "cascade", ["cascade", "blazeface", "dlib"],
                      "Face finder: cascade (BlazeFace, then dlib's HOG, then its CNN where the one before found "
                      "no face), blazeface alone, or dlib (HOG, then CNN).")
    flags.DEFINE_bool("cnn_fallback", True, "Let the finder end with dlib's CNN detector (small faces; slower).")
    flags.DEFINE_bool("flip_average", True, "Each face's output is the mean of the model's for the face and for "
                      "its mirror image (closer to the true face, at twice the model's time); --noflip_average: one pass.")
    flags.DEFINE_integer("num_threads", None, "TFLite threads (default: all CPUs).")
    flags.DEFINE_bool("progress", True, "Show a progress bar when there are several inputs.")
    flags.DEFINE_bool("example", False, "Unmask a built-in example instead of INPUTs: NASA's public-domain "
                      "astronaut portrait (shipped by scikit-image) with a surgical mask drawn by the overlay "
                      "renderer, written to OUT/example_masked.png; OUT/example.png shows original | masked | "
                      "unmasked.")


def summary_line(report, out_dir):
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(report["skipped"].items()))
    return (f"unmasked {report['written']} of {report['seen']} photo(s), {report['faces']} face(s), into {out_dir}"
            + (f"; skipped: {skipped}" if skipped else "") + f" (details in {out_dir}/report.json)")


def main(argv):
    inputs = argv[1:]
    if not FLAGS.out:
        fail("--out is required")
    if FLAGS.example and inputs:
        fail("--example takes no INPUT")
    if not inputs and not FLAGS.example:
        fail("give at least one input file, folder or glob (or --example)")
    if FLAGS.max_faces is not None and FLAGS.max_faces < 1:
        fail(f"--max_faces must be positive (got {FLAGS.max_faces})")
    from tfunmask.inference import (  # TensorFlow loads only once the flags are good
        folders,
        photos,
    )
    from tfunmask.inference.generators import ModelError

    try:
        if FLAGS.example:
            example, inputs = write_example(FLAGS.out)
        folders.plan(inputs, FLAGS.out)  # bad inputs fail before the model loads
        unmasker = photos.load(FLAGS.model, num_threads=FLAGS.num_threads, max_faces=FLAGS.max_faces,
                                  use_cnn=FLAGS.cnn_fallback, detector=FLAGS.detector,
                                  flip_average=FLAGS.flip_average)
        report = folders.unmask_files(unmasker, inputs, FLAGS.out,
                                         assume_cropped=FLAGS.assume_cropped,
                                         compare=FLAGS.compare, save_crops=FLAGS.save_crops,
                                         on_file=progress_bar() if FLAGS.progress else None)
    except (ModelError, folders.UnmaskError, ValueError) as error:
        fail(str(error))
    for entry in report["skipped_files"]:
        print(f"skipped ({entry['reason']}) {entry['message']}", file=sys.stderr)
    print(summary_line(report, FLAGS.out))
    if FLAGS.example and report["written"]:
        print(f"original | masked | unmasked: {write_triptych(*example, report['outputs'][0]['output'], FLAGS.out)}")
    if set(report["skipped"]) - {"no_face"}:
        sys.exit(1)


def write_example(out_dir):
    """Writes the masked example portrait into ``out_dir``; returns ((original, masked), [its path])."""
    from pathlib import Path

    from tfunmask.data import images
    from tfunmask.synth import portrait

    original, masked = portrait.masked_portrait()
    path = Path(out_dir) / "example_masked.png"
    images.write_image(path, masked)
    return (original, masked), [str(path)]


def write_triptych(original, masked, unmasked_path, out_dir):
    """OUT/example.png: the original portrait | the masked one | the unmasked one."""
    from pathlib import Path

    import numpy as np

    from tfunmask.data import images

    path = Path(out_dir) / "example.png"
    images.write_image(path, np.hstack([original, masked, images.read_image(unmasked_path)]))
    return path


def progress_bar():
    """An ``on_file`` callback drawing a Keras progress bar once there is more than one file."""
    bar = None

    def on_file(done, total, entry):
        nonlocal bar
        if total < 2:
            return
        if bar is None:
            import keras

            bar = keras.utils.Progbar(total, unit_name="photo")
        bar.update(done)

    return on_file


def run():
    """Console entry point."""
    define_flags()
    run_main(main)


if __name__ == "__main__":
    run()
