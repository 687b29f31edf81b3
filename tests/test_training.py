"""The training library: resume exactness, run-folder rules, TensorBoard, export."""

import json
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests.training_helpers import run_script
from tfunmask.config import ConfigError, TrainConfig
from tfunmask.data.images import read_image
from tfunmask.training import trainer


def tiny_config(data=None, model_dir=None, **overrides):
    """A tiny run's config; one validation batch an epoch keeps the pass without its cost (an eager
    validation step costs as much as a training step)."""
    values = dict(model="pix2pix", data=str(data), model_dir=str(model_dir), image_size=32, batch_size=4,
                  epochs=2, decay_epochs=1, steps_per_epoch=3, validation_steps=1, filters=8, mixed_precision="none",
                  strategy="one_device", export=False, summary_every=1, image_every=2)
    values.update(overrides)
    return TrainConfig.create(**values)


def all_weights(model):
    return [v.numpy() for v in model.weights]


RESUME_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    stage, data, tmp = sys.argv[1:4]
    from tests.test_training import all_weights, tiny_config
    from tests.training_helpers import Crash, CrashAfterFirstEpoch
    from tfunmask.training import trainer
    # No validation pass: it changes no state, and each would be another traced step.
    options = dict(dropout=0.5, validation_steps=0)
    config = tiny_config(data, tmp + "/resumed", **options)
    if stage == "crash":
        straight, _ = trainer.train(tiny_config(data, tmp + "/straight", **options), verbose=0)
        np.savez(tmp + "/straight.npz", *all_weights(straight))
        try:
            trainer.train(config, verbose=0, callbacks=[CrashAfterFirstEpoch()])
        except Crash:
            pass
    else:
        resumed, summary = trainer.train(config, resume=True, verbose=0)
        with np.load(tmp + "/straight.npz") as saved:
            straight = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        diffs = np.concatenate([np.abs(a - b).ravel() for a, b in zip(straight, all_weights(resumed))])
        print(json.dumps({"start_epoch": summary["start_epoch"], "max": float(diffs.max()),
                          "moved": float((diffs > 1e-5).mean()), "steps": int(resumed.g_optimizer.iterations),
                          "lr": float(resumed.g_optimizer.learning_rate)}))
""")


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_paired_data, tmp_path):
    """Data order, learning rate, optimizer state and dropout masks across a crash and a
    --resume in a new process (as after a real crash), dropout on."""
    run_script(RESUME_SCRIPT, "crash", tiny_paired_data, tmp_path)
    report = run_script(RESUME_SCRIPT, "resume", tiny_paired_data, tmp_path)
    assert report["start_epoch"] == 1
    assert report["steps"] == 6
    assert report["lr"] == pytest.approx(0.0, abs=1e-12)  # decayed to 0 at the end
    # Bit-identical in every run so far. The tolerance leaves room for multi-threaded CPU kernels
    # that differ in the last bit (Adam turns that into up to +-lr per step for a weight whose
    # gradient is near zero); a real resume bug (data order, learning rate or dropout masks not
    # restored) moved ~70 % of the weights by up to 0.04.
    assert report["max"] < 2e-3, report
    assert report["moved"] < 0.01, report


def test_dropout_seed_state_is_checkpointed(tmp_path):
    from tfunmask.models.pix2pix import Pix2Pix

    model = Pix2Pix(32, filters=8, dropout=0.5)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    checkpoint = tf.train.Checkpoint(random_state=model.random_state)
    path = checkpoint.write(str(tmp_path / "rng"))
    first = model.generator(images, training=True).numpy()
    assert not np.array_equal(first, model.generator(images, training=True).numpy())
    checkpoint.read(path).assert_consumed()
    np.testing.assert_array_equal(first, model.generator(images, training=True).numpy())


@pytest.mark.usefixtures("eager_steps")
def test_resume_with_other_architecture_fails_clearly(tiny_paired_data, tmp_path):
    trainer.train(tiny_config(tiny_paired_data, tmp_path, epochs=1, decay_epochs=0), verbose=0)
    other = tiny_config(tiny_paired_data, tmp_path, epochs=2, filters=16)
    with pytest.raises(ConfigError, match=r"filters=16 \(checkpoint has 8\)"):
        trainer.train(other, resume=True, verbose=0)


@pytest.mark.usefixtures("eager_steps")
def test_run_folder_rules(tiny_paired_data, tmp_path):
    with pytest.raises(ConfigError, match="--resume: no checkpoint"):
        trainer.train(tiny_config(tiny_paired_data, tmp_path / "empty"), resume=True, verbose=0)
    config = tiny_config(tiny_paired_data, tmp_path / "run", epochs=1, decay_epochs=0)
    trainer.train(config, verbose=0)
    with pytest.raises(ConfigError, match="already holds a run"):
        trainer.train(config, verbose=0)
    assert TrainConfig.load(tmp_path / "run") == config  # as resolved: precision, replicas, model arguments
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["runtime"]["precision"] == "float32" and saved["runtime"]["replicas"] == 1


@pytest.mark.usefixtures("eager_steps")
def test_validation_scores_the_first_validation_steps_batches_or_none(tiny_paired_data, tmp_path):
    """After each epoch: the whole val split by default, its first N batches with
    --validation_steps=N, nothing with 0; a negative count is refused; a resume may change it."""
    import keras

    scored = []

    class CountValidationBatches(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            scored.append(0)

        def on_test_batch_end(self, batch, logs=None):
            scored[-1] += 1

    val_pairs = json.loads((tiny_paired_data / "dataset.json").read_text())["counts"]["val"]
    assert val_pairs > 4  # the whole split is more than one batch
    for steps, expected in ((None, [-(-val_pairs // 4)] * 2), (1, [1, 1]), (0, [])):
        scored.clear()
        config = tiny_config(tiny_paired_data, tmp_path / f"run{steps}", steps_per_epoch=1, validation_steps=steps)
        _, summary = trainer.train(config, verbose=0, callbacks=[CountValidationBatches()])
        assert scored == expected, (steps, scored)
        assert ("val_g_loss" in summary["metrics"]) == bool(expected), summary["metrics"]
    resumed, changes = TrainConfig.load(tmp_path / "run0").resumed({"validation_steps": 2, "epochs": 3})
    assert resumed.data.validation_steps == 2 and changes["validation_steps"] == (0, 2)
    with pytest.raises(ConfigError, match="--validation_steps must be 0"):
        tiny_config(tiny_paired_data, tmp_path / "bad", validation_steps=-1).validate()


@pytest.mark.usefixtures("eager_steps")
def test_precision_belongs_to_the_model_and_a_resume_keeps_it(tiny_paired_data, tmp_path):
    """bfloat16 is the model's own policy, recorded resolved in config.json; the global Keras policy
    is left alone; resuming keeps the saved precision and refuses to change it."""
    import keras

    before = keras.mixed_precision.global_policy().name
    config = tiny_config(tiny_paired_data, tmp_path, epochs=1, decay_epochs=0, mixed_precision="bfloat16")
    model, summary = trainer.train(config, verbose=0)
    assert model.dtype_policy.name == "mixed_bfloat16" and summary["precision"] == "mixed_bfloat16"
    assert model.generator.get_layer("down1_conv").compute_dtype == "bfloat16"
    assert keras.mixed_precision.global_policy().name == before
    assert TrainConfig.load(tmp_path).runtime.precision == "mixed_bfloat16"
    assert TrainConfig.load(tmp_path).runtime.upsampling == summary["upsampling"] == "fused"  # --upsampling=auto
    resumed = tiny_config(tiny_paired_data, tmp_path, epochs=2, decay_epochs=0, mixed_precision="bfloat16")
    model, summary = trainer.train(resumed, resume=True, verbose=0)
    assert summary["start_epoch"] == 1 and model.dtype_policy.name == "mixed_bfloat16"
    other = tiny_config(tiny_paired_data, tmp_path, epochs=3, decay_epochs=0, mixed_precision="none")
    with pytest.raises(ConfigError, match="trained with --mixed_precision=bfloat16, not none"):
        trainer.train(other, resume=True, verbose=0)


@pytest.mark.parametrize("bf16, fp16", [(False, False), (True, False), (False, True), (True, True)])
def test_a_16_bit_float_that_the_cpu_would_emulate_is_warned_about(monkeypatch, bf16, fp16):
    """An explicit bfloat16 or float16 on a CPU without instructions for it (and no GPU) runs
    emulated, several times slower: the training command says so, and names what auto picks; with
    the instructions, in float32, or beside a GPU it does not."""
    from tfunmask import cpu
    from tfunmask.training import hardware

    gpus = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus)
    monkeypatch.setattr(cpu, "has_bf16", lambda: bf16)
    monkeypatch.setattr(cpu, "has_fp16", lambda: fp16)
    auto = hardware.precision_policy("auto")
    assert auto == ("mixed_bfloat16" if bf16 else "float32") and hardware.emulated_precision(auto) is None
    assert hardware.emulated_precision("float32") is None
    bfloat16, float16 = hardware.emulated_precision("mixed_bfloat16"), hardware.emulated_precision("mixed_float16")
    assert (bfloat16 is None) == bf16 and (float16 is None) == fp16
    if not bf16:
        assert bfloat16.startswith("bfloat16 on a CPU without bf16 instructions") and "picks float32" in bfloat16
    if not fp16:
        assert float16.startswith("float16 on a CPU without float16 instructions")
        assert float16.endswith(f"picks {'bfloat16' if bf16 else 'float32'} here")
    gpus.append("GPU:0")
    assert hardware.emulated_precision("mixed_bfloat16") is hardware.emulated_precision("mixed_float16") is None


def test_missing_data_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match="no paired training shards"):
        trainer.train(tiny_config(tmp_path, tmp_path / "run"), verbose=0)


@pytest.mark.usefixtures("eager_steps")
def test_paired_data_guides_an_attentiongan(tiny_unpaired_data, tiny_paired_data, tmp_path):
    """--paired_data feeds synthetic pairs beside the unpaired batches (varied too, if asked): a
    warm-up epoch on the pairs alone, then the full objective (the trainer retraces the step), whose
    guide terms are trained and logged; config.json records the folder, and the rules around it
    are one-line errors."""
    guided = dict(model="aggan", data=tiny_unpaired_data, filters=4, resnet_blocks=1, attention_masks=2,
                  lambda_attention_gan=0.0,  # the guide terms only: no attention-guided pair to trace
                  epochs=1, decay_epochs=0, steps_per_epoch=2, batch_size=2)
    model, summary = trainer.train(tiny_config(model_dir=tmp_path / "run", paired_data=str(tiny_paired_data),
                                               lambda_attention_map=10.0, lambda_paired=1.0, mask_variation=0.5,
                                               **{**guided, "epochs": 2, "warmup_epochs": 1}), verbose=0)
    metrics = summary["metrics"]  # the last epoch's: the full objective
    assert all(np.isfinite(metrics[name]) and metrics[name] > 0
               for name in ("attention_map", "attention_unmasked", "paired", "val_attention_map", "cycle",
                            "val_cycle")), metrics
    assert model.phase == "full" and int(model.g_optimizer.iterations) == int(model.d_optimizer.iterations) == 4
    saved = TrainConfig.load(tmp_path / "run")
    assert saved.data.paired_path == str(tiny_paired_data) and saved.model["lambda_attention_map"] == 10.0
    with pytest.raises(ConfigError, match="need synthetic pairs: give --paired_data"):
        trainer.train(tiny_config(model_dir=tmp_path / "b", lambda_paired=1.0, **guided), verbose=0)
    with pytest.raises(ConfigError, match="only --model=aggan takes it"):
        tiny_config(tiny_paired_data, tmp_path / "c", paired_data=str(tiny_paired_data)).validate()
    with pytest.raises(ConfigError, match="--mask_variation varies paired data"):
        tiny_config(model_dir=tmp_path / "d", mask_variation=0.5, **guided).validate()
    with pytest.raises(ConfigError, match="--variation_extras adds to --mask_variation"):
        tiny_config(tiny_paired_data, tmp_path / "d", variation_extras=0.5).validate()
    with pytest.raises(ConfigError, match=r"--variation_extras must be a probability in \[0, 1\] \(got 2.0\)"):
        tiny_config(tiny_paired_data, tmp_path / "d", mask_variation=0.5, variation_extras=2.0).validate()
    with pytest.raises(ConfigError, match=r"--bare_faces must be a probability in \[0, 1\] \(got -1.0\)"):
        tiny_config(tiny_paired_data, tmp_path / "d", bare_faces=-1.0).validate()
    with pytest.raises(ConfigError, match="--bare_faces varies paired data"):
        tiny_config(model_dir=tmp_path / "d", bare_faces=0.5, **guided).validate()
    assert tiny_config(tiny_paired_data, tmp_path / "d", bare_faces=0.25).variation.bare == 0.25
    with pytest.raises(ConfigError, match="no paired training shards in"):
        trainer.train(tiny_config(model_dir=tmp_path / "e", paired_data=str(tmp_path), lambda_paired=1.0,
                                  **guided), verbose=0)


def test_tensorboard_logs_and_saved_model(tiny_paired_data, tmp_path):
    """Intervals longer than the run: the epoch's end still logs every scalar and the grids. The
    generator exports as the train program exports it (training itself does not export)."""
    from tfunmask import runs
    from tfunmask.serving import exporter

    config = tiny_config(tiny_paired_data, tmp_path, epochs=1, decay_epochs=0, export=True,
                         summary_every=1000, image_every=1000)
    model, _ = trainer.train(config, verbose=0)
    assert not runs.Run(tmp_path).saved_model.exists()
    saved_model = exporter.export_saved_model(model.export_generator(), runs.Run(tmp_path).saved_model)
    tags = set()
    for event_file in (tmp_path / "logs").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in event.summary.value)
    assert {"train/g_loss", "train/g_rec", "train/d_loss", "train/learning_rate",
            "train/images_per_s", "samples/input_output_target", "val/g_rec"} <= tags
    grid = read_image(tmp_path / "samples" / "epoch0001_input_output_target.png")
    # input | output | target under a 10-pixel header of labels, then a row per sample
    assert grid.shape[1] == 3 * 32 and grid.shape[0] % 32 == 10 and grid.shape[0] > 32
    served = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    out = served(images=tf.zeros((2, 32, 32, 3), tf.uint8))["unmasked"]
    assert out.dtype == tf.uint8 and out.shape == (2, 32, 32, 3)


def test_image_grid_labels_its_columns():
    from tfunmask.training.callbacks import image_grid

    grey = np.zeros((2, 64, 64, 3), np.float32)
    grid = image_grid({"input": grey, "output": grey + 1.0, "mask": grey[..., :1] - 1.0})
    header = grid.shape[0] - 2 * 64
    assert grid.shape[1] == 3 * 64 and 10 <= header <= 24
    for column in range(3):
        assert (grid[:header, column * 64:(column + 1) * 64] > 200).any()  # its label is written
    assert (grid[header:, :64] == 128).all() and (grid[header:, 64:128] == 255).all()
    assert (grid[header:, 128:] == 0).all()  # the one-channel map in grey


def test_throughput_mean_rate_leaves_out_each_epochs_first_step(monkeypatch):
    """The summary's rate is images over seconds of the timed steps; the bar's is smoothed."""
    from tfunmask.training import callbacks

    clock = iter([0.0, 10.0, 11.0, 13.0, 100.0, 150.0, 154.0])
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    throughput = callbacks.Throughput(global_batch=8)
    for epoch, steps in ((0, 3), (1, 2)):
        throughput.on_epoch_begin(epoch)
        for batch in range(steps):
            throughput.on_train_batch_end(batch, {})
    # timed steps: 1 s and 2 s in epoch 1, 4 s in epoch 2 (the 10 s and 50 s first steps left out)
    assert throughput.mean_rate == pytest.approx(24 / 7)
    assert throughput.rate == pytest.approx(0.9 * (0.9 * 8 + 0.1 * 4) + 0.1 * 2)


def test_linear_decay_schedule():
    from tfunmask.training.schedule import LinearDecay

    schedule = LinearDecay(1.0, total_steps=100, decay_steps=50)
    assert [float(schedule(s)) for s in (0, 50, 75, 100, 120)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    assert float(LinearDecay(0.5, 100, 0)(99)) == 0.5


class WeightsAtEpochEnd(tf.keras.callbacks.Callback):
    """The generator's weights after each epoch, by epoch number (1-based)."""

    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch + 1] = [w.copy() for w in self.model.generator.get_weights()]


def test_every_nth_checkpoint_is_kept_and_can_be_chosen(tiny_paired_data, tmp_path):
    from tfunmask import runs
    from tfunmask.evaluation import suite
    from tfunmask.serving import exporter

    config = tiny_config(tiny_paired_data, tmp_path / "run", epochs=4, decay_epochs=0, steps_per_epoch=1,
                         keep_every=2)
    seen = WeightsAtEpochEnd()
    trainer.train(config, verbose=0, callbacks=[seen])
    run = runs.Run(tmp_path / "run")
    saved = run.saved_epochs()
    assert sorted(saved) == [2, 3, 4]  # the newest three (epoch 1 deleted) ...
    assert sorted(p.name for p in run.kept.glob("*.index")) == ["ckpt-2.index", "ckpt-4.index"]  # ... + kept
    for epoch in (2, None):
        model, _ = runs.restore(run.root, epoch)
        for restored, expected in zip(model.generator.get_weights(), seen.weights[epoch or 4]):
            np.testing.assert_array_equal(restored, expected)
    with pytest.raises(ConfigError, match=r"no checkpoint of epoch 1 in .*: it has epochs 2, 3, 4$"):
        runs.restore(run.root, 1)
    (result,) = exporter.export(run.root, tmp_path / "export2", ("saved_model",), epoch=2, parity_samples=2)
    assert result.parity.passed
    summary = json.loads((tmp_path / "export2" / exporter.SUMMARY_FILE).read_text())
    assert summary["checkpoint"] == saved[2]
    assert suite.load_model(run.root, epoch=2).size == 32
    assert (suite.scored_epoch(run.root), suite.scored_epoch(run.root, 2)) == (4, 2)  # no export: the newest
    with pytest.raises(suite.EvaluationError, match="no checkpoint of epoch 9"):
        suite.load_model(run.root, epoch=9)
