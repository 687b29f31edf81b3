"""Weight averaging of runs (``training.averaging``, ``tools/average_runs.py``)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tfunmask import runs
from tfunmask.config import ConfigError
from tfunmask.training import averaging, trainer
from tests.test_training import tiny_config
from tests.training_helpers import running_eagerly

pytestmark = pytest.mark.usefixtures("eager_steps")  # the runs' steps are not what is tested here
TINY = dict(filters=4, epochs=1, decay_epochs=0, steps_per_epoch=1)


@pytest.fixture(scope="module")
def two_runs(tiny_paired_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    with running_eagerly():
        for seed in (0, 1):
            trainer.train(tiny_config(tiny_paired_data, folder / f"s{seed}", seed=seed, **TINY), verbose=0)
    return folder / "s0", folder / "s1"


def test_the_average_run_holds_the_mean_of_every_weight(two_runs, tmp_path):
    path = averaging.average_runs([str(two_runs[0]), f"{two_runs[1]}:1"], tmp_path / "soup")
    assert path.endswith("ckpt-1")
    averaged, config = runs.restore(tmp_path / "soup")
    first, second = (runs.restore(run)[0] for run in two_runs)
    assert len(averaged.weights) == len(first.weights)
    for mean, a, b in zip(averaged.weights, first.weights, second.weights):
        assert not np.array_equal(a.numpy(), b.numpy()) or a.name.endswith(("moving_variance", "moving_mean"))
        np.testing.assert_allclose(mean.numpy(), (a.numpy() + b.numpy()) / 2, rtol=1e-6, atol=1e-7)
    assert config.runtime.model_dir == str(tmp_path / "soup")
    assert json.loads((tmp_path / "soup" / averaging.SOURCES_FILE).read_text()) == {
        "runs": [str(run) for run in two_runs], "epochs": [1, 1]}


def test_a_start_weight_moves_the_unmasker_back_towards_the_warm_start(two_runs, tiny_paired_data, tmp_path):
    """One run fine-tuned from another (``--warm_start``) and a start weight w: the new run's
    unmasker is w x the start's + (1 - w) x the fine-tune's, everything else is the fine-tune's,
    and averaged_from.json records the start and w (WiSE-FT)."""
    start = two_runs[0]
    tuned = tmp_path / "tuned"
    trainer.train(tiny_config(tiny_paired_data, tuned, warm_start=str(start), lr=0.05, **TINY), verbose=0)
    averaging.average_runs([str(tuned)], tmp_path / "wise", start_weight=0.25)
    wise, ours, theirs = (runs.restore(run)[0] for run in (tmp_path / "wise", tuned, start))
    for mixed, a, b in zip(wise.unmasker.weights, ours.unmasker.weights, theirs.unmasker.weights):
        assert a.path == b.path
        if "moving" not in a.path:  # the fine-tune moved every trainable weight
            assert np.abs(a.numpy() - b.numpy()).max() > 1e-4, a.path
        np.testing.assert_allclose(mixed.numpy(), 0.25 * b.numpy() + 0.75 * a.numpy(), rtol=1e-5, atol=1e-6)
    for mixed, a in zip(wise.discriminator.weights, ours.discriminator.weights):
        np.testing.assert_array_equal(mixed.numpy(), a.numpy())
    assert json.loads((tmp_path / "wise" / averaging.SOURCES_FILE).read_text()) == {
        "runs": [str(tuned)], "epochs": [1], "start": str(start), "start_weight": 0.25}
    averaging.average_runs([str(tuned)], tmp_path / "step0", start_weight=1.0)  # the start, in the tune's layout
    step0 = runs.restore(tmp_path / "step0")[0]
    for mixed, b in zip(step0.unmasker.weights, theirs.unmasker.weights):
        np.testing.assert_array_equal(mixed.numpy(), b.numpy())
    for mixed, a in zip(step0.discriminator.weights, ours.discriminator.weights):
        np.testing.assert_array_equal(mixed.numpy(), a.numpy())
    with pytest.raises(ConfigError, match=r"the start weight must be in \[0, 1\] \(got 1.5\)"):
        averaging.average_runs([str(tuned)], tmp_path / "beyond", start_weight=1.5)
    with pytest.raises(ConfigError, match=r"started from one --warm_start \(.*s0: none, .*tuned: .*s0\)"):
        averaging.average_runs([str(start), str(tuned)], tmp_path / "mixed", start_weight=0.5)


def test_runs_that_differ_only_in_loss_weights_are_averaged_and_the_difference_recorded(
        two_runs, tiny_paired_data, tmp_path):
    other = tmp_path / "l1_50"
    trainer.train(tiny_config(tiny_paired_data, other, lambda_l1=50.0, **TINY), verbose=0)
    averaging.average_runs([str(two_runs[0]), str(other)], tmp_path / "soup")
    averaged, first, second = (runs.restore(run)[0] for run in (tmp_path / "soup", two_runs[0], other))
    for mean, a, b in zip(averaged.weights, first.weights, second.weights):
        np.testing.assert_allclose(mean.numpy(), (a.numpy() + b.numpy()) / 2, rtol=1e-6, atol=1e-7)
    assert json.loads((tmp_path / "soup" / averaging.SOURCES_FILE).read_text())["differing_arguments"] == {
        "lambda_l1": [100.0, 50.0]}


def test_runs_that_cannot_be_averaged_are_one_line_errors(two_runs, tiny_paired_data, tmp_path):
    with pytest.raises(ConfigError, match="at least two runs"):
        averaging.average_runs([str(two_runs[0])], tmp_path / "one")
    wider = tmp_path / "wider"
    trainer.train(tiny_config(tiny_paired_data, wider, **{**TINY, "filters": 8}), verbose=0)
    with pytest.raises(ConfigError, match="built other networks than .*other layers or widths.* only runs of one architecture"):
        averaging.average_runs([str(two_runs[0]), str(wider)], tmp_path / "mixed")
    with pytest.raises(ConfigError, match=r":last: give a run as FOLDER or FOLDER:EPOCH"):
        averaging.average_runs([str(two_runs[0]), f"{two_runs[1]}:last"], tmp_path / "bad")
    with pytest.raises(ConfigError, match="already holds a run"):
        averaging.average_runs(list(map(str, two_runs)), two_runs[0])
    result = subprocess.run([sys.executable, "tools/average_runs.py", f"--runs={two_runs[0]},{tmp_path / 'none'}",
                             f"--out={tmp_path / 'x'}"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: no config.json in")
