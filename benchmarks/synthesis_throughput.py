"""Synthesis throughput: faces/s from photos to paired TFRecords, local tools against Beam.

    python benchmarks/synthesis_throughput.py [--faces ../shared/data/faces/unmasked] [--limit 40]
        [--workers 2] [--size 256] [--nocnn]

Times the same work three ways over the first ``--limit`` photos: the local tools
(``overlay.overlay_folder`` then ``tfrecords.write_paired_shards``, what tools/overlay_masks.py and
tools/make_tfrecords.py run) with 1 and ``--workers`` processes, and the Beam pipeline
(tools/synthesize.py; needs the beam extra) on the DirectRunner with ``--workers`` processes,
start-up of its worker processes included. Prints faces/s for each.
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

from absl import app, flags

from tfunmask import startup
from tfunmask.data.tally import Tally
from tfunmask.synth import overlay

REPO = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS


def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_string("faces", str(REPO.parent / "shared" / "data" / "faces" / "unmasked"),
                        "Folder of face photos.")
    flags.DEFINE_integer("limit", 40, "Photos to synthesize from.", lower_bound=1)
    flags.DEFINE_integer("size", 256, "Aligned crop size.", lower_bound=32)
    flags.DEFINE_integer("workers", 2, "Processes of the second local run and of the Beam run.", lower_bound=1)
    flags.DEFINE_boolean("cnn", True, "Let the finder end with dlib's CNN detector (slow on CPU).")


def subset(folder, limit, work):
    """Copies of the first ``limit`` photos of ``folder`` (sorted), in ``work/photos``."""
    photos = work / "photos"
    photos.mkdir()
    for path in sorted(Path(folder).iterdir())[:limit]:
        shutil.copy(path, photos / path.name)
    return photos


def time_local(photos, work, workers, write_shards):
    """(faces, seconds) of the overlay tool then the paired TFRecord writer (`write_shards`)."""
    start = time.perf_counter()
    report = overlay.overlay_folder(photos, work / f"overlay{workers}", size=FLAGS.size, workers=workers,
                                    use_cnn=FLAGS.cnn, progress=False)
    folder = work / f"overlay{workers}"
    write_shards(overlay.read_triples(folder, overlay.read_entries(folder), Tally()), work / f"local{workers}")
    return report["faces_written"], time.perf_counter() - start


def time_beam(photos, work, workers, _):
    """(faces, seconds) of the Beam pipeline on the DirectRunner with ``workers`` processes."""
    from tfunmask.synth import beam_pipeline  # the beam extra: only when this runs

    start = time.perf_counter()
    _, report = beam_pipeline.synthesize_records(
        photos, work / "beam", size=FLAGS.size, use_cnn=FLAGS.cnn,
        beam_args=["--runner=DirectRunner", f"--direct_num_workers={workers}",
                   "--direct_running_mode=multi_processing"])
    return report["faces_written"], time.perf_counter() - start


def main(_):
    # TensorFlow loads here, not inside the first timing
    from tfunmask.data import tfrecords

    work = Path(tempfile.mkdtemp(prefix="tfunmask-synth-bench-"))
    try:
        photos = subset(FLAGS.faces, FLAGS.limit, work)
        print(f"{FLAGS.limit} photos from {FLAGS.faces}, crops {FLAGS.size} px, {os.cpu_count()} CPUs")
        runs = [(f"local tools, {w} worker(s)", time_local, w) for w in sorted({1, FLAGS.workers})]
        runs.append((f"Beam DirectRunner, {FLAGS.workers} worker(s)", time_beam, FLAGS.workers))
        for name, run, workers in runs:
            faces, seconds = run(photos, work, workers, tfrecords.write_paired_shards)
            print(f"{name:32s} {faces:4d} faces in {seconds:6.1f} s = {faces / seconds:5.2f} faces/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    define_flags()
    startup.load_tensorflow()
    app.run(main)
