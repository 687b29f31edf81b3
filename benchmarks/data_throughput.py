"""Data throughput: overlay faces/s on real photos and tf.data pipeline images/s.

    python benchmarks/data_throughput.py [--faces ../shared/data/faces/unmasked] [--limit 200]

1. Runs the mask-overlay tool (detection, landmarks, alignment, rendering, PNG
   writing) over the first ``--limit`` photos, with 1 and ``--workers`` processes.
2. Writes its output as paired TFRecords and times ``pipeline.paired`` in
   training mode (decode, resize, random crop, flip, batch) over them for
   ``--epochs`` passes, after one warm-up pass: plain, with ``mask_variation=0.5``
   and with ``variation_extras=0.5`` on top, each as a ratio to plain (one run).
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

from tfunmask import startup  # noqa: E402

startup.load_tensorflow()  # before anything imports TensorFlow: no native start-up lines

from absl import app, flags  # noqa: E402

from tfunmask.data import tfrecords  # noqa: E402
from tfunmask.data.tally import Tally
from tfunmask.synth import overlay

REPO = Path(__file__).resolve().parents[1]
def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_string("faces", str(REPO.parent / "shared" / "data" / "faces" / "unmasked"),
                        "Folder of face photos.")
    flags.DEFINE_integer("limit", 200, "Photos to overlay.")
    flags.DEFINE_integer("size", 256, "Aligned crop size.")
    flags.DEFINE_integer("workers", 2, "Worker processes for the second overlay run.")
    flags.DEFINE_integer("image_size", 256, "Pipeline crop size (load size = size * 286 / 256).")
    flags.DEFINE_integer("batch_size", 8, "Pipeline batch size.")
    flags.DEFINE_integer("epochs", 3, "Timed pipeline passes.")


FLAGS = flags.FLAGS


def subset(folder, limit, work):
    """Symlinks to the first ``limit`` photos of ``folder`` (sorted), in ``work/photos``."""
    photos = work / "photos"
    photos.mkdir()
    for path in sorted(Path(folder).iterdir())[:limit]:
        (photos / path.name).symlink_to(path.resolve())
    return photos


def time_overlay(photos, out, workers):
    start = time.perf_counter()
    report = overlay.overlay_folder(photos, out, size=FLAGS.size, workers=workers, progress=False)
    return report, time.perf_counter() - start


VARIATIONS = {"plain": {}, "mask_variation=0.5": dict(probability=0.5),
              "+ variation_extras=0.5": dict(probability=0.5, extras=0.5)}


def time_pipeline(files, **variation):
    import tensorflow as tf  # noqa: F401  (imported late: the overlay workers fork without it)

    from tfunmask.data import pipeline
    from tfunmask.data.variation import Variation

    load = int(round(FLAGS.image_size * 286 / 256))
    make = lambda seed: pipeline.paired(files, image_size=FLAGS.image_size, load_size=load,  # noqa: E731
                                        batch_size=FLAGS.batch_size, seed=seed,
                                        variation=Variation(**variation))
    for _ in make(0):
        pass
    start, count = time.perf_counter(), 0
    for epoch in range(FLAGS.epochs):
        for batch in make(epoch + 1):
            count += int(batch["masked"].shape[0])
    return count, time.perf_counter() - start


def main(_):
    work = Path(tempfile.mkdtemp(prefix="tfunmask-bench-"))
    try:
        photos = subset(FLAGS.faces, FLAGS.limit, work)
        print(f"{FLAGS.limit} photos from {FLAGS.faces}, crops {FLAGS.size} px, {os.cpu_count()} CPUs")
        for workers in sorted({1, FLAGS.workers}):
            report, seconds = time_overlay(photos, work / f"overlay{workers}", workers)
            print(f"overlay, {workers} worker(s): {report['faces_written']} faces in {seconds:.1f} s = "
                  f"{report['faces_written'] / seconds:.2f} faces/s ({report['seen'] / seconds:.2f} photos/s; "
                  f"skipped {report['skipped']})", flush=True)
        entries = overlay.read_entries(work / "overlay1")
        records = overlay.read_triples(work / "overlay1", entries, Tally())
        tfrecords.write_paired_shards(records, work / "records", shards=4, fractions=(1.0, 0.0, 0.0))
        plain = None
        for name, variation in VARIATIONS.items():
            count, seconds = time_pipeline(tfrecords.paired_files(work / "records", "train"), **variation)
            plain = plain or count / seconds
            print(f"pipeline.paired (train mode, {FLAGS.image_size} px, batch {FLAGS.batch_size}, {name}): "
                  f"{count} images in {seconds:.1f} s = {count / seconds:.1f} images/s "
                  f"({count / seconds / plain:.2f}x plain)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
