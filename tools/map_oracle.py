"""Does a composite Pix2Pix lose in the mask region by its map or by its content?

    python tools/map_oracle.py --run=runs/v2 --data=MESH256 --data=IMAGE256 --split=test

For each paired folder, scores the run's content image composited by its own predicted mask map
and by the true mask map (`tfunmask.evaluation.mask_map.composites`), at the model's size: equal
mask-region PSNR means a better map would not help there, and a better inpainter would. Also
prints the map's IoU with the true maps. Needs a training run folder (the exported generator
keeps its content image inside).
"""

import numpy as np
from absl import flags

from tfunmask.cli import check_arguments, fail, run_main

FLAGS = flags.FLAGS


def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_string("run", None, "Training run folder of a --composite Pix2Pix.")
    flags.DEFINE_integer("epoch", None, "Checkpoint epoch (default: the newest).", lower_bound=1)
    flags.DEFINE_multi_string("data", None, "Paired data folder(s): overlay output or TFRecord shards.")
    flags.DEFINE_enum("split", "test", ["train", "val", "test", "all"], "Which pairs to score.")
    flags.mark_flags_as_required(["run", "data"])


def main(argv):
    check_arguments(argv)
    from tfunmask import pixels, runs
    from tfunmask.config import ConfigError
    from tfunmask.evaluation import image, mask_map, suite

    try:
        model, config = runs.restore(FLAGS.run, FLAGS.epoch)
    except ConfigError as error:
        fail(str(error))
    if not config.model.get("composite"):
        fail(f"{FLAGS.run} is not a --composite Pix2Pix run: it predicts no mask map")
    size = config.model["image_size"]
    print("| data | pairs | map IoU | mask PSNR, predicted map | mask PSNR, true map | whole PSNR, predicted | whole PSNR, true |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for folder in FLAGS.data:
        try:
            pairs = suite.load_pairs(folder, size, split=FLAGS.split)
        except suite.EvaluationError as error:
            fail(str(error))
        masked = pixels.to_unit(pairs.masked).numpy()
        out = model.generator.predict(masked, batch_size=16, verbose=0)
        pasted = {name: pixels.to_uint8(image_).numpy() for name, image_ in
                  mask_map.composites(masked, out["content"], out["mask"], pairs.mask_map).items()}
        scores = {name: (np.mean(image.masked_psnr(p, pairs.target, pairs.mask_map)),
                         np.mean(image.psnr(p, pairs.target))) for name, p in pasted.items()}
        iou = mask_map.iou(out["mask"][..., 0], pairs.mask_map)
        (mp, wp), (mt, wt) = scores["predicted map"], scores["true map"]
        print(f"| {folder} | {len(pairs.ids)} | {iou:.3f} | {mp:.2f} | {mt:.2f} | {wp:.2f} | {wt:.2f} |")


if __name__ == "__main__":
    define_flags()
    run_main(main)
