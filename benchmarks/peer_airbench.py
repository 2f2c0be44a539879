"""Our trainer against a PyTorch reproduction of airbench94, same CPU, same archive, same run.

    pip install -r benchmarks/requirements.txt        # PyTorch, for this benchmark only
    python benchmarks/peer_airbench.py [--data PATH] [--epochs N] [--our-epochs N] [--our-preset P] [--seed N]
                                       [--train-subset N]

The peer is airbench94's recipe (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds
on a single GPU", legacy/airbench94.py) written here for a CPU: the 2x2 whitening
convolution set from the training patches' eigenvectors, three conv groups
(64/256/256) with BatchNorm and GELU, SGD with Nesterov momentum on a summed,
label-smoothed loss, a triangular learning rate, lookahead every 5 steps, random
2-pixel translation and alternating flips, batch 1024, 9.9 epochs. It computes in
bfloat16 where the CPU has it (AVX-512 BF16 or AMX), as our trainer chooses.

Ours is the `best` preset through the trainer the app uses: airbench94_muon's recipe (the same network,
Muon for the filters, 9 epochs at batch 2,000), so the two recipes differ; `--our-preset airbench94` runs
airbench94's own recipe on our side instead. Both are tested on the
whole test set after every epoch, outside the timed training; their final models
with mirror test-time augmentation. Printed: pictures per second, seconds of
training to 90% (unmirrored, after an epoch), final accuracy, and the ratios
(ours / the peer's speed; the peer's time / ours).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cifar_core import data  # noqa: E402

TARGET = 0.90
HYP = dict(epochs=9.9, batch_size=1024, lr=11.5, momentum=0.85, weight_decay=0.0153, bias_scaler=64.0,
           label_smoothing=0.2, whiten_bias_epochs=3, translate=2, widths=(64, 256, 256), bn_momentum=0.6,
           scaling=1 / 9)
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def cpu_has_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


# ---------------------------------------------------------------- the peer, in PyTorch

def peer(dataset: data.Cifar10, epochs: float, subset: int, report, seed: int = 0) -> dict:
    import torch
    from torch import nn
    import torch.nn.functional as F

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(seed)
    bf16 = cpu_has_bf16()

    def tensors(x, y):
        images = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).float().div_(255)
        images = (images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        return images.contiguous(memory_format=torch.channels_last), torch.from_numpy(np.asarray(y, np.int64))

    x_train, y_train = tensors(dataset.x_train[:subset or None], dataset.y_train[:subset or None])
    x_test, y_test = tensors(dataset.x_test, dataset.y_test)

    class BatchNorm(nn.BatchNorm2d):     # no learned scale; a bias only, as airbench94
        def __init__(self, width):
            super().__init__(width, eps=1e-12, momentum=1 - HYP["bn_momentum"])
            self.weight.requires_grad = False

    def conv(c_in, c_out):
        layer = nn.Conv2d(c_in, c_out, 3, padding="same", bias=False)
        nn.init.dirac_(layer.weight.data[:c_in])     # starts as identity in its first channels
        return layer

    def group(c_in, c_out):
        return nn.Sequential(conv(c_in, c_out), nn.MaxPool2d(2), BatchNorm(c_out), nn.GELU(),
                             conv(c_out, c_out), BatchNorm(c_out), nn.GELU())

    w1, w2, w3 = HYP["widths"]
    whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
    net = nn.Sequential(whiten, nn.GELU(), group(24, w1), group(w1, w2), group(w2, w3), nn.MaxPool2d(3),
                        nn.Flatten(), nn.Linear(w3, 10, bias=False))
    whiten.weight.requires_grad = False
    whiten.bias.data.zero_()
    net = net.to(memory_format=torch.channels_last)

    def logits(inputs):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return net(inputs).float() * HYP["scaling"]

    def accuracy(mirror: bool) -> float:
        net.eval()
        right = 0
        with torch.no_grad():
            for start in range(0, len(x_test), 1000):
                inputs = x_test[start:start + 1000]
                out = logits(inputs)
                if mirror:
                    out = 0.5 * out + 0.5 * logits(inputs.flip(-1))
                right += int((out.argmax(1) == y_test[start:start + 1000]).sum())
        return right / len(x_test)

    started = time.perf_counter()
    # Whitening: the eigenvectors of the covariance of 2x2 patches of 5,000 training pictures, and their negatives.
    patches = x_train[:5000].unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 3, 2, 2).float()
    flat = patches.reshape(len(patches), -1)
    values, vectors = torch.linalg.eigh(flat.T @ flat / len(flat), UPLO="U")
    values, vectors = values.flip(0).view(-1, 1, 1, 1), vectors.T.reshape(12, 3, 2, 2).flip(0)
    scaled = vectors / torch.sqrt(values + 5e-4)
    whiten.weight.data[:] = torch.cat((scaled, -scaled))

    batch = HYP["batch_size"]
    steps_per_epoch = max(1, len(x_train) // batch)     # whole batches only, as airbench94 (one, on tiny data)
    total_steps = max(1, math.ceil(steps_per_epoch * epochs))
    kilostep = 1024 * (1 + 1 / (1 - HYP["momentum"]))
    lr = HYP["lr"] / kilostep
    wd = HYP["weight_decay"] * batch / kilostep
    lr_bias = lr * HYP["bias_scaler"]
    modules = dict(net.named_modules())
    named = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
    norm_biases = [p for k, p in named if isinstance(modules[k.rsplit(".", 1)[0]], BatchNorm)]
    others = [p for k, p in named if not isinstance(modules[k.rsplit(".", 1)[0]], BatchNorm)]
    optimizer = torch.optim.SGD([dict(params=norm_biases, lr=lr_bias, weight_decay=wd / lr_bias),
                                 dict(params=others, lr=lr, weight_decay=wd / lr)],
                                momentum=HYP["momentum"], nesterov=True)
    warmup = int(total_steps * 0.23)

    def scale(step):
        if step < warmup:
            return 0.2 + 0.8 * step / warmup
        return 1.0 - 0.93 * (step - warmup) / max(1, total_steps - warmup)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, scale)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=HYP["label_smoothing"], reduction="none")
    ema = {k: v.clone() for k, v in net.state_dict().items()}

    def lookahead(decay):
        for (k, kept), live in zip(ema.items(), net.state_dict().values()):
            if live.dtype.is_floating_point:
                kept.lerp_(live, 1 - decay)
                live.copy_(kept)

    pad = HYP["translate"]
    padded = F.pad(x_train, (pad,) * 4, mode="reflect")
    flipped = torch.rand(len(x_train)) < 0.5        # epoch 0's flips; every later epoch flips the others
    train_s, step, epochs_done = time.perf_counter() - started, 0, []
    for epoch in range(math.ceil(epochs)):
        t0 = time.perf_counter()
        whiten.bias.requires_grad = epoch < HYP["whiten_bias_epochs"]
        net.train()
        # Random translation: each picture's crop of the padded copy, shifted by up to `pad` pixels each way.
        shifts = torch.randint(0, 2 * pad + 1, (len(x_train), 2))
        images = torch.empty_like(x_train)
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                picked = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
                images[picked] = padded[picked, :, dy:dy + 32, dx:dx + 32]
        flip = flipped if epoch % 2 == 0 else ~flipped
        images[flip] = images[flip].flip(-1)
        order = torch.randperm(len(x_train))
        for i in range(steps_per_epoch):
            chosen = order[i * batch:(i + 1) * batch]
            loss = loss_fn(logits(images[chosen]), y_train[chosen]).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step % 5 == 0:
                lookahead(0.95 ** 5 * (step / total_steps) ** 3)
            if step >= total_steps:
                lookahead(1.0)
                break
        train_s += time.perf_counter() - t0
        epochs_done.append({"epoch": epoch + 1, "elapsed_s": train_s, "test_accuracy": accuracy(mirror=False),
                            "images": step * batch})
        report("peer", epochs_done[-1])
        if step >= total_steps:
            break
    return {"name": "PyTorch airbench94", "precision": "bfloat16" if bf16 else "float32", "epochs": epochs_done,
            "train_s": train_s, "images_per_s": step * batch / train_s, "mirror_tta_accuracy": accuracy(mirror=True)}


# ---------------------------------------------------------------- ours, through the app's trainer

def ours(dataset: data.Cifar10, epochs: int | None, subset: int, report, seed: int = 0, preset: str = "best") -> dict:
    import tempfile

    from cifar_core import evaluation, inference, rundir, training
    from cifar_core.config import TrainConfig, pictures_per_epoch
    overrides = {"seed": seed, **({"epochs": epochs} if epochs else {}), **({"train_subset": subset} if subset else {})}
    config = TrainConfig.from_preset(preset, **overrides)
    with tempfile.TemporaryDirectory() as folder:
        state = training.train(config, folder, dataset, progress=lambda r: report("ours", r))
        if state != "finished":
            raise SystemExit(f"our trainer {state}: {rundir.read_status(folder).get('error')}")
        epochs_done = [r for r in rundir.read_metrics(folder) if r["kind"] == "epoch"]
        status = rundir.read_status(folder)
        model = inference.load_model(Path(folder) / rundir.MODEL)
        mirrored = evaluation.summary(inference.predict(model, dataset.x_test, calibrated=False),
                                      dataset.y_test)["accuracy"]
    train_s = epochs_done[-1]["elapsed_s"]
    # Each epoch is whole batches (the pictures a shuffle leaves over wait for a later one).
    images = pictures_per_epoch(status.get("train_images", len(dataset.y_train)),
                                status.get("batch_size", config.batch_size)) * len(epochs_done)
    return {"name": f"ours ({preset} preset, Keras)", "precision": status.get("precision", "?"), "epochs": epochs_done,
            "train_s": train_s, "images_per_s": images / train_s, "mirror_tta_accuracy": mirrored}


def seconds_to(result: dict, target: float) -> float | None:
    return next((r["elapsed_s"] for r in result["epochs"] if r["test_accuracy"] >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="cifar-10-python.tar.gz (default: CIFAR10_DATA or the Keras cache)")
    parser.add_argument("--epochs", type=float, help="epochs for both (default: each recipe's own, 9.9 and 9)")
    parser.add_argument("--our-epochs", type=int, help="epochs for ours alone (default: as --epochs)")
    parser.add_argument("--our-preset", default="best", help="the preset our side trains (default best)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for both (one run is one draw: compare a few)")
    parser.add_argument("--train-subset", type=int, default=0, help="train both on the first N pictures only")
    args = parser.parse_args()
    dataset = data.load(args.data)
    print(f"data: {dataset.origin}; {os.cpu_count()} CPUs; bfloat16 on this CPU: {cpu_has_bf16()}", flush=True)

    def report(who, record):
        print(f"  {who} epoch {record['epoch']}: {record['test_accuracy']:.2%} after {record['elapsed_s']:.0f} s",
              flush=True)
    our_epochs = args.our_epochs or (math.ceil(args.epochs) if args.epochs else None)
    results = [peer(dataset, args.epochs or HYP["epochs"], args.train_subset, report, args.seed),
               ours(dataset, our_epochs, args.train_subset, report, args.seed, args.our_preset)]

    print(f"\n{'':<32}{'precision':>11}{'pictures/s':>12}{'s to 90%':>10}{'train s':>9}{'final, mirror TTA':>19}")
    for r in results:
        to = seconds_to(r, TARGET)
        print(f"{r['name']:<32}{r['precision']:>11}{r['images_per_s']:>12.0f}{(f'{to:.0f}' if to else '-'):>10}"
              f"{r['train_s']:>9.0f}{r['mirror_tta_accuracy']:>19.2%}")
    theirs, mine = results
    print(f"\nspeed, ours / the peer's: {mine['images_per_s'] / theirs['images_per_s']:.2f}")
    to_theirs, to_mine = seconds_to(theirs, TARGET), seconds_to(mine, TARGET)
    if to_theirs and to_mine:
        print(f"time to 90%, the peer's / ours: {to_theirs / to_mine:.2f} (1.0 or more: ours is as quick)")
    print(f"whole run, the peer's time / ours: {theirs['train_s'] / mine['train_s']:.2f}; final accuracy "
          f"{mine['mirror_tta_accuracy']:.2%} against {theirs['mirror_tta_accuracy']:.2%}")


if __name__ == "__main__":
    main()
