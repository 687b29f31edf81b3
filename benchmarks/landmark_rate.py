"""Measure how often tfunmask.data.faces finds a face with landmarks, and how fast.

Prints the rate (photos with at least one face / photos read), how many photos each detector
(padded HOG, CNN fallback) found, unreadable files, and photos per second for reading plus
detection plus landmarks in one process, by wall clock and by CPU time (steadier on a shared
machine). Usage:

    python benchmarks/landmark_rate.py [--folder DIR] [--limit N] [--no-cnn]

The default folder is the shared `faces/unmasked/` ($TFUNMASK_SHARED_DATA or ../shared/data
beside the repository); files are taken in sorted order, so --limit N gives a fixed sample.
"""
from __future__ import annotations

import argparse
import collections
import os
import time
from pathlib import Path

from tfunmask.data import faces, images

REPO = Path(__file__).resolve().parents[1]


def default_folder() -> Path:
    shared = Path(os.environ.get("TFUNMASK_SHARED_DATA", REPO.parent / "shared" / "data"))
    return shared / "faces" / "unmasked"


def measure(files: list[Path], use_cnn: bool) -> tuple[collections.Counter, float, float]:
    """Per-outcome photo counts ("hog", "cnn", "none", "unreadable", "faces"), wall and CPU seconds."""
    counts: collections.Counter = collections.Counter()
    start, start_cpu = time.perf_counter(), time.process_time()
    for file in files:
        try:
            found = faces.find(images.read_image(file), use_cnn=use_cnn)
        except images.ImageError:
            counts["unreadable"] += 1
            continue
        counts[found[0].detector if found else "none"] += 1
        counts["faces"] += len(found)
    return counts, time.perf_counter() - start, time.process_time() - start_cpu


def report(folder: Path, counts: collections.Counter, seconds: float, cpu_seconds: float) -> None:
    read = counts["hog"] + counts["cnn"] + counts["none"]
    found = counts["hog"] + counts["cnn"]
    print(f"folder:       {folder}")
    print(f"photos:       {read} read, {counts['unreadable']} unreadable")
    print(f"rate:         {found / max(read, 1):.1%} ({found}/{read} photos with >= 1 face; "
          f"{counts['faces']} faces in all)")
    print(f"by detector:  hog {counts['hog']}, cnn {counts['cnn']}, none {counts['none']}")
    total = read + counts["unreadable"]
    print(f"speed:        {total / seconds:.1f} photos/s wall, {total / cpu_seconds:.1f} photos/s of CPU "
          f"({seconds:.1f} s wall, {cpu_seconds:.1f} s CPU for {total}; one process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=default_folder(), help="photos to scan")
    parser.add_argument("--limit", type=int, default=None, help="only the first N files (sorted)")
    parser.add_argument("--no-cnn", action="store_true", help="padded HOG only, no CNN fallback")
    args = parser.parse_args()
    files = images.list_images(args.folder)[:args.limit]
    faces.load_models(use_cnn=not args.no_cnn)  # outside the timing
    report(args.folder, *measure(files, use_cnn=not args.no_cnn))


if __name__ == "__main__":
    main()
