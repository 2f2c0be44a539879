"""Devices and distribution: precision and batch scaling for GPUs (decided from a described machine, so
tested without one), and MirroredStrategy on two logical CPU devices in a separate process."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cifar_core import devices, recipe
from cifar_core.__main__ import _config_from_args, main, parser
from cifar_core.config import PRESETS, ConfigError, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
A100, V100, P100 = (8, 0), (7, 0), (6, 0)


@pytest.mark.parametrize("hardware, precision", [
    (devices.Hardware(gpus=(A100,)), "mixed_float16"),
    (devices.Hardware(gpus=(V100, V100)), "mixed_float16"),
    (devices.Hardware(gpus=(None,)), "mixed_float16"),          # capability not reported: a recent GPU
    (devices.Hardware(gpus=(P100,)), "float32"),                # no tensor cores: float16 would be slower
    (devices.Hardware(gpus=(A100, P100)), "float32"),           # one slow GPU holds a mirrored run back
    (devices.Hardware(cpu_bfloat16=True), "mixed_bfloat16"),
    (devices.Hardware(), "float32"),
])
def test_auto_precision_follows_the_hardware(hardware, precision):
    assert recipe.resolve_precision("auto", hardware) == precision
    assert recipe.resolve_precision("float32", hardware) == "float32"   # asked for: kept


def test_the_machine_is_described_as_tensorflow_sees_it():
    import tensorflow as tf
    hardware = devices.detect()
    assert len(hardware.gpus) == len(tf.config.list_physical_devices("GPU"))
    assert recipe.resolve_precision("auto") == devices.precision_for(hardware)


def test_a_model_card_names_the_processor_and_its_vector_instructions():
    xeon = "model name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    assert "(Intel(R) Xeon(R) Platinum 8481C; AVX-512 BF16 and AMX)" in devices.describe_machine(xeon)
    assert "(AMD EPYC; AVX2)" in devices.describe_machine("model name : AMD EPYC\nflags : fpu sse avx avx2 fma\n")
    assert "(" not in devices.describe_machine("")     # nothing known: nothing made up
    assert f"{os.cpu_count()} CPUs" in devices.describe_machine()


def test_a_gpu_trains_an_airbench_recipe_at_airbench_batch_and_rate():
    quick = TrainConfig.from_preset("airbench94", arch="airbench_tiny", epochs=32, batch_size=256, learning_rate=0.375)
    one = devices.scale_for_gpus(quick, gpus=1, train_images=36_000)
    # 256 -> 1024 pictures a step, and the rate with it: the airbench94 preset's own rate at batch 1024.
    assert (one.batch_size, one.learning_rate) == (1024, PRESETS["airbench94"]["learning_rate"])
    assert one.learning_rate / one.batch_size == pytest.approx(quick.learning_rate / quick.batch_size)
    two = devices.scale_for_gpus(quick, gpus=2, train_images=36_000)
    assert (two.batch_size, two.learning_rate) == (2048, 3.0)
    assert {k: v for k, v in one.to_dict().items() if k not in ("batch_size", "learning_rate")} == \
        {k: v for k, v in quick.to_dict().items() if k not in ("batch_size", "learning_rate")}


@pytest.mark.parametrize("config, gpus, images, batch, rate", [
    (TrainConfig(batch_size=256, learning_rate=0.4), 0, 50_000, 256, 0.4),        # no GPU: as written
    (TrainConfig(epochs=9, batch_size=256, learning_rate=0.4), 1, 50_000, 1024, 1.6),  # 432 steps in all
    (TrainConfig(epochs=5, batch_size=256, learning_rate=0.4), 1, 50_000, 512, 0.8),   # 485, not 240
    (TrainConfig(epochs=2, batch_size=256, learning_rate=0.4), 1, 50_000, 256, 0.4),   # 390 steps: as written
    (TrainConfig.from_preset("quick"), 1, 48_000, 128, 0.16),                         # one pass: as written
    (TrainConfig(batch_size=256, learning_rate=0.4, precision="float32"), 1, 50_000, 256, 0.4),  # pinned
    (TrainConfig(batch_size=1024, learning_rate=1.5), 1, 50_000, 1024, 1.5),      # already big enough
    (TrainConfig(batch_size=4096, learning_rate=1.5), 8, 50_000, 4096, 1.5),      # the validation limit
    (TrainConfig(epochs=100, batch_size=256, learning_rate=0.4), 1, 2_000, 256, 0.4),  # keeps 8 steps an epoch
    (TrainConfig(epochs=100, batch_size=32, learning_rate=0.4), 1, 2_000, 128, 1.6),
    (TrainConfig(epochs=10, batch_size=100, learning_rate=0.01, optimizer="adam"), 1, 50_000, 800, 0.01 * 8 ** 0.5),
    (TrainConfig(epochs=10, batch_size=100, learning_rate=0.24, optimizer="muon"), 1, 50_000, 800, 0.24),
])
def test_batch_and_learning_rate_scale_together(config, gpus, images, batch, rate):
    scaled = devices.scale_for_gpus(config, gpus, images)
    assert scaled.batch_size == batch and scaled.learning_rate == pytest.approx(rate)
    assert scaled.validate() is scaled


def test_shares_cover_a_batch_in_order():
    assert devices.shares(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert devices.shares(1024, 2) == [(0, 512), (512, 1024)]


def test_strategy_setting_and_flag():
    config = _config_from_args(parser().parse_args(["train", "--preset", "quick", "--strategy", "mirrored"]))
    assert config.validate().strategy == "mirrored"
    assert TrainConfig().strategy == "default"
    with pytest.raises(ConfigError, match=r"^Unknown strategy 'nccl'; choose one of default, mirrored\.$"):
        TrainConfig(strategy="nccl").validate()


def test_a_bad_strategy_on_the_command_line_is_one_sentence(tmp_path, capsys):
    assert main(["train", "--strategy", "tpu", "--run-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == "Error: Unknown strategy 'tpu'; choose one of default, mirrored."


# Runs in a fresh process: the CPU can only be split into logical devices before TensorFlow starts.
TWO_DEVICES = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from cifar_core import data, devices, models, rundir, training
    from cifar_core.config import TrainConfig

    dataset, out, result = data.read(sys.argv[1]), sys.argv[2], {}
    for strategy in ("default", "mirrored"):
        config = TrainConfig(arch="airbench_tiny", epochs=2, batch_size=20, learning_rate=0.2,
                             precision="float32", strategy=strategy)
        state = training.train(config, f"{out}/{strategy}", dataset)
        epochs = [r for r in rundir.read_metrics(f"{out}/{strategy}") if r["kind"] == "epoch"]
        result[strategy] = dict(state=state, status=rundir.read_status(f"{out}/{strategy}"), epochs=epochs)

    # What each replica is handed, and whether the replicas agree afterwards.
    strategy = devices.make_strategy("mirrored")
    with devices.scope(strategy):
        model = training.build_model(TrainConfig(arch="airbench_tiny"), dataset.x_train, "float32")
        model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["categorical_accuracy"])
    seen, train_step = [], model.train_step
    model.train_step = lambda batch: (seen.append(int(batch[0].shape[0])), train_step(batch))[1]
    step = devices.step_function(model, strategy)
    y = np.eye(10, dtype="float32")[dataset.y_train[:40]]
    logs = [step(dataset.x_train[:40], y[:40]) for _ in range(3)]
    variables = [w for w in model.weights if w.name in ("moving_mean", "moving_variance", "kernel")]
    result["shares"] = seen
    result["logs"] = logs
    result["replicas_agree"] = all(np.array_equal(*[v.numpy() for v in strategy.experimental_local_results(w.value)])
                                   for w in variables)
    print(json.dumps(result))
""")


@pytest.fixture(scope="module")
def two_devices(tiny_archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("strategy")
    done = subprocess.run([sys.executable, "-c", TWO_DEVICES, str(tiny_archive), str(out)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_mirrored_training_matches_one_device(two_devices):
    one, mirrored = two_devices["default"], two_devices["mirrored"]
    assert one["state"] == mirrored["state"] == "finished"
    assert (one["status"]["replicas"], mirrored["status"]["replicas"]) == (1, 2)
    # The tiny pictures are coloured squares: both learn them; BatchNorm on half batches is the only
    # difference, so the training loss may differ a little, the test accuracy hardly.
    assert one["epochs"][-1]["test_accuracy"] >= 0.9 and mirrored["epochs"][-1]["test_accuracy"] >= 0.9
    assert abs(one["epochs"][-1]["test_accuracy"] - mirrored["epochs"][-1]["test_accuracy"]) <= 0.1
    assert mirrored["epochs"][-1]["loss"] == pytest.approx(one["epochs"][-1]["loss"], rel=0.15)
    assert mirrored["status"]["test_accuracy"] >= 0.9


def test_each_replica_takes_its_share_of_a_batch(two_devices):
    # The first step builds the variables through train_on_batch (whole batch on each replica); after it,
    # two replicas each take 20 of the 40 pictures (the function is traced once, so one pair of shares).
    assert two_devices["shares"][:2] == [40, 40]
    assert two_devices["shares"][2:] == [20, 20]
    assert all(set(logs) == {"loss", "categorical_accuracy"} for logs in two_devices["logs"])
    # The weights and BatchNorm statistics stay the same on both replicas.
    assert two_devices["replicas_agree"]
