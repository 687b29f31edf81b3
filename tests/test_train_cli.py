"""``python -m tfunmask.train`` as a new user types it: every model on the built-in demo set, short
runs without a second flag, and no TensorFlow start-up noise on stderr."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.training_helpers import running_eagerly
from tfunmask import startup
from tfunmask.config import ConfigError, TrainConfig

# What TensorFlow prints at start-up on a machine without a GPU (seen on TF 2.21).
STARTUP_NOISE = ("absl::InitializeLog", "cudart_stub", "cuInit", "cpu_feature_guard", "rebuild TensorFlow")


def train_cli(*args, cache):
    """Runs the training CLI in a fresh interpreter with TensorFlow's own log level unset (as a user
    has it) and the demo cache in ``cache``."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["TFUNMASK_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "tfunmask.train", *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=REPO, env=env)


TINY = {"pix2pix": ["--max_filters=16"], "cyclegan": ["--resnet_blocks=1", "--validation_steps=2"],
        "aggan": ["--resnet_blocks=1", "--attention_masks=2", "--validation_steps=2"]}


@pytest.mark.parametrize("model, kind", [("pix2pix", "paired"), ("cyclegan", "unpaired"), ("aggan", "unpaired")])
def test_every_model_trains_on_the_demo_set_with_epochs_alone(model, kind, tmp_path):
    """No --data and no --decay_epochs: the default path builds the model's kind of demo set and
    trains; tiny widths keep it short (the unpaired models score 2 validation batches, Pix2Pix the
    whole val split). stderr has none of TensorFlow's start-up lines. config.json holds the model's
    constructor arguments and the precision and replicas it resolved to."""
    run = tmp_path / "run"
    result = train_cli(f"--model={model}", f"--model_dir={run}", "--image_size=32", "--filters=8", *TINY[model],
                       "--batch_size=2", "--epochs=1", "--steps_per_epoch=1", "--noexport", cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"trained {run}: epochs 0..1" in result.stdout
    noise = [line for line in result.stderr.splitlines() if any(n in line for n in STARTUP_NOISE)]
    assert not noise, noise
    assert "ran out of data" not in result.stderr  # the validation pass states its length
    assert "remapper failed" not in result.stderr  # layers.LeakyReLUMax where a bias feeds the activation
    assert "\x1b[" not in result.stdout and "\b" not in result.stdout  # not a terminal: plain lines
    progress = [line for line in result.stdout.splitlines() if "g_loss" in line]
    assert progress and all(len(line) <= 160 for line in progress), progress  # the few losses that matter;
    assert "d_real" not in result.stdout  # the other terms are TensorBoard's
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["path"] is None and config["optimizer"]["epochs"] == 1
    assert config["data"]["validation_steps"] == (None if model == "pix2pix" else 2)
    assert "val_g_loss" in result.stdout
    assert config["optimizer"]["decay_epochs"] == 0
    assert config["runtime"]["mixed_precision"] == "auto"
    assert config["runtime"]["precision"] in ("float32", "mixed_bfloat16") and config["runtime"]["replicas"] == 1
    from tfunmask import models

    built = models.build(config["model_name"], config["model"])
    assert models.constructor_arguments(built) == config["model"]
    demo_sets = list((tmp_path / "cache").glob("demo-*"))
    assert len(demo_sets) == 1
    assert json.loads((demo_sets[0] / "dataset.json").read_text())["mode"] == kind


def test_unpaired_demo_preset_fills_only_flags_not_given(tmp_path):
    """The preset is printed, applies to flags the user left out, and is recorded in config.json
    (checked without training: an invalid --image_size stops the run once the config is made)."""
    result = train_cli("--model=cyclegan", f"--model_dir={tmp_path / 'run'}", "--filters=8",
                       "--image_size=24", cache=tmp_path / "cache")
    assert result.returncode != 0
    assert "preset --epochs=4" in result.stdout and "--filters" not in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "error: --image_size must be a multiple of 16, at least 16 (got 24)"


def test_defaults_compose():
    assert TrainConfig.create(epochs=1).validate().optimizer.decay_epochs == 0
    assert TrainConfig.create(epochs=7).optimizer.decay_epochs == 3
    assert TrainConfig.create(epochs=4, decay_epochs=4).validate().optimizer.decay_epochs == 4
    from tfunmask.models import CycleGAN

    assert CycleGAN(128, filters=4).resnet_blocks == 6 and CycleGAN(144, filters=4).resnet_blocks == 9
    assert CycleGAN(256, filters=4, resnet_blocks=2).get_config()["resnet_blocks"] == 2


def test_a_flag_the_model_does_not_take_is_refused(tmp_path):
    result = train_cli("--model=cyclegan", "--loss=cosine_sum", "--normalization=none",
                       f"--model_dir={tmp_path / 'run'}", cache=tmp_path / "cache")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == ("error: --model=cyclegan does not take --loss (pix2pix only), "
                                                      "--normalization (pix2pix/aggan only)")
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_model_flags_are_the_constructors_arguments():
    """train.py's table of model flags (kept there so TensorFlow loads after parsing) equals the
    constructors: the same arguments per model, with the same defaults (image_size has none)."""
    import inspect

    from tfunmask import models, train

    for name in models.REGISTRY:
        parameters = models.parameters(name)
        assert sorted(train.model_arguments(name)) == sorted(parameters), name
        for arg, param in parameters.items():
            if arg == "seed":
                continue
            default = train.MODEL_FLAGS[arg][1]
            assert param.default == (inspect.Parameter.empty if arg == "image_size" else default), arg


def test_startup_filter_drops_only_the_known_lines():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795650883.046247    2572 cudart_stub.cc:31] Could not find cuda drivers on your "
        "machine, GPU will not be used.",
        "E0000 00:00:1795650892.216893    2572 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
        "error: Failed call to cuInit: UNKNOWN ERROR (303)",
        "I0000 00:00:1795650883.323050    2572 cpu_feature_guard.cc:227] This TensorFlow binary is optimized "
        "to use available CPU instructions in performance-critical operations.",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
        "appropriate compiler flags.",
        "E0000 00:00:1796659799.992105   19705 util.cc:131] oneDNN supports DT_HALF only on platforms with "
        "AVX-512. Falling back to the default Eigen-based implementation if present.",
    ]
    kept = ["E0000 00:00:1.0 1 op_kernel.cc:1] OOM when allocating tensor",
            "W0000 00:00:1.0 1 dataset.cc:997] Input of GeneratorDatasetOp::Dataset will not be optimized",
            "UserWarning: something a user should see"]
    assert all(startup.is_noise(line) for line in noise)
    assert not any(startup.is_noise(line) for line in kept)


def test_verbosity_flag_turns_the_filter_off(monkeypatch):
    monkeypatch.delenv("TFUNMASK_VERBOSE", raising=False)
    assert startup.verbose_requested(["--verbosity=1"]) and startup.verbose_requested(["-v", "0"])
    assert startup.verbose_requested(["-v1"])
    assert not startup.verbose_requested(["--model=aggan", "--very"])
    monkeypatch.setenv("TFUNMASK_VERBOSE", "1")
    assert startup.verbose_requested([])


# ----------------------------------------------------------------------------- resume

def test_resumed_config_takes_the_saved_one_and_only_safe_changes():
    saved = TrainConfig.create(model="cyclegan", data="data/a", epochs=4, filters=16)
    same, changes = saved.resumed({"model_dir": str(saved.model_dir)})
    assert same == saved and changes == {}
    moved, changes = saved.resumed({"model_dir": "elsewhere/run"})
    assert moved.runtime.model_dir == "elsewhere/run" and changes == {}
    longer, changes = saved.resumed({"epochs": 8, "data": "data/b", "filters": 16, "mask_variation": 0.5,
                                     "variation_extras": 0.25})
    assert (longer.optimizer.epochs, longer.data.path) == (8, "data/b")
    assert (longer.data.mask_variation, longer.data.variation_extras) == (0.5, 0.25)
    assert longer.optimizer.decay_epochs == saved.optimizer.decay_epochs and longer.model == saved.model
    assert changes == {"epochs": (4, 8), "data": ("data/a", "data/b"), "mask_variation": (0.0, 0.5),
                       "variation_extras": (0.0, 0.25)}
    with pytest.raises(ConfigError, match=r"--filters=64 \(the run has 16\).*--lr"):
        saved.resumed({"filters": 64, "lr": 1.0})
    with pytest.raises(ConfigError, match="only add epochs"):
        saved.resumed({"epochs": 3})


def test_resume_applies_or_refuses_an_argument_newer_than_the_run():
    """A run saved before a model argument existed lacks it: a value given on resume is applied
    where resuming may change it (feature matching) and refused otherwise, never dropped."""
    saved = TrainConfig.create(model="pix2pix", data="data/a", epochs=4, composite=True)
    assert "lambda_feature_matching" not in saved.model and "segmenter_filters" not in saved.model
    tuned, changes = saved.resumed({"lambda_feature_matching": 10.0, "epochs": 6})
    assert tuned.model["lambda_feature_matching"] == 10.0 and tuned.model["composite"] is True
    assert changes == {"lambda_feature_matching": (None, 10.0), "epochs": (4, 6)}
    with pytest.raises(ConfigError, match=r"--segmenter_filters=8 \(the run has None\)"):
        saved.resumed({"segmenter_filters": 8})


def test_a_flat_config_of_earlier_versions_still_loads(tmp_path):
    """config.json files written before the sections (one flat dict) load as the same run; their
    unrecorded "auto" precision stays unresolved until a run resolves it."""
    flat = {"model": "aggan", "data": "data/x", "model_dir": str(tmp_path), "image_size": 64, "load_size": None,
            "batch_size": 8, "epochs": 10, "decay_epochs": 5, "steps_per_epoch": None, "lr": 2e-4, "beta_1": 0.5,
            "loss": "l1", "lambda_l1": 100.0, "mask_weight": 1.0, "composite": False, "lambda_mask": 10.0,
            "filters": 32, "max_filters": 512, "normalization": "batch", "dropout": 0.5, "resnet_blocks": None,
            "aggan_scheme": 1, "attention_masks": 10, "lambda_cycle": 10.0, "lambda_identity": 0.5,
            "lambda_pixel": 1.0, "lambda_tv": 0.05, "lambda_attention_gan": 1.0, "pool_size": 50,
            "mixed_precision": "auto", "strategy": "auto", "seed": 3, "summary_every": 100, "image_every": 500,
            "export": True}
    (tmp_path / "config.json").write_text(json.dumps(flat))
    config = TrainConfig.load(tmp_path)
    assert config.model_name == "aggan" and config.data.path == "data/x" and config.runtime.seed == 3
    assert config.model == {"image_size": 64, "filters": 32, "resnet_blocks": 6, "pool_size": 50,
                            "lambda_cycle": 10.0, "lambda_identity": 0.5, "seed": 3, "aggan_scheme": 1,
                            "attention_masks": 10, "lambda_pixel": 1.0, "lambda_tv": 0.05,
                            "lambda_attention_gan": 1.0}
    assert config.runtime.precision is None and config.optimizer.decay_epochs == 5
    config.save()
    assert TrainConfig.load(tmp_path) == config


def test_resume_with_only_the_run_folder(tiny_paired_data, tmp_path):
    """A finished run resumed says so and trains nothing; --epochs extends it and is recorded;
    an architecture flag is refused in one line. Nothing else needs typing again."""
    from tfunmask.training import trainer

    run = tmp_path / "run"
    with running_eagerly():  # the run to resume; the command's own steps are traced (no validation step)
        trainer.train(TrainConfig.create(data=str(tiny_paired_data), model_dir=str(run), image_size=32,
                                         batch_size=4, epochs=1, steps_per_epoch=2, validation_steps=0,
                                         filters=8, max_filters=16,
                                         mixed_precision="none", strategy="one_device", export=False), verbose=0)
    finished = train_cli(f"--model_dir={run}", "--resume", cache=tmp_path / "cache")
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "already finished its 1 epochs" in finished.stdout
    refused = train_cli(f"--model_dir={run}", "--resume", "--filters=16", cache=tmp_path / "cache")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: --resume continues the run as it was "
                                                               "configured; it cannot change --filters=16")
    extended = train_cli(f"--model_dir={run}", "--resume", "--epochs=2", cache=tmp_path / "cache")
    assert extended.returncode == 0, extended.stderr[-2000:]
    assert "with --epochs=2 (was 1)" in extended.stdout and f"trained {run}: epochs 1..2" in extended.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["optimizer"]["epochs"] == 2 and config["data"]["path"] == str(tiny_paired_data)
    assert config["model"]["filters"] == 8
    assert not (tmp_path / "cache").exists()  # the demo set was never built
