"""Export a trained run for serving: ``python -m tfunmask.export --model_dir=RUN``.

Writes a SavedModel (float32, and with float16 kernels), a ``.keras`` file and TFLite files
(float32, float16, dynamic-range int8, full-integer int8) into ``--out`` (default RUN/export),
prints each format's parity against the Keras generator, and exits 1 if any format falls below
its parity threshold.
Thin wrapper over ``tfunmask.serving.exporter.export``.
"""


from absl import flags

from tfunmask.cli import check_arguments, fail, run_main

FLAGS = flags.FLAGS
def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_string("model_dir", None, "Training run folder (config.json and checkpoints/).")
    flags.DEFINE_integer("epoch", None, "Export the checkpoint of this epoch (the newest three and every "
                         "--keep_every-th are on disk; default: the newest).", lower_bound=1)
    flags.DEFINE_string("out", None, "Output folder (default MODEL_DIR/export).")
    flags.DEFINE_string("formats", "all", "Comma-separated: saved_model, saved_model_float16, keras, float32, "
                        "float16, dynamic_int8, int8; or all.")
    flags.DEFINE_string("data", None, "TFRecord folder for calibration and parity faces (default: the run's data).")
    flags.DEFINE_integer("calibration_samples", 32, "Training faces that calibrate full-integer int8.")
    flags.DEFINE_integer("parity_samples", 8, "Held-back faces that parity is measured on.")
    flags.DEFINE_integer("mask_closing", 0, "Composite U-Nets (Pix2Pix, AttentionGAN --backbone=unet): close "
                         "the predicted mask map with a square of this radius in pixels (at the model's size) "
                         "before pasting the content, filling cracks the map leaves inside a mask (0 = the map "
                         "as trained).", lower_bound=0)
    flags.DEFINE_integer("num_threads", None, "TFLite threads for the parity run (default: all CPUs).")


HEADER = f"{'format':<19} {'size':>10} {'max |err|':>9} {'PSNR dB':>8} {'min dB':>7}  result  path"


def row(result):
    """One line of the parity table."""
    parity = result.parity
    return (f"{result.format:<19} {result.size_bytes / 2 ** 20:>7.2f} MB {parity.max_abs_error:>9d} "
            f"{parity.psnr_db:>8.1f} {parity.min_psnr_db:>7.1f}  {'ok' if parity.passed else 'FAILED':<6}  "
            f"{result.path}")


def main(argv):
    check_arguments(argv, "model_dir")
    for name in ("calibration_samples", "parity_samples"):
        if FLAGS[name].value < 1:
            fail(f"--{name} must be positive (got {FLAGS[name].value})")
    from tfunmask.config import ConfigError, TrainConfig

    try:
        TrainConfig.load(FLAGS.model_dir)  # without TensorFlow: a folder that holds no run is reported at once
    except ConfigError as error:
        fail(str(error))
    from tfunmask.serving import exporter

    try:
        formats = exporter.parse_formats(FLAGS.formats)
        print(HEADER, flush=True)
        results = exporter.export(FLAGS.model_dir, FLAGS.out, formats, epoch=FLAGS.epoch, data=FLAGS.data,
                                    calibration_samples=FLAGS.calibration_samples,
                                    parity_samples=FLAGS.parity_samples, num_threads=FLAGS.num_threads,
                                    mask_closing=FLAGS.mask_closing,
                                    on_exported=lambda result: print(row(result), flush=True))
    except (ConfigError, exporter.ExportError) as error:
        fail(str(error))
    failed = [r.format for r in results if not r.parity.passed]
    if failed:
        fail(f"parity below threshold for {', '.join(failed)} (output vs Keras on held-back faces)", code=1)
    print(f"exported {len(results)} format(s); parity within thresholds")


def run():
    """Console entry point."""
    define_flags()
    run_main(main)


if __name__ == "__main__":
    run()
