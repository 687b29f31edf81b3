"""Contact sheet of whole photos through the photo path: each photo beside its unmasked version.

    python tools/photo_sheet.py --model savedmodels/unmask-pix2pix-composite-256-v7 \
        --photos ../shared/data/faces/masked_real --count 24 --out docs/photo_sheet.jpg

Takes --count photos spread evenly over the sorted folder (so the sheet is not one corner of it),
unmasks every face in each with `tfunmask.load(--model).unmask`, and shows the photo with the
blended regions outlined in green beside the result, each letterboxed into a square cell. Photos
that cannot be read or have no face are shown too, labelled as such, and counted.
"""

from collections import Counter

import cv2
import numpy as np
from absl import flags

from tfunmask.cli import check_arguments, fail, run_main


def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_string("model", None, "Exported generator: SavedModel or run folder, .tflite or .keras.")
    flags.DEFINE_string("photos", None, "Folder of photos (only read).")
    flags.DEFINE_integer("count", 24, "Photos on the sheet.", lower_bound=1)
    flags.DEFINE_integer("cell", 256, "Side of each square cell in pixels.", lower_bound=64)
    flags.DEFINE_string("out", None, "Image file to write (.jpg or .png).")


FLAGS = flags.FLAGS


def spread(items, count):
    """`count` items spread evenly over `items` (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)] if count > 1 else [items[0]]


def letterboxed(image, cell):
    """`image` scaled to fit a white `cell` x `cell` square, centred."""
    height, width = image.shape[:2]
    scale = cell / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    square = np.full((cell, cell, 3), 255, np.uint8)
    top, left = (cell - size[1]) // 2, (cell - size[0]) // 2
    square[top:top + size[1], left:left + size[0]] = resized
    return square


def outlined(image, result):
    """A copy of the photo with each face's blended region drawn in green (photo pixels)."""
    drawn = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 300))
    for face in result.faces:
        contours, _ = cv2.findContours(face.region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        back = cv2.invertAffineTransform(face.matrix)
        for contour in contours:
            points = cv2.transform(contour.astype(np.float32), back).astype(np.int32)
            cv2.polylines(drawn, [points], True, (0, 220, 0), thickness, cv2.LINE_AA)
    return drawn


def sheet_columns(unmasker, paths, cell):
    """{"photo": cells, "unmasked": cells} for `paths`, and the counts (faces, skip reasons)."""
    from tfunmask.data import images

    left, right, counts = [], [], Counter()
    for path in paths:
        try:
            photo = images.read_image(path)
        except images.ImageError as error:
            counts[f"skipped: {error.reason}"] += 1
            blank = np.full((cell, cell, 3), 230, np.uint8)
            cv2.putText(blank, error.reason, (8, cell // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 160), 1)
            left.append(blank)
            right.append(blank)
            continue
        result = unmasker.unmask(photo)
        counts["photos"] += 1
        counts["faces"] += len(result.faces)
        counts["photos without a face"] += not result.faces
        left.append(letterboxed(outlined(photo, result), cell))
        right.append(letterboxed(result.image, cell))
    return {"photo": np.stack(left), "unmasked": np.stack(right)}, counts


def main(argv):
    check_arguments(argv, "model", "photos", "out")
    from tfunmask.data import images
    from tfunmask.evaluation import report
    from tfunmask.inference import photos
    from tfunmask.inference.generators import ModelError

    try:
        paths = spread(images.list_images([FLAGS.photos]), FLAGS.count)
    except FileNotFoundError as error:
        fail(f"--photos {error}")
    if not paths:
        fail(f"no files in --photos {FLAGS.photos}")
    try:
        unmasker = photos.load(FLAGS.model)
    except ModelError as error:
        fail(f"--model {error}")
    columns, counts = sheet_columns(unmasker, paths, FLAGS.cell)
    report.contact_sheet(columns, FLAGS.out, count=len(paths), per_row=3)
    print(f"{len(paths)} files: " + ", ".join(f"{key} {value}" for key, value in counts.items()))
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    define_flags()
    run_main(main)
