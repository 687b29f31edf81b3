"""Train an unmasking GAN: ``python -m tfunmask.train --model=pix2pix ...``.

With no ``--data`` it trains on the built-in demo set of the model's kind
(procedurally drawn faces: paired with and without masks for Pix2Pix; masked vs
other unmasked faces for CycleGAN/AttentionGAN), built once and cached. The
unpaired models, which cost ~4x Pix2Pix per image, then take ``DEMO_PRESETS``
for every flag not given, so the demo trains in minutes on a CPU; the line
printed and ``config.json`` say what was used. Flags may come from a file with
``--flagfile``. A model flag the chosen model does not take (``--loss`` with
``--model=cyclegan``) is refused. The program turns flags into a ``TrainConfig``,
runs ``tfunmask.training.trainer.train`` and then exports the generator
(``tfunmask.serving``); flags exist only when this module runs as a program.
"""

import sys

from absl import flags

from tfunmask.cli import check_arguments, fail, run_main
from tfunmask.config import (
    ConfigError,
    DataConfig,
    OptimizerConfig,
    RuntimeConfig,
    TrainConfig,
)

FLAGS = flags.FLAGS
# Unpaired models on the demo set (64 px, ~270 faces per domain): ~2 images/s on 2 CPU cores.
DEMO_PRESETS = {"cyclegan": {"filters": 32, "epochs": 4}, "aggan": {"filters": 32, "epochs": 4}}
PROGRESS = {"bar": 1, "epoch": 2, "none": 0}  # Keras' fit verbosity
MODELS = ("pix2pix", "cyclegan", "aggan")
P2P, UNPAIRED, AGGAN = ("pix2pix",), ("cyclegan", "aggan"), ("aggan",)
UNET = ("pix2pix", "aggan")  # the U-Net's own flags: Pix2Pix's generator, AttentionGAN's --backbone=unet
# The model flags: each is a constructor argument of the models named (a test holds this table to
# the constructors' signatures and defaults, so it is written here only to keep TensorFlow from
# loading before the flags are parsed). --seed is a runtime flag that CycleGAN's pools also take.
MODEL_FLAGS = {
    "image_size": (MODELS, 64, "Training crop size (multiple of 16)."),
    "filters": (MODELS, 64, "Width of the first layer of every network."),
    "max_filters": (UNET, 512, "U-Net (Pix2Pix, AttentionGAN --backbone=unet): widest layer; widths double "
                    "from --filters up to this."),
    "dropout": (UNET, 0.5, "U-Net decoder dropout (training only)."),
    "normalization": (UNET, "batch", "U-Net normalisation layers: batch, instance or none."),
    "loss": (P2P, "l1", "Pix2Pix reconstruction loss: l1, cosine_mean or cosine_sum."),
    "lambda_l1": (P2P, 100.0, "Pix2Pix: weight of the reconstruction loss."),
    "mask_weight": (P2P, 1.0, "Pix2Pix: weight of pixels inside the mask map in the reconstruction "
                    "loss (1 = off)."),
    "composite": (P2P, False, "Pix2Pix: also predict the mask map and keep the input outside it."),
    "lambda_mask": (P2P, 10.0, "Pix2Pix --composite: mask-map BCE weight."),
    "segmenter_filters": (P2P, 0, "Pix2Pix --composite: first width of a separate U-Net that predicts the "
                          "mask map; the main U-Net then inpaints the input blanked out where the map is "
                          "(two stages). 0: one U-Net predicts both."),
    "lambda_feature_matching": (P2P, 0.0, "Pix2Pix: weight of pix2pixHD's discriminator feature-matching "
                                "loss (L1 between the PatchGAN's activations on the true and the generated "
                                "face; 0 = off). May be switched on when resuming."),
    "lambda_ssim": (P2P, 0.0, "Pix2Pix: weight of 1 - SSIM between the output and the true face, over the "
                    "mask map (the evaluation's mask-region SSIM; 0 = off). May be switched on when resuming."),
    "resnet_blocks": (UNPAIRED, None, "CycleGAN/AttentionGAN residual blocks (default: 6 up to 128 px, "
                      "9 above)."),
    "pool_size": (UNPAIRED, 50, "CycleGAN/AttentionGAN generated-image history per discriminator "
                  "(0 = none)."),
    "lambda_cycle": (UNPAIRED, 10.0, "CycleGAN/AttentionGAN cycle-consistency weight."),
    "lambda_identity": (UNPAIRED, 0.5, "CycleGAN/AttentionGAN identity weight, times lambda_cycle."),
    "masked_cycle_weight": (UNPAIRED, 1.0, "CycleGAN/AttentionGAN: scale of the masked -> unmasked -> masked "
                            "cycle term only (0 = one-sided cycle: the unmasker need not keep a trace of the "
                            "mask for the inverse generator to redraw it)."),
    "lambda_gan": (UNPAIRED, 1.0, "CycleGAN/AttentionGAN: weight of the generators' adversarial term (the "
                   "whole-image PatchGANs'; below 1 the cycle, identity and pair terms dominate)."),
    "aggan_scheme": (AGGAN, 2, "AttentionGAN scheme: 1 or 2."),
    "backbone": (AGGAN, "resnet", "AttentionGAN generators: resnet (the paper's encoder-decoder) or unet (a "
                 "composite Pix2Pix U-Net, scheme I; G_AB can then --warm_start from a --composite Pix2Pix run)."),
    "attention_masks": (AGGAN, 10, "AttentionGAN scheme II masks n."),
    "lambda_pixel": (AGGAN, 1.0, "AttentionGAN input-output L1 weight."),
    "lambda_tv": (AGGAN, 0.05, "AttentionGAN weight of the attention masks' total variation "
                  "(a per-pixel mean)."),
    "lambda_attention_gan": (AGGAN, 1.0, "AttentionGAN weight of the attention-guided adversarial loss."),
    "lambda_attention_map": (AGGAN, 0.0, "AttentionGAN: weight of the BCE between G_AB's attention and the "
                             "synthetic mask map (and 0 on real unmasked faces); needs --paired_data."),
    "unmasked_attention_weight": (AGGAN, 1.0, "AttentionGAN: scale of the BCE of G_AB's attention against 0 on "
                                  "real unmasked faces, as a fraction of --lambda_attention_map (1: the same "
                                  "weight; 0: that pass is skipped)."),
    "attention_discriminator": (AGGAN, "product", "AttentionGAN: the attention-guided discriminators see the "
                                "image times the gradient-stopped attention (product), times that attention "
                                "dilated by an eighth of the image, so they see the region's surroundings "
                                "(context), or [attention, image] with the attention's gradient kept (concat, "
                                "the paper's)."),
    "lambda_paired": (AGGAN, 0.0, "AttentionGAN: weight of |G_AB(masked) - unmasked|_1 on synthetic pairs; "
                      "needs --paired_data."),
    "warmup_epochs": (AGGAN, 0, "AttentionGAN: first epochs in which only G_AB learns, from the synthetic pairs "
                      "alone (--lambda_paired, --lambda_attention_map): a cheap supervised start before the "
                      "unpaired objective."),
    "discriminator_warmup_epochs": (AGGAN, 0, "AttentionGAN: first epochs in which only the discriminators "
                                    "learn, against the generators as they are (after --warm_start: an adversary "
                                    "that is not random when the generator starts to learn from it)."),
    "generator_ab_trains": (AGGAN, "all", "AttentionGAN: which of G_AB learns: all, or only the layers that "
                            "make its attention (after --warm_start from a paired run: the unpaired terms move "
                            "where it paints, not what)."),
    "upsampling": (MODELS, "auto", "Decoder upsampling: fused (computed at the input resolution, 2.25x fewer "
                   "multiply-adds), plain (resize, then a 3x3 conv) or auto (fused, the faster on every CPU "
                   "measured). The same function, weights and checkpoints either way."),
}
CHOICES = {"loss": ["l1", "cosine_mean", "cosine_sum"], "normalization": ["batch", "instance", "none"],
           "aggan_scheme": ["1", "2"], "upsampling": ["auto", "fused", "plain"],
           "attention_discriminator": ["product", "concat", "context"], "backbone": ["resnet", "unet"],
           "generator_ab_trains": ["all", "attention"]}
OPTIMIZER, DATA, RUNTIME = OptimizerConfig(), DataConfig(), RuntimeConfig()


def _define(name, default, help_text):
    """A flag typed after its default (an enum where CHOICES lists the values)."""
    if name in CHOICES:
        flags.DEFINE_enum(name, str(default), CHOICES[name], help_text)
    elif isinstance(default, bool):
        flags.DEFINE_bool(name, default, help_text)
    elif isinstance(default, float):
        flags.DEFINE_float(name, default, help_text)
    else:
        flags.DEFINE_integer(name, default, help_text)


def model_arguments(model):
    """The flags that are ``model``'s constructor arguments (``seed`` included where it takes it)."""
    return [name for name, (takers, _, _) in MODEL_FLAGS.items() if model in takers] + (
        ["seed"] if model in UNPAIRED else [])


def define_flags():
    """Defines the program's flags (on absl's global FLAGS, once)."""
    flags.DEFINE_enum("model", "pix2pix", list(MODELS), "Which GAN to train.")
    flags.DEFINE_string("data", None, "Folder of TFRecord shards from tools/make_tfrecords.py; "
                        "default: the built-in demo set.")
    flags.DEFINE_string("model_dir", None, "Run folder: checkpoints, config.json, logs/, saved_model/. "
                        "Default runs/<model>.")
    flags.DEFINE_integer("load_size", None, "Resize size before the random crop (default size*286/256).")
    flags.DEFINE_integer("batch_size", DATA.batch_size, "Global batch size, split over replicas.")
    flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (default: one pass over the data).")
    flags.DEFINE_integer("validation_steps", None, "Validation batches scored after each epoch, the same ones "
                         "every epoch (default: the whole val split; 0: no validation).")
    flags.DEFINE_float("mask_variation", DATA.mask_variation, "Pix2Pix (and AttentionGAN's --paired_data): "
                       "probability that a training pair's mask is recoloured (and maybe printed) and its "
                       "photo's light, blur and noise varied, so the model learns masks, not one renderer "
                       "(0: off).")
    flags.DEFINE_float("variation_extras", DATA.variation_extras, "With --mask_variation: probability that "
                       "a recoloured mask gets a random texture instead of its rendered shading (with a hem "
                       "band or dots half the time each) and, independently, that the photo is downscaled "
                       "and JPEG-compressed (0: off).")
    flags.DEFINE_float("bare_faces", DATA.bare_faces, "Pix2Pix (and AttentionGAN's --paired_data): probability "
                       "that a training pair becomes the bare face (the target as input and output, an empty "
                       "mask map), so a model that predicts the mask learns to predict none without one "
                       "(0: off).")
    flags.DEFINE_string("paired_data", None, "AttentionGAN: folder of paired TFRecords (synthetic masked, "
                        "unmasked, mask map) whose pairs guide the attention (--lambda_attention_map, "
                        "--lambda_paired) beside the unpaired --data.")
    flags.DEFINE_integer("epochs", OPTIMIZER.epochs, "Total epochs, including the decay epochs.")
    flags.DEFINE_integer("decay_epochs", None, "Final epochs over which the learning rate decays linearly "
                         "to 0 (default: half of --epochs, rounded down).")
    flags.DEFINE_float("lr", OPTIMIZER.lr, "Adam learning rate of both players.")
    flags.DEFINE_float("beta_1", OPTIMIZER.beta_1, "Adam beta_1.")
    for name, (_, default, help_text) in MODEL_FLAGS.items():
        _define(name, default, help_text)
    flags.DEFINE_enum("mixed_precision", RUNTIME.mixed_precision, ["auto", "none", "bfloat16", "float16"],
                      "auto: float16 on GPU, bfloat16 on CPUs with bf16 instructions, else float32.")
    flags.DEFINE_enum("strategy", RUNTIME.strategy, ["auto", "mirrored", "one_device", "multi_worker"],
                      "auto: MultiWorkerMirroredStrategy when TF_CONFIG names a cluster, else "
                      "MirroredStrategy over all GPUs, else one device.")
    flags.DEFINE_integer("cluster_timeout", RUNTIME.cluster_timeout, "multi_worker: seconds to wait for "
                         "every task TF_CONFIG names before giving up.")
    flags.DEFINE_integer("seed", RUNTIME.seed, "Seed of weights, data order and augmentation.")
    flags.DEFINE_integer("summary_every", RUNTIME.summary_every, "Steps between TensorBoard scalars.")
    flags.DEFINE_integer("image_every", RUNTIME.image_every, "Steps between TensorBoard image grids.")
    flags.DEFINE_string("warm_start", None, "Start the unmasker (Pix2Pix's generator, G_AB of CycleGAN or "
                        "AttentionGAN) from the one of a run folder or an exported SavedModel, matched weight by "
                        "weight (e.g. --model=aggan --backbone=unet from a --composite Pix2Pix run of the same "
                        "widths). Optimizers start afresh; discriminators too, unless --warm_start_discriminators.")
    flags.DEFINE_bool("warm_start_discriminators", RUNTIME.warm_start_discriminators, "With a --warm_start run "
                      "folder of the same model and widths: start the discriminators from its too (a fine-tune "
                      "that keeps its adversary), matched by network name.")
    flags.DEFINE_bool("resume", False, "Continue the run in --model_dir from its last checkpoint.")
    flags.DEFINE_bool("export", RUNTIME.export, "Export the generator as a SavedModel at the end.")
    flags.DEFINE_integer("keep_every", RUNTIME.keep_every, "Also keep every N-th epoch's checkpoint in "
                         "checkpoints/kept/ (never deleted; export and evaluate take --epoch=N); 0: only the "
                         "newest three are kept.", lower_bound=0)
    flags.DEFINE_enum("progress", "auto", ["auto", "bar", "epoch", "none"],
                      "auto: a progress bar on a terminal, one plain line per epoch otherwise (logs, nohup, CI).")


CONFIG_FLAGS = ("model", "data", "model_dir", "load_size", "batch_size", "steps_per_epoch", "validation_steps",
                "mask_variation", "variation_extras", "bare_faces", "paired_data", "epochs", "decay_epochs", "lr",
                "beta_1", "mixed_precision", "strategy", "cluster_timeout", "seed", "summary_every", "image_every",
                "export", "keep_every", "warm_start", "warm_start_discriminators")


def config_from_flags():
    """The TrainConfig the flags describe. A model flag the chosen model does not take is refused.
    With --resume: the run's saved configuration with the flags given on the command line applied
    where that is safe (``TrainConfig.resumed``; each change is printed, and saved by training)."""
    model = FLAGS.model
    values = {name: FLAGS[name].value for name in (*CONFIG_FLAGS, *MODEL_FLAGS)}
    values["aggan_scheme"] = int(values["aggan_scheme"])
    values["model_dir"] = values["model_dir"] or f"runs/{model}"
    given = {name for name in values if FLAGS[name].present}
    foreign = sorted(name for name in given & set(MODEL_FLAGS) if model not in MODEL_FLAGS[name][0])
    if foreign:
        raise ConfigError(f"--model={model} does not take " + ", ".join(
            f"--{name} ({'/'.join(MODEL_FLAGS[name][0])} only)" for name in foreign))
    if FLAGS.resume:
        config, changes = TrainConfig.load(values["model_dir"]).resumed({n: values[n] for n in given})
        for name, (old, new) in changes.items():
            print(f"resuming {config.model_dir} with --{name}={new} (was {old})")
        return config
    if not values["data"]:
        preset = {k: v for k, v in DEMO_PRESETS.get(model, {}).items() if k not in given}
        if preset:
            print(f"training on the built-in demo set with its {model} preset "
                  + ", ".join(f"--{k}={v}" for k, v in preset.items()) + " (flags you give override it)")
        values.update(preset)
    return TrainConfig.from_flags(values, model_arguments(model))


def main(argv):
    check_arguments(argv)
    try:
        config = config_from_flags()  # without TensorFlow: a bad flag is reported before it loads
    except ConfigError as error:
        fail(str(error))
    from tfunmask.serving import exporter
    from tfunmask.training import hardware, trainer

    try:
        warning = hardware.emulated_precision(hardware.resolve_precision(config.runtime))
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        progress = FLAGS.progress if FLAGS.progress != "auto" else "bar" if sys.stdout.isatty() else "epoch"
        model, summary = trainer.train(config, resume=FLAGS.resume, verbose=PROGRESS[progress])
    except ConfigError as error:
        fail(str(error))
    if summary.get("finished_before"):
        print(f"{summary['model_dir']} already finished its {summary['epochs']} epochs: nothing to train "
              f"(resume with --epochs above {summary['epochs']} to train further)")
        return
    rate = summary["images_per_s"]
    done = f"epochs {summary['start_epoch']}..{summary['epochs']}" + (f", {rate:.1f} images/s" if rate else "")
    if not summary["chief"]:  # its run folder holds nothing: the chief wrote the run
        print(f"worker done: {done} (the chief wrote the run folder)")
        return
    print(f"trained {summary['model_dir']}: {done}")
    if config.runtime.export:
        from tfunmask import runs

        path = exporter.export_saved_model(model.export_generator(), runs.Run(config.model_dir).saved_model)
        print(f"SavedModel: {path}")


def run():
    """Console entry point."""
    define_flags()
    run_main(main)


if __name__ == "__main__":
    run()
