"""Draw synthetic masks on every face in a folder of photos (a thin command line over tfunmask.synth.overlay).

  python tools/overlay_masks.py --faces DIR --out DIR [--size 256] [--family mesh|image]
      [--styles all|surgical,n95,...]
      [--seed 0] [--workers N] [--per_face K] [--detector cascade|blazeface|dlib] [--nocnn] [--overwrite]
      [--noprogress]

Writes masked/, target/, mask_map/ PNGs, meta.jsonl and report.json into --out (never into
--faces) and prints a one-line summary. The output depends on --seed only, not on --workers.
User errors end with a one-line message on stderr and a non-zero exit.
"""
from __future__ import annotations

import functools

from absl import app, flags

from tfunmask.cli import fail, flags_parser
from tfunmask.synth import overlay

FLAGS = flags.FLAGS
def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_string("faces", None, "Folder of face photos (searched recursively; only read).")
    flags.DEFINE_string("out", None, "Output folder (must not be inside --faces).")
    flags.DEFINE_integer("size", 256, "Side of the aligned square face crops in pixels.", lower_bound=32)
    flags.DEFINE_enum("family", "mesh", list(overlay.FAMILIES),
                      "Mask family: mesh (a lit surface built from the landmarks) or image (flat mask pictures "
                      "warped onto them); keep one out of training to measure generalisation.")
    flags.DEFINE_string("styles", "all", overlay.STYLES_HELP)
    flags.DEFINE_integer("seed", 0, "Random seed (with each file's relative path it fixes that file's masks).",
                         lower_bound=0)
    flags.DEFINE_integer("workers", 1, "Worker processes for detection and rendering.", lower_bound=1)
    flags.DEFINE_integer("per_face", 1, "Masked variants per face (styles cycle through a random order).", lower_bound=1)
    flags.DEFINE_enum("detector", "cascade", ["cascade", "blazeface", "dlib"],
                      "Face finder (cascade: BlazeFace, then dlib's HOG, then its CNN).")
    flags.DEFINE_boolean("cnn", True, "Let the finder end with dlib's CNN detector (slow on CPU).")
    flags.DEFINE_boolean("overwrite", False, "Replace the output of an earlier run in --out.")
    flags.DEFINE_boolean("progress", True, "Show a progress bar.")
    flags.mark_flags_as_required(["faces", "out"])


PROG = "overlay_masks"


_fail = functools.partial(fail, code=1, prog=PROG)



def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        report = overlay.overlay_folder(
            FLAGS.faces, FLAGS.out, size=FLAGS.size, family=FLAGS.family, styles=(FLAGS.styles,), seed=FLAGS.seed,
            workers=FLAGS.workers, per_face=FLAGS.per_face, progress=FLAGS.progress, use_cnn=FLAGS.cnn,
            detector=FLAGS.detector,
            overwrite=FLAGS.overwrite)
    except (ValueError, OSError) as error:
        _fail(error)
    except KeyboardInterrupt:
        _fail("interrupted; the output folder is incomplete")
    skipped = ", ".join(f"{reason} {n}" for reason, n in report["skipped"].items()) or "none"
    print(f"{PROG}: {report['seen']} files, {report['faces_written']} faces, {report['triples_written']} "
          f"{report['family']} triples "
          f"-> {FLAGS.out}; skipped: {skipped}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=flags_parser(PROG, code=1))
