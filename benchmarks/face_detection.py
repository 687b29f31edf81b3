"""How often, and how fast, each face finder of tfunmask.data.faces finds a face.

For each folder and each detector ("blazeface", "dlib" = padded HOG then CNN, "cascade" =
BlazeFace then dlib's two) prints: the share of photos with at least one plausible face, faces
per photo, which stage of the finder found them, and CPU seconds per photo for detection plus
landmarks (each photo is read once and given to every detector in turn, so the timings share
the machine's state). Optionally draws a contact sheet of the cascade's faces (box, eyes, the
stage that found it) for judging false faces by eye. Usage:

    python benchmarks/face_detection.py [--folders masked_real,unmasked] [--limit N]
        [--detectors blazeface,dlib,cascade] [--sheet docs/face_detection_sheet.jpg --sheet_count 48]

Folders are names under the shared `faces/` ($TFUNMASK_SHARED_DATA or ../shared/data beside the
repository) or paths; files are taken in sorted order, so --limit N gives a fixed sample.
"""
from __future__ import annotations

import argparse
import collections
import os
import time
from pathlib import Path

import cv2
import numpy as np

from tfunmask.data import faces, images

REPO = Path(__file__).resolve().parents[1]
COLOURS = {"blazeface": (40, 200, 40), "hog": (40, 120, 255), "cnn": (255, 160, 0)}


def folder_path(name: str) -> Path:
    if Path(name).is_dir():
        return Path(name)
    return Path(os.environ.get("TFUNMASK_SHARED_DATA", REPO.parent / "shared" / "data")) / "faces" / name


def measure(files: list[Path], detectors: list[str]) -> tuple[dict, dict]:
    """Per detector: Counter of outcomes and CPU seconds; and the cascade's faces per file."""
    counts = {d: collections.Counter() for d in detectors}
    seconds = dict.fromkeys(detectors, 0.0)
    found_by_file = {}
    for file in files:
        try:
            image = images.read_image(file)
        except images.ImageError as error:
            for d in detectors:
                counts[d][f"unreadable:{error.reason}"] += 1
            continue
        for d in detectors:
            start = time.process_time()
            found = faces.find(image, detector=d)
            seconds[d] += time.process_time() - start
            counts[d]["read"] += 1
            counts[d]["with_face"] += bool(found)
            counts[d]["faces"] += len(found)
            counts[d][f"by:{found[0].detector}" if found else "by:none"] += 1
            if d == detectors[-1]:
                found_by_file[file] = (image, found)
    return {d: (counts[d], seconds[d]) for d in detectors}, found_by_file


def contact_sheet(found_by_file: dict, count: int, tile: int = 192) -> np.ndarray:
    """Up to `count` photos (evenly spaced through the list) as tiles with every found face drawn."""
    items = list(found_by_file.items())
    chosen = [items[i] for i in np.linspace(0, len(items) - 1, min(count, len(items))).astype(int)]
    tiles = []
    for file, (image, found) in chosen:
        scale = tile / max(image.shape[:2])
        small = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        canvas = np.full((tile, tile, 3), 255, np.uint8)
        canvas[:small.shape[0], :small.shape[1]] = small
        for face in found:
            colour = COLOURS[face.detector]
            box = np.rint(np.asarray(face.box) * scale).astype(int)
            cv2.rectangle(canvas, tuple(box[:2]), tuple(box[2:]), colour, 2)
            for eye in (face.landmarks[36:42].mean(0), face.landmarks[42:48].mean(0)):
                cv2.circle(canvas, tuple(np.rint(eye * scale).astype(int)), 2, colour, -1)
        label = f"{file.name[:10]} {found[0].detector if found else 'none'} x{len(found)}"
        cv2.putText(canvas, label, (3, tile - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(canvas)
    columns = 8
    while len(tiles) % columns:
        tiles.append(np.full((tile, tile, 3), 255, np.uint8))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", default="masked_real,unmasked")
    parser.add_argument("--detectors", default="blazeface,dlib,cascade", help="the last one draws the sheet")
    parser.add_argument("--limit", type=int, default=None, help="only the first N files of each folder (sorted)")
    parser.add_argument("--sheet", type=Path, default=None, help="contact sheet of the first folder (JPEG/PNG)")
    parser.add_argument("--sheet_count", type=int, default=48)
    args = parser.parse_args()
    detectors = args.detectors.split(",")
    for d in detectors:
        faces.load_models(detector=d)  # outside the timing
    for index, name in enumerate(args.folders.split(",")):
        files = images.list_images(folder_path(name))[:args.limit]
        results, found_by_file = measure(files, detectors)
        print(f"{name}: {len(files)} files")
        for d, (counts, seconds) in results.items():
            read = counts["read"]
            stages = ", ".join(f"{k[3:]} {v}" for k, v in sorted(counts.items()) if k.startswith("by:"))
            skipped = ", ".join(f"{k[11:]} {v}" for k, v in sorted(counts.items()) if k.startswith("unreadable:"))
            print(f"  {d:>9}: {counts['with_face'] / max(read, 1):6.1%} with a face ({counts['with_face']}/{read}), "
                  f"{counts['faces'] / max(read, 1):.2f} faces/photo, {seconds / max(read, 1):.3f} CPU s/photo; "
                  f"first face by {stages}" + (f"; unreadable {skipped}" if skipped else ""), flush=True)
        if args.sheet and index == 0:
            images.write_image(args.sheet, contact_sheet(found_by_file, args.sheet_count))
            print(f"  contact sheet of {detectors[-1]}: {args.sheet}")


if __name__ == "__main__":
    main()
