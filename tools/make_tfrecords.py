"""Build sharded, split TFRecords for training (a thin command line over tfunmask.data).

  python tools/make_tfrecords.py --mode=paired --input OVERLAY_OUT --out DIR [--shards 8] [--split 0.9,0.05,0.05]
      [--split_salt S]
  python tools/make_tfrecords.py --mode=unpaired --domain_a MASKED_PHOTOS --domain_b PHOTOS --out DIR [--size 256]

Paired mode reads the overlay tool's output (masked/, target/, mask_map/, meta.jsonl); unpaired
mode detects and aligns faces in two photo folders (A: masked, B: unmasked). Writes the shards,
dataset.json (mode, counts, image size, split rule, schema version) and report.json (what was
skipped and why) into --out. The split is decided by a hash of each source photo's path, salted with
--split_salt. User errors end with a one-line message and a non-zero exit.
"""
from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from absl import app, flags

from tfunmask.cli import define_split_flags, fail, flags_parser
from tfunmask.data import records_builder, splits
from tfunmask.synth import overlay

FLAGS = flags.FLAGS
def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_enum("mode", None, ["paired", "unpaired"], "paired: overlay tool output; unpaired: two photo folders.")
    flags.DEFINE_string("input", None, "paired: the overlay tool's output folder.")
    flags.DEFINE_string("domain_a", None, "unpaired: folder of photos of people wearing masks (domain A).")
    flags.DEFINE_string("domain_b", None, "unpaired: folder of photos of people without masks (domain B).")
    flags.DEFINE_string("out", None, "Output folder for the shards, dataset.json and report.json.")
    flags.DEFINE_integer("shards", 8, "Most shards per split (and domain); small splits get fewer.", lower_bound=1)
    define_split_flags()
    flags.DEFINE_integer("size", 256, "unpaired: side of the aligned face crops in pixels.", lower_bound=16)
    flags.DEFINE_integer("max_faces", None, "unpaired: keep at most this many faces per photo, largest first.",
                         lower_bound=1)
    flags.DEFINE_enum("detector", "cascade", ["cascade", "blazeface", "dlib"],
                      "unpaired: face finder (cascade: BlazeFace, then dlib's HOG, then its CNN).")
    flags.DEFINE_boolean("cnn", True, "unpaired: let the finder end with dlib's CNN detector (slow on CPU).")
    flags.DEFINE_integer("workers", 1, "unpaired: face detection processes.", lower_bound=1)
    flags.DEFINE_boolean("overwrite", False, "Replace shards an earlier run left in --out.")
    flags.mark_flags_as_required(["mode", "out"])


PROG = "make_tfrecords"


_fail = functools.partial(fail, code=1, prog=PROG)



class _Progress:
    """A console progress line (rewritten in place on a terminal), updated at most twice a second."""

    def __init__(self, total: int, tallies: Mapping[str, records_builder.Tally]):
        self._total, self._tallies, self._done, self._shown = total, tallies, 0, 0.0
        self._tty = sys.stdout.isatty()

    def __call__(self) -> None:
        self._done += 1
        if time.monotonic() - self._shown < 0.5 and self._done < self._total:
            return
        self._shown = time.monotonic()
        written = sum(t.written for t in self._tallies.values())
        skipped = sum(sum(t.skipped.values()) for t in self._tallies.values())
        line = f"{self._done}/{self._total} inputs, {written} records, {skipped} skipped"
        print(f"\r{line}" if self._tty else line, end="" if self._tty and self._done < self._total else "\n",
              flush=True)


def _check_out(out: Path, inputs: list[Path]) -> None:
    """Refuse an --out inside an input folder, or one holding shards of an earlier run."""
    for folder in inputs:
        if out.resolve().is_relative_to(folder.resolve()):
            _fail(f"--out {out} must not be inside the input folder {folder}")
    if not FLAGS.overwrite and any(out.glob("*.tfrecord")):
        _fail(f"--out {out} already holds .tfrecord files; pass --overwrite to replace them")


def _plan() -> tuple[dict, int, splits.Rule]:
    """Check flags and inputs without TensorFlow; returns (input folders by name, input count, split rule)."""
    try:
        rule = splits.parse_rule(FLAGS.split, FLAGS.split_salt)
        if FLAGS.mode == "paired":
            if not FLAGS.input:
                _fail("--mode=paired needs --input (the overlay tool's output folder)")
            folders = {"input": Path(FLAGS.input)}
            total = len(overlay.read_entries(folders["input"]))
        else:
            if not (FLAGS.domain_a and FLAGS.domain_b):
                _fail("--mode=unpaired needs --domain_a and --domain_b")
            folders = {"A": Path(FLAGS.domain_a), "B": Path(FLAGS.domain_b)}
            total = sum(len(records_builder.domain_files(folder)) for folder in folders.values())
    except ValueError as error:  # InputError and bad --split
        _fail(error)
    _check_out(Path(FLAGS.out), list(folders.values()))
    return folders, total, rule


def _build(folders: dict, total: int, rule: splits.Rule) -> tuple[dict, dict]:
    """Write the shards; returns (manifest, report)."""
    # Imported only now: TensorFlow's start-up log lines would bury a one-line error above.
    from tfunmask.data import tfrecords

    options = dict(shards=FLAGS.shards, fractions=rule.fractions, salt=rule.salt, overwrite=FLAGS.overwrite)
    if FLAGS.mode == "paired":
        tally = records_builder.Tally()
        entries = overlay.read_entries(folders["input"])
        records = overlay.read_triples(folders["input"], entries, tally, _Progress(total, {"": tally}))
        manifest = tfrecords.write_paired_shards(records, FLAGS.out, **options)
        return manifest, {"mode": "paired", "input": str(folders["input"]), **tally.as_dict()}
    tallies = {domain: records_builder.Tally() for domain in folders}
    records = records_builder.unpaired_records(
        folders, tallies, size=FLAGS.size, max_faces=FLAGS.max_faces, use_cnn=FLAGS.cnn,
        detector=FLAGS.detector,
        workers=FLAGS.workers, progress=_Progress(total, tallies))
    manifest = tfrecords.write_unpaired_shards(records, FLAGS.out, **options)
    domains = {d: {"folder": str(folders[d]), **tallies[d].as_dict()} for d in folders}
    return manifest, {"mode": "unpaired", "domains": domains}


def _summary(manifest: dict) -> str:
    counts = manifest["counts"]
    if manifest["mode"] == "paired":
        return ", ".join(f"{split} {n}" for split, n in counts.items())
    return "; ".join(f"{d}: " + ", ".join(f"{s} {n}" for s, n in by_split.items()) for d, by_split in counts.items())


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    folders, total, rule = _plan()
    print(f"{PROG}: {FLAGS.mode}, {total} inputs -> {FLAGS.out}", flush=True)
    try:
        manifest, report = _build(folders, total, rule)
    except (records_builder.InputError, OSError) as error:  # includes FileExistsError from the writer
        _fail(error)
    except KeyboardInterrupt:
        _fail("interrupted; partial shards were removed")
    (Path(FLAGS.out) / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{PROG}: wrote {_summary(manifest)} records to {FLAGS.out} (see dataset.json, report.json)")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=flags_parser(PROG, code=1))
