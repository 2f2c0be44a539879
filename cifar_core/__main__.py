"""The command line: python -m cifar_core train|combine|quantize|evaluate|predict|download|worker.

User errors (a bad path, an unreadable picture, an out-of-range setting) are
printed as one sentence on stderr with exit status 1 or 2, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import sys
from pathlib import Path

# TensorFlow's C++ start-up lines (which CPU instructions it uses, absl's note on its own logging, oneDNN's)
# are not for a person at a terminal: quieted before any module of ours can import TensorFlow. Its errors
# still show, and a setting of one's own (0, to debug) is kept.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from cifar_core import quiet_start  # noqa: E402

if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0":
    quiet_start.keep_start_up_notes_off()

from cifar_core import cpu_priority, data, evaluation, process_memory, rundir  # noqa: E402
from cifar_core.config import FIELD_HELP, PRESETS, ConfigError, TrainConfig  # noqa: E402

DEFAULT_PRESET = "quick"


def _train_parser(sub):
    p = sub.add_parser("train", help="train a network, writing a run directory",
                       description="Train a network on CIFAR-10. Without --run-dir, a new run is made under "
                                   "CIFAR_RUNS_DIR (default runs/) and trained in the foreground.")
    # No default here: whether it was given decides whether a run folder's own settings are overridden.
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help=f"a whole recipe (architecture, optimizer, schedule, augmentation); default {DEFAULT_PRESET}")
    # Every TrainConfig field is an option that overrides the preset; its comment is the help.
    for field in dataclasses.fields(TrainConfig):
        if field.name == "preset":
            continue
        option = "--" + field.name.replace("_", "-")
        text = FIELD_HELP.get(field.name, "").replace("%", "%%")   # argparse %-formats help ("% sure")
        if field.name == "distill_from":
            p.add_argument("--distill-from", action="append", metavar="MODEL", help=text + " Repeat for each model.")
        elif field.type in (bool, "bool"):
            p.add_argument(option, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            kind = {"int": int, "float": float}.get(str(field.type), str)
            p.add_argument(option, type=kind, default=None, help=text)
    p.add_argument("--data", help="a cifar-10-python.tar.gz or a folder holding cifar-10-batches-py/")
    p.add_argument("--run-dir", help="train the run in this directory; if it holds a config.json, with those "
                                     "settings and no recipe options")
    p.add_argument("--save", help="also copy the final model to this .keras path (with a model card beside it)")


def _add_model_and_json(p):
    p.add_argument("--model", help="a .keras model (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m cifar_core", description="CIFAR-10 Studio from the command line.")
    sub = top.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    p = sub.add_parser("combine", help="put trained models of one network side by side as one model",
                       description="Save two or more models of the same network, trained apart, as one model that "
                                   "averages their scores, with its temperature fitted and a model card beside it.")
    p.add_argument("models", nargs="+", metavar="MODEL", help="the .keras models, each with its card beside it")
    p.add_argument("--data", help="a cifar-10-python.tar.gz or a folder holding cifar-10-batches-py/")
    p.add_argument("--save", required=True, help="the .keras path to write (a model card and test answers beside it)")
    p = sub.add_parser("quantize", help="save a model's networks in int8 beside it, and measure its card again",
                       description="Write MODEL's networks in 8-bit integers beside it (x.int8.npz), their ranges "
                                   "measured on the training pictures it kept out of training; the app answers "
                                   "with them from then on. Its temperature, accuracy and test answers are "
                                   "measured again as it is then served.")
    p.add_argument("model", metavar="MODEL", help="a .keras model with its card beside it")
    p.add_argument("--data", help="a cifar-10-python.tar.gz or a folder holding cifar-10-batches-py/")
    p = sub.add_parser("evaluate", help="accuracy of a model on the CIFAR-10 test set")
    _add_model_and_json(p)
    p.add_argument("--data", help="a cifar-10-python.tar.gz or a folder holding cifar-10-batches-py/")
    p = sub.add_parser("predict", help="classify picture files")
    _add_model_and_json(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    sub.add_parser("worker", help="a warm trainer: train queued runs one after another (the app starts these)",
                   description="Keep TensorFlow and the data set loaded and train the runs handed over in "
                               "CIFAR_RUNS_DIR/.workers/<pid>.json, one after another; exit after "
                               "CIFAR_WORKER_IDLE_S seconds with nothing to do.")
    p = sub.add_parser("download", help="download CIFAR-10 (about 170 MB) into the Keras cache")
    p.add_argument("--data-dir", help="download here instead of ~/.keras/datasets")
    return top


def _recipe_options(args) -> list[str]:
    """The recipe options given on the command line (--preset and every TrainConfig field), as typed."""
    names = ["preset", *(f.name for f in dataclasses.fields(TrainConfig) if f.name != "preset")]
    return ["--" + name.replace("_", "-") for name in names if getattr(args, name) is not None]


def _config_from_args(args) -> TrainConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"preset"}
    overrides = {name: getattr(args, name) for name in fields if getattr(args, name) is not None}
    if "distill_from" in overrides:
        overrides["distill_from"] = tuple(_model_file(path, "distill_from") for path in overrides["distill_from"])
    if "initial_model" in overrides:
        overrides["initial_model"] = _model_file(overrides["initial_model"], "initial_model")
    return TrainConfig.from_preset(args.preset or DEFAULT_PRESET, **overrides)


def _model_file(path: str, field: str) -> str:
    """`path` made absolute (the run may train from another folder: a queued run, a worker); ConfigError
    now, before a run directory is made for nothing, if no file is there."""
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        verb = "learn from" if field == "distill_from" else "continue from"
        raise ConfigError(f"There is no model file at {path} to {verb}.", field)
    return path


def _check_models(config: TrainConfig) -> None:
    """ConfigError or ModelError, in a sentence, unless every model the run starts from or learns from loads
    as a CIFAR-10 model (`inference.load_model`), the one it starts from of the run's own network: said now,
    before a run directory is made, not as a failed run on the board. The trainer loads them again."""
    from cifar_core import distill, inference, models
    distill.teachers(config.distill_from)
    if config.initial_model:
        start = inference.load_model(config.initial_model)
        try:
            models.copy_weights(start, models.build(config.arch))
        except ValueError:
            raise ConfigError(f"{config.initial_model} is not {data.with_article(config.arch)} model, so training "
                              "cannot continue from it.", "initial_model") from None


def _save_path(text: str) -> Path:
    """Where --save writes, `~` expanded once, so the same path is checked, written and reported; ValueError
    now, not after minutes of training, where no model can be saved there."""
    path = Path(text).expanduser().absolute()
    if path.is_dir():
        raise ValueError(f"The model cannot be saved as {path}: that is a folder; give a file name ending in .keras.")
    if path.suffix != ".keras":
        raise ValueError(f"The model cannot be saved as {path}: the file name must end in .keras.")
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ValueError(f"The model cannot be saved as {path}: {folder} is not a folder this user may write in.")
    return path


def _a_trainer() -> None:
    """What marks this process a trainer, before TensorFlow starts its threads: first to go when memory
    runs out, behind the server for the CPU, its temporary files where they go with it, and, started by a
    Ray actor, ended with it."""
    from cifar_core import own_temp, ray_backend
    process_memory.first_to_go()
    cpu_priority.behind_the_server()
    own_temp.use_own()
    ray_backend.tie_to_actor()


def _trainer_alive(status: dict) -> bool:
    """Whether the trainer a run's status names may still be running, as the app judges it (`runs._alive`:
    its process, started when the status says, on this machine; one on another machine is taken to be),
    and one on a Ray cluster is taken to be without asking the cluster."""
    from cifar_core import runs
    return status.get("backend") == "ray" or runs._alive(status)


def cmd_train(args) -> int:
    _a_trainer()
    from cifar_core import runs, training
    save = _save_path(args.save) if args.save is not None else None
    run_dir = Path(args.run_dir).expanduser() if args.run_dir is not None else None
    if run_dir is not None and run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} is a file, not a folder.")
    # This trainer's data, given to it alone: set as the environment's, the app's queued runs this process
    # starts when it is done (`runs.dispatch`) trained on it too, or failed on its relative path.
    dataset = data.load(args.data) if args.data is not None else None
    if run_dir is not None and (run_dir / rundir.CONFIG).exists():
        # A run the app made (or an earlier command): its settings are the folder's. Options that would
        # change them are refused rather than quietly ignored.
        given = _recipe_options(args)
        if given:
            raise ConfigError(f"{run_dir / rundir.CONFIG} already holds this run's settings, so {given[0]} cannot "
                              "change them: leave the recipe options out, or give a new --run-dir.")
        try:
            status = rundir.read_object(run_dir / rundir.STATUS)
        except rundir.DamagedFile:
            status = {}         # training says so, in the run's own failure
        ended = status.get("state")
        if ended in ("finished", "stopped", "failed"):     # trained again, its records would hold two epoch 1s
            raise ValueError(f"{run_dir} holds a run that has {ended} already; give a new --run-dir to train again.")
        # Two trainers in one folder write over each other's records and model. The app marks a run running
        # before it starts its trainer (this command, with no pid yet or this one's): any other is not ours.
        if ended == "queued":
            raise ValueError(f"{run_dir} holds a run waiting in the app's queue, which starts it; give a new "
                             "--run-dir to train one yourself.")
        if ended == "running" and status.get("pid") not in (None, os.getpid()):
            if _trainer_alive(status):
                raise ValueError(f"{run_dir} holds a run another trainer is training (process {status['pid']}); "
                                 "give a new --run-dir to train one yourself.")
            raise ValueError(f"{run_dir} holds a run whose trainer ended without finishing; give a new --run-dir to "
                             "train again.")
        config = training.load_config(run_dir)
    else:
        # Everything a person may have mistyped is checked before a run directory exists: a mistake
        # leaves no failed run behind on the board.
        config = _config_from_args(args).validate()
        _check_models(config)
        if run_dir is None and not os.access(runs.runs_dir(), os.W_OK):      # said before the data is read
            raise ValueError(f"The runs folder {runs.runs_dir()} cannot be made or written: set CIFAR_RUNS_DIR to "
                             "a folder this user may write in, or give --run-dir.")
        dataset = dataset or data.load()
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / rundir.STOP).unlink(missing_ok=True)     # an earlier run's, left in the folder
            rundir.write_json(run_dir / rundir.CONFIG, config.to_dict())
        else:
            run_dir = runs.create(config, trained_here=True).path
        print(f"Training {config.arch} for {evaluation.counted(config.epochs, 'epoch')} in {run_dir}", file=sys.stderr)
    before = _stop_on_ctrl_c(run_dir)
    try:
        # Epoch lines for a person: a run the app started here has its own log and curves, and no terminal.
        shown = args.run_dir is None or sys.stdout.isatty()
        state = training.train(config, run_dir, dataset=dataset, progress=_print_epoch if shown else None)
    except KeyboardInterrupt:       # the second Ctrl-C: said as stopped, not later as killed or out of memory
        if rundir.read_status(run_dir).get("state") == "running":      # not one that ended just before it
            rundir.update_status(run_dir, state="stopped", ended=rundir.now(), pid=None,
                                 stopped_because="Stopped at once with a second Ctrl-C.")
        raise
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if before is None else before)
    runs.dispatch()   # this trainer is done: start the next queued run, if any
    status = rundir.read_status(run_dir)
    if state == "failed":
        print(f"Training failed: {status.get('error')}", file=sys.stderr)
        return 1
    if state == "stopped":     # by Ctrl-C, the app's Stop or the server's turn: said, and not a success
        ended = sum(r.get("kind") == "epoch" for r in rundir.read_metrics(run_dir))
        kept = ("its model is kept, from where it stopped" if (run_dir / rundir.MODEL).exists()
                else "it has no model (it stopped in its first minute of training)")
        print(f"{status.get('stopped_because') or 'Stopped.'} It had finished {ended} of "
              f"{evaluation.counted(config.epochs, 'epoch')}; {kept}.", file=sys.stderr)
    if status.get("test_accuracy") is not None:     # none for a run stopped in its first minute of training
        print(f"Test accuracy {status['test_accuracy']:.2%}: {evaluation.ACCURACY_DEFINITION}", flush=True)
    if save is not None:
        if not (run_dir / rundir.MODEL).exists():
            print(f"Not saved as {save}: the run stopped in its first minute of training, so it has no model.",
                  file=sys.stderr)
            return 1
        training.export(run_dir, save, command=shlex.join(["python", "-m", "cifar_core", *sys.argv[1:]]),
                        dataset=dataset)
        print(f"Saved {save}", file=sys.stderr)
    if state == "stopped":
        return 130 if status.get("stopped_because") == CTRL_C else 1
    return 0


CTRL_C = "Stopped with Ctrl-C."      # why a run stopped, as its status and card keep it


def _stop_on_ctrl_c(run_dir: Path):
    """The first Ctrl-C stops the run after its batch, as Stop on the Train page does: it keeps its model
    (and --save saves it). Before, it ended the process at once: no word said, and the run, still
    "running" under a process gone, was called killed or out of memory when next looked at. Returns the
    handler it replaced; where Ctrl-C was ignored (a run started in the background), it stays ignored."""
    before = signal.getsignal(signal.SIGINT)
    if before == signal.SIG_IGN:
        return before

    def asked(signum, frame):
        rundir.request_stop(run_dir, CTRL_C)
        print("\nStopping after this batch (Ctrl-C again to stop at once)...", file=sys.stderr, flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGINT, asked)
    return before


def cmd_combine(args) -> int:
    from cifar_core import combine
    if len(args.models) < 2:
        print("Give two or more models to put side by side.", file=sys.stderr)
        return 2
    save = _save_path(args.save)
    # Resolved, so that "x/../a.keras" or a link to a.keras is a.keras: it was saved over, the model lost.
    given = [Path(model).expanduser().resolve() for model in args.models]
    if save.resolve() in given:
        raise ValueError(f"The model cannot be saved as {save}: that is one of the models it is made of.")
    if len(set(given)) < len(given):
        raise ValueError("The same model is given twice: networks side by side help only where each was "
                         "trained apart from the others.")
    card = combine.combine(args.models, save, command=shlex.join(["python", "-m", "cifar_core", *sys.argv[1:]]),
                           dataset=data.load(args.data) if args.data else None)
    print(f"Saved {save}: {card['test_accuracy']:.2%} on the test set", file=sys.stderr)
    return 0


def cmd_quantize(args) -> int:
    from cifar_core import combine, inference, int8
    try:
        card = combine.quantize(args.model, command=shlex.join(["python", "-m", "cifar_core", *sys.argv[1:]]),
                                dataset=data.load(args.data) if args.data else None)
    except (combine.CombineError, inference.ModelError) as e:
        print(e, file=sys.stderr)
        return 2
    print(f"Saved {int8.companion(args.model)}: {card['test_accuracy']:.2%} on the test set in "
          f"{card['inference_precision']}", file=sys.stderr)
    return 0


def _print_epoch(record: dict) -> None:
    # Each epoch's test figure is from one look at each picture (no mirror), as the app's curves show it;
    # the model's own accuracy comes once it has ended (cmd_train).
    print(f"epoch {record['epoch']:>3}  {record['elapsed_s']:7.1f} s of training so far  loss {record['loss']:.3f}  "
          f"test accuracy {record['test_accuracy']:.2%} (one look)  {record['images_per_s']:.0f} images/s",
          flush=True)


def cmd_evaluate(args) -> int:
    from cifar_core import evaluation, inference
    model = inference.load_model(args.model)
    dataset = data.load(args.data)
    result = evaluation.summary(inference.predict(model, dataset.x_test), dataset.y_test)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"Accuracy on {result['n']:,} test images from {dataset.origin}: {result['accuracy']:.2%}: "
              f"{evaluation.ACCURACY_DEFINITION}")
        print("Of each class's test images, the share it named right:")
        for name, accuracy in result["per_class"].items():
            print(f"  {name:<11} {accuracy:.2%}")
    return 0


def cmd_predict(args) -> int:
    from cifar_core import decoding, evaluation, inference
    model = inference.load_model(args.model)
    failed = 0
    for path in args.files:
        # Each file answers for itself: a bad one gets its sentence and the rest are still classified.
        try:
            image = decoding.load_image(path)
            probabilities = inference.predict_views(model, inference.views(image), image.size)
        except decoding.ImageError as e:
            failed += 1
            result = {"path": path, "error": str(e)}
        except Exception:   # load_image raises only ImageError: anything else is a bug, not a reason to stop
            failed += 1
            result = {"path": path, "error": "Something went wrong while classifying this file, so it was skipped."}
        else:
            best = int(probabilities.argmax())
            result = {"path": path, "label": data.CLASS_NAMES[best], "confidence": float(probabilities[best]),
                      "calibrated": model.calibrated,     # whether "confidence" was checked against being right
                      "probabilities": {n: float(p) for n, p in zip(data.CLASS_NAMES, probabilities)}}
        if args.json:
            print(json.dumps(result), flush=True)
        elif "error" in result:
            print(f"{path}: {result['error']}", file=sys.stderr)
        else:
            # As every page says it: 99.7% is "over 99% sure", never "100%" (evaluation.sure).
            print(f"{path}: {result['label']} ({evaluation.sure(result['confidence'])} sure)"
                  + ("" if model.calibrated else ", as the network says: never checked against how often it is right"),
                  flush=True)
    return 1 if failed else 0


def cmd_worker(args) -> int:
    _a_trainer()
    from cifar_core import worker
    return worker.serve()


def cmd_download(args) -> int:
    shown = [False]

    def progress(done, total):
        print(f"\r{done / 1e6:6.1f} / {total / 1e6:.1f} MB", end="", file=sys.stderr, flush=True)
        shown[0] = True
    try:
        path = data.download(args.data_dir, progress=progress)
    finally:        # what is said next (an error, Ctrl-C) starts on a line of its own, not after the figures
        if shown[0]:
            print(file=sys.stderr)
    print(f"Saved and checked {path}", file=sys.stderr)
    return 0


# Options and arguments that name a file or folder. Empty, each would quietly mean something else: the
# bundled model, the default data, the current folder.
PATHS = {"model": "--model", "data": "--data", "save": "--save", "run_dir": "--run-dir", "data_dir": "--data-dir",
         "initial_model": "--initial-model", "distill_from": "--distill-from", "models": "MODEL", "files": "FILE"}


def _empty_path(args) -> str | None:
    """The option given an empty path, if any."""
    for name, option in PATHS.items():
        value = getattr(args, name, None)
        values = value if isinstance(value, list) else [value]
        if any(v is not None and not v.strip() for v in values):
            return "MODEL" if args.command == "quantize" else option    # quantize's model is its argument
    return None


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    empty = _empty_path(args)
    if empty:
        print(f"Error: {empty} was given an empty path: name a file or folder, or leave it out.", file=sys.stderr)
        return 2
    command = {"train": cmd_train, "combine": cmd_combine, "quantize": cmd_quantize, "evaluate": cmd_evaluate, "predict": cmd_predict,
               "download": cmd_download, "worker": cmd_worker}
    try:
        return command[args.command](args)
    except ValueError as e:   # DataError, ConfigError, ImageError, ModelError, RunError: all sentences
        print(f"Error: {e}", file=sys.stderr)
        return 2
    except OSError as e:      # a folder that cannot be made or written, a file where a folder should be
        print(f"Error: {e.strerror or e}" + (f": {e.filename}" if e.filename else "") + ".", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
