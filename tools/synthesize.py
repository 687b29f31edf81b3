"""Photos -> masked triples -> paired TFRecords as an Apache Beam pipeline (a thin command line over
tfunmask.synth.beam_pipeline; needs the beam extra: pip install "tfunmask[beam]").

  python tools/synthesize.py --faces DIR_OR_URL --out DIR_OR_URL [--size 256] [--family mesh|image] [--styles all] [--seed 0]
      [--per_face K] [--detector cascade] [--nocnn] [--shards 8] [--split 0.9,0.05,0.05] [--split_salt S] [--overwrite]
      [--runner DirectRunner] [--workers N] [-- BEAM_OPTIONS...]

Writes what tools/overlay_masks.py then tools/make_tfrecords.py --mode=paired would (the same
records for the same --seed, on any runner and worker count) into --out: the shards, dataset.json
and report.json (the overlay tool's, every photo used or skipped with a reason). --workers sets the
DirectRunner's processes; options after "--" go to Beam as they are (--project, --region,
--temp_location, --setup_file, --job_endpoint, --environment_type...; see README.md). User errors
end with a one-line message on stderr and a non-zero exit.
"""
from __future__ import annotations

import functools

from absl import app, flags

from tfunmask import startup
from tfunmask.cli import define_split_flags, fail, flags_parser
from tfunmask.data import splits
from tfunmask.synth import overlay

FLAGS = flags.FLAGS
PROG = "synthesize"
_fail = functools.partial(fail, code=1, prog=PROG)


def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_string("faces", None, "Folder of face photos, local or a file system URL such as gs://bucket/faces.")
    flags.DEFINE_string("out", None, "Output folder (local or URL; must not be inside --faces).")
    flags.DEFINE_integer("size", 256, "Side of the aligned square face crops in pixels.", lower_bound=32)
    flags.DEFINE_enum("family", "mesh", list(overlay.FAMILIES), "Mask family: mesh or image (see tools/overlay_masks.py).")
    flags.DEFINE_string("styles", "all", overlay.STYLES_HELP)
    flags.DEFINE_integer("seed", 0, "Random seed (with each file's relative path it fixes that file's masks).",
                         lower_bound=0)
    flags.DEFINE_integer("per_face", 1, "Masked variants per face (styles cycle through a random order).", lower_bound=1)
    flags.DEFINE_enum("detector", "cascade", ["cascade", "blazeface", "dlib"],
                      "Face finder (cascade: BlazeFace, then dlib's HOG, then its CNN).")
    flags.DEFINE_boolean("cnn", True, "Let the finder end with dlib's CNN detector (slow on CPU).")
    flags.DEFINE_integer("shards", 8, "Most shards per split; small splits get fewer.", lower_bound=1)
    define_split_flags()
    flags.DEFINE_boolean("overwrite", False, "Replace the shards of an earlier run in --out.")
    flags.DEFINE_string("runner", "DirectRunner", "Beam runner: DirectRunner, DataflowRunner, PortableRunner...")
    flags.DEFINE_integer("workers", 1, "DirectRunner only: worker processes (multi_processing mode when > 1).",
                         lower_bound=1)
    flags.mark_flags_as_required(["faces", "out"])


def beam_args(runner: str, workers: int, extra: list[str]) -> list[str]:
    """The pipeline options: the runner, the DirectRunner's processes, then `extra` as given."""
    args = [f"--runner={runner}"]
    if runner == "DirectRunner" and workers > 1:
        args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    elif workers > 1:
        _fail(f"--workers is for the DirectRunner; {runner} sizes its workers with its own options")
    return args + extra


def main(argv: list[str]) -> None:
    try:  # imported only now: the core install has no Beam, and its absence is one line, not a traceback
        with startup.filtered_stderr():  # Beam's "apitools not found" warning at import: no GCP here
            from tfunmask.synth import beam_pipeline
    except ImportError as error:
        _fail(f"{error}; install the beam extra: pip install \"tfunmask[beam]\"")
    try:
        rule = splits.parse_rule(FLAGS.split, FLAGS.split_salt)
        manifest, report = beam_pipeline.synthesize_records(
            FLAGS.faces, FLAGS.out, size=FLAGS.size, family=FLAGS.family, styles=(FLAGS.styles,), seed=FLAGS.seed,
            per_face=FLAGS.per_face, use_cnn=FLAGS.cnn, detector=FLAGS.detector, shards=FLAGS.shards,
            fractions=rule.fractions, salt=rule.salt, overwrite=FLAGS.overwrite,
            beam_args=beam_args(FLAGS.runner, FLAGS.workers, argv[1:]))
    except (ValueError, OSError) as error:
        _fail(error)
    except KeyboardInterrupt:
        _fail("interrupted; the output folder is incomplete")
    skipped = ", ".join(f"{reason} {n}" for reason, n in report["skipped"].items()) or "none"
    records = ", ".join(f"{split} {n}" for split, n in manifest["counts"].items())
    print(f"{PROG}: {report['seen']} files, {report['faces_written']} faces, records {records} -> {FLAGS.out}; "
          f"skipped: {skipped}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=flags_parser(PROG, code=1))
