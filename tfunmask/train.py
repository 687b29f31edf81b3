"""Train an unmasking GAN: ``python -m tfunmask.train --model=pix2pix ...``.

With no ``--data`` it trains on the built-in demo set of the model's kind
(procedurally drawn faces: paired with and without masks for Pix2Pix; masked vs
other unmasked faces for CycleGAN/AttentionGAN), built once and cached. The
unpaired models, which cost ~4x Pix2Pix per image, then take ``DEMO_PRESETS``
for every flag not given, so the demo trains in minutes on a CPU; the line
printed and ``config.json`` say what was used. Flags may come from a file with
``--flagfile``. Thin wrapper over ``tfunmask.training.train``.
"""

import dataclasses
import sys

from absl import flags

from tfunmask.cli import fail, run_main
from tfunmask.config import ConfigError, TrainConfig

DEFAULTS = TrainConfig()
FLAGS = flags.FLAGS
# Unpaired models on the demo set (64 px, ~270 faces per domain): ~2 images/s on 2 CPU cores.
DEMO_PRESETS = {"cyclegan": {"filters": 32, "epochs": 4}, "aggan": {"filters": 32, "epochs": 4}}

flags.DEFINE_enum("model", "pix2pix", ["pix2pix", "cyclegan", "aggan"], "Which GAN to train.")
flags.DEFINE_string("data", None, "Folder of TFRecord shards from tools/make_tfrecords.py; "
                    "default: the built-in demo set.")
flags.DEFINE_string("model_dir", None, "Run folder: checkpoints, config.json, logs/, saved_model/. "
                    "Default runs/<model>.")
flags.DEFINE_integer("image_size", DEFAULTS.image_size, "Training crop size (multiple of 16).")
flags.DEFINE_integer("load_size", None, "Resize size before the random crop (default size*286/256).")
flags.DEFINE_integer("batch_size", DEFAULTS.batch_size, "Global batch size, split over replicas.")
flags.DEFINE_integer("epochs", DEFAULTS.epochs, "Total epochs, including the decay epochs.")
flags.DEFINE_integer("decay_epochs", None,
                     "Final epochs over which the learning rate decays linearly to 0 "
                     "(default: half of --epochs, rounded down).")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (default: one pass over the data).")
flags.DEFINE_float("lr", DEFAULTS.lr, "Adam learning rate of both players.")
flags.DEFINE_float("beta_1", DEFAULTS.beta_1, "Adam beta_1.")
flags.DEFINE_enum("loss", DEFAULTS.loss, ["l1", "cosine_mean", "cosine_sum"],
                  "Pix2Pix reconstruction loss.")
flags.DEFINE_float("lambda_l1", DEFAULTS.lambda_l1, "Weight of the Pix2Pix reconstruction loss.")
flags.DEFINE_float("mask_weight", DEFAULTS.mask_weight,
                   "Pix2Pix: weight of pixels inside the mask map in the reconstruction loss (1 = off).")
flags.DEFINE_bool("composite", DEFAULTS.composite,
                  "Pix2Pix: also predict the mask map and keep the input outside it.")
flags.DEFINE_float("lambda_mask", DEFAULTS.lambda_mask, "Pix2Pix --composite: mask-map BCE weight.")
flags.DEFINE_integer("filters", DEFAULTS.filters, "Width of the first layer of every network.")
flags.DEFINE_integer("max_filters", DEFAULTS.max_filters,
                     "Pix2Pix: widest layer; widths double from --filters up to this.")
flags.DEFINE_enum("normalization", DEFAULTS.normalization, ["batch", "instance", "none"],
                  "Normalisation layers of the Pix2Pix networks.")
flags.DEFINE_float("dropout", DEFAULTS.dropout, "Pix2Pix decoder dropout (training only).")
flags.DEFINE_integer("resnet_blocks", None,
                     "CycleGAN/AttentionGAN residual blocks (default: 6 up to 128 px, 9 above).")
flags.DEFINE_enum("aggan_scheme", str(DEFAULTS.aggan_scheme), ["1", "2"], "AttentionGAN scheme.")
flags.DEFINE_integer("attention_masks", DEFAULTS.attention_masks, "AttentionGAN scheme II masks n.")
flags.DEFINE_float("lambda_cycle", DEFAULTS.lambda_cycle, "Cycle-consistency weight.")
flags.DEFINE_float("lambda_identity", DEFAULTS.lambda_identity, "Identity weight, times lambda_cycle.")
flags.DEFINE_float("lambda_pixel", DEFAULTS.lambda_pixel, "AttentionGAN input-output L1 weight.")
flags.DEFINE_float("lambda_tv", DEFAULTS.lambda_tv,
                   "AttentionGAN weight of the attention masks' total variation (a per-pixel mean).")
flags.DEFINE_float("lambda_attention_gan", DEFAULTS.lambda_attention_gan,
                   "AttentionGAN weight of the attention-guided adversarial loss.")
flags.DEFINE_integer("pool_size", DEFAULTS.pool_size,
                     "CycleGAN/AttentionGAN generated-image history per discriminator (0 = none).")
flags.DEFINE_enum("mixed_precision", DEFAULTS.mixed_precision, ["auto", "none", "bfloat16", "float16"],
                  "auto: float16 on GPU, bfloat16 on CPUs with bf16 instructions, else float32.")
flags.DEFINE_enum("strategy", DEFAULTS.strategy, ["auto", "mirrored", "one_device"],
                  "auto: MirroredStrategy over all GPUs, one device without GPUs.")
flags.DEFINE_integer("seed", DEFAULTS.seed, "Seed of weights, data order and augmentation.")
flags.DEFINE_integer("summary_every", DEFAULTS.summary_every, "Steps between TensorBoard scalars.")
flags.DEFINE_integer("image_every", DEFAULTS.image_every, "Steps between TensorBoard image grids.")
flags.DEFINE_bool("resume", False, "Continue the run in --model_dir from its last checkpoint.")
flags.DEFINE_bool("export", True, "Export the generator as a SavedModel at the end.")
flags.DEFINE_enum("progress", "auto", ["auto", "bar", "epoch", "none"],
                  "auto: a progress bar on a terminal, one plain line per epoch otherwise (logs, nohup, CI).")
PROGRESS = {"bar": 1, "epoch": 2, "none": 0}  # Keras' fit verbosity


def config_from_flags():
    """A TrainConfig holding every flag whose name is a config field; with --resume, the run's
    saved configuration with the flags given on the command line applied where that is safe
    (``TrainConfig.resumed``; each change is printed, and recorded in config.json by training)."""
    values = {f.name: FLAGS[f.name].value for f in dataclasses.fields(TrainConfig) if f.name in FLAGS}
    values["aggan_scheme"] = int(values["aggan_scheme"])
    values["model_dir"] = values["model_dir"] or f"runs/{values['model']}"
    if FLAGS.resume:
        given = {name: value for name, value in values.items() if name in FLAGS and FLAGS[name].present}
        config, changes = TrainConfig.resumed(TrainConfig.load(values["model_dir"]), given)
        for name, (old, new) in changes.items():
            print(f"resuming {config.model_dir} with --{name}={new} (was {old})")
        return config
    if not values["data"]:
        preset = {k: v for k, v in DEMO_PRESETS.get(values["model"], {}).items() if not FLAGS[k].present}
        if preset:
            print(f"training on the built-in demo set with its {values['model']} preset "
                  + ", ".join(f"--{k}={v}" for k, v in preset.items()) + " (flags you give override it)")
        values.update(preset)
    return TrainConfig(**values)


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    from tfunmask import training  # TensorFlow loads only once the flags are good

    try:
        progress = FLAGS.progress if FLAGS.progress != "auto" else "bar" if sys.stdout.isatty() else "epoch"
        _, summary = training.train(config_from_flags(), resume=FLAGS.resume, verbose=PROGRESS[progress])
    except ConfigError as error:
        fail(str(error))
    if summary.get("finished_before"):
        print(f"{summary['model_dir']} already finished its {summary['epochs']} epochs: nothing to train "
              f"(resume with --epochs above {summary['epochs']} to train further)")
        return
    rate = summary["images_per_s"]
    print(f"trained {summary['model_dir']}: epochs {summary['start_epoch']}..{summary['epochs']}"
          + (f", {rate:.1f} images/s" if rate else ""))
    if "saved_model" in summary:
        print(f"SavedModel: {summary['saved_model']}")


def run():
    """Console entry point."""
    run_main(main)


if __name__ == "__main__":
    run()
