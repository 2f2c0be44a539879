"""TrainConfig, the training recipes (presets) and their validation.

No Keras here: the pages, `runs` and the command line build and check
configs without importing the training loop (or TensorFlow). Every field is
checked by type and range before a run is created, so a bad value is one
sentence naming the field, never a traceback inside a trainer.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import re
import unicodedata
from dataclasses import dataclass

from cifar_core import models, settings

OPTIMIZERS = ("sgd", "adam", "muon")
SCHEDULES = ("triangle", "constant")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored")
MAX_NAME_CHARS = 60          # run names are shown to everybody on the board
MAX_SEED = 2**32 - 1         # what numpy and Keras accept as a seed
MAX_TRAIN_IMAGES = 50_000    # CIFAR-10's training set
MAX_PATH_CHARS = 4096
MAX_DISTILL_MODELS = 4       # each adds its forward pass, about a third of a training step, to every step
MAX_ZOOM = 0.5               # half as large again or two-thirds the size: past that a 32x32 picture is mostly edge


def batches_per_epoch(images: int, batch_size: int) -> int:
    """Optimizer steps in an epoch: whole batches only, as airbench94 takes them (the pictures left over
    are in a later epoch's batches, the order being new each time); one batch of everything when there
    are fewer pictures than a batch. A last, smaller batch would also trace the training step again."""
    return max(1, images // batch_size)


def pictures_per_epoch(images: int, batch_size: int) -> int:
    """Pictures an epoch trains on: its whole batches (`batches_per_epoch`), or all of them when
    they are fewer than a batch."""
    return min(images, batches_per_epoch(images, batch_size) * batch_size)

# Each preset is a whole recipe. Learning rates are per step, on the batch-mean loss.
# The airbench94 recipe in Keras terms: its "11.5 per 1024 examples" is 1.5 per step at batch 1024
# on the mean loss; its decoupled weight decay 0.0153 is 0.009 in Keras' form (times the rate).
AIRBENCH = dict(optimizer="sgd", momentum=0.85, weight_decay=0.009, schedule="triangle", warmup=0.23,
                final_lr=0.07, bias_lr_scale=64.0, whiten_bias_epochs=3, lookahead=True, augment=True,
                label_smoothing=0.2)
# airbench94_muon's recipe (Keller Jordan): Muon for the filters at 0.24, SGD for the rest (recipe.MUON_SGD_RATE),
# batch 2,000, the rate straight down from its peak to zero, no lookahead. Its decay, 2e-6 x 2,000 = 0.004 a
# step through momentum 0.85 on the last layer and biases, is 0.004 / 0.15 / 0.24 = 0.111 in Keras' form.
MUON = dict(AIRBENCH, optimizer="muon", weight_decay=0.111, warmup=0.0, final_lr=0.0, lookahead=False)
# A recipe that passes over its pictures once gains nothing from augmentation (no picture is seen twice
# to be memorised) and learns more from more, smaller steps: the single-epoch presets use batch 128 and
# no flips or shifts, and BatchNorm biases learning 8-16 times faster, not 64 (airbench's 64 suits its
# many epochs). Muon, its rate falling from the first step (no warm-up), learns more from those steps than
# SGD (at 0.7 with warm-up and lookahead, as they were) in the same time; benchmarks/time_to_accuracy.py,
# 2-core AMD EPYC (Zen 5), seed 0: `quick` 72.99% after 13 s against SGD's 71.21% after 13 s, `class` 64.54%
# after 4 s against 60.58% after 3 s; seed 1, 73.47% against 71.23% and 64.11% against 59.93%. The sweep
# (docs/measured.md): 0.16 was the best rate; lookahead changed nothing beyond a seed's noise; their own
# weight decay (0.009) ended 0.1-0.7 points above `best`'s (0.111) on all four runs, so it stays.
ONE_PASS = dict(MUON, epochs=1, batch_size=128, learning_rate=0.16, bias_lr_scale=16.0, label_smoothing=0.1,
                augment=False, whiten_bias_epochs=0, weight_decay=AIRBENCH["weight_decay"])
PRESETS: dict[str, dict] = {
    # A first good model in about half a minute on a laptop CPU: with SGD, 70.3% and 70.6% (seeds 0 and 1)
    # after 34-38 s of training on a 2-core EPYC without bfloat16, where the recipe before it (48/128, rate
    # 0.5, biases 64x) reached 69.5% in 44-48 s; with Muon (ONE_PASS) see above.
    "quick": dict(ONE_PASS, arch="airbench16"),
    # airbench94_muon's recipe, which needs a fifth fewer steps than airbench94's for the same 94.0% on the
    # official pictures (8 epochs against 9.9). On this data, 2-core EPYC (Zen 5), seed 0: 8 epochs 90.24%
    # with mirror TTA after 404 s of training, 9 epochs 90.66% after 456 s; benchmarks/peer_airbench.py, seeds 4
    # and 5: 90.81% and 90.93% after 455 and 467 s, the PyTorch airbench94 peer 90.52% and 90.34% after 520 and
    # 532 s (airbench94's recipe here, the `airbench94` preset: 90.45-90.46% after 512-524 s, seeds 4 and 5).
    # 9 epochs, not 8: 192 steps of 2,000 from 49,000 pictures against airbench94_muon's 200 from 50,000, and
    # the copy's JPEG pictures.
    "best": dict(MUON, arch="airbench", epochs=9, batch_size=2000, learning_rate=0.24, calibration_images=1_000),
    # A whole class sharing one 2-core server: with SGD, 60.8% and 60.4% (seeds 0 and 1) after 9.4 s of
    # training on a 2-core EPYC without bfloat16, one pass over 20,480 pictures: 160 whole batches, since
    # a last, smaller batch means tracing the training step again (0.9 s). Its test passes are cheap too,
    # so thirty queued runs end within a lesson (3.2-4.6 min on the Zen 5 EPYC with Muon, README's Hosting).
    # The tutorial CNN it replaced reached 35% on 5,120 pictures in 5 s.
    "class": dict(ONE_PASS, arch="airbench16_mini", train_subset=20_480, bias_lr_scale=8.0, calibration_images=1_000),
    # airbench94's recipe for as many steps as its 9.9 epochs (470 against 476): 47 whole batches a pass over
    # 49,000 pictures, 1,000 held out for the temperature (benchmarks/temperature_sample.py: refitted on 1,000
    # of a 36-epoch model's 2,000, the test set's calibration error was 1.4% over ten draws, 1.3% from all).
    # benchmarks/peer_airbench.py on a 2-core EPYC with AVX-512 BF16, seed 4: 90.45% with mirror TTA after
    # 950 s of training, the PyTorch peer 90.52% after 956 s; seeds 0-2 (ours alone) 90.59%, 90.31%, 90.54%,
    # the peer's 90.20%, 90.53%, 90.58%: means 90.47% and 90.46%. That is with lookahead going on from the
    # fast weights, the whitening bias stopping dead and PyTorch's weight draw; before them seeds 0-3 gave
    # 90.24%, 90.28%, 90.47%, 90.37% (the peer 90.20%, 90.53%, 90.58%, 90.64%). 800 held out (48 batches a
    # pass, 480 steps), seed 1: 90.44% after 974 s, the peer 90.53% after 957 s. Before the whitening's bias
    # learned (whiten_bias_epochs), 48,000 pictures gave 89.98% and 89.91%, and 11 epochs were needed.
    "airbench94": dict(AIRBENCH, arch="airbench", epochs=10, batch_size=1024, learning_rate=1.5, calibration_images=1_000),
    "tutorial": dict(  # the TensorFlow tutorial, kept as the baseline to compare with
        arch="tutorial", epochs=10, batch_size=32, learning_rate=1e-3, optimizer="adam",
        momentum=0.0, weight_decay=0.0, schedule="constant", warmup=0.0, final_lr=0.0,
        bias_lr_scale=1.0, lookahead=False, augment=False, label_smoothing=0.0, precision="float32"),
}


class ConfigError(ValueError):
    """A training setting is out of range; the message is one line for a person, `field` names the setting."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass
class TrainConfig:
    arch: str = "airbench_tiny"    # architecture, a name in models.REGISTRY
    epochs: int = 2                # passes over the training images
    batch_size: int = 256          # images per optimizer step
    learning_rate: float = 0.375   # peak learning rate, per step on the batch-mean loss
    optimizer: str = "sgd"         # "sgd" (Nesterov momentum), "adam" or "muon"
    momentum: float = 0.85         # SGD momentum (ignored by Adam)
    weight_decay: float = 0.009    # decoupled weight decay, times the learning rate, per step
    schedule: str = "triangle"     # "triangle": linear warm-up, then linear decay; "constant"
    warmup: float = 0.23           # fraction of all steps spent warming up (triangle only)
    final_lr: float = 0.07         # learning rate at the last step, as a fraction of the peak (triangle only)
    bias_lr_scale: float = 64.0    # BatchNorm biases learn this many times faster than the weights
    whiten_bias_epochs: int = 0    # the whitening layer's biases learn for this many epochs, then stay as they are
    lookahead: bool = True         # every 5 steps, pull the weights to a slow moving average of themselves
    augment: bool = True           # mirror each picture every other epoch; shift by up to 2 pixels
    zoom: float = 0.0              # with augment, also resize each picture up to this fraction larger or smaller
    label_smoothing: float = 0.2   # probability mass spread evenly over the other classes
    # n // 10 pictures of each class (recipe.split, at least one), so n rounded down to tens; 0 trains on the
    # 50,000 less the calibration_images kept out of training (48,000 with the default 2,000).
    train_subset: int = 0          # train on this many, equal per class, in whole tens (0: all but the calibration images)
    calibration_images: int = 2000  # training images kept out of training to make "% sure" honest
    seed: int = 0                  # seeds weights, shuffling and augmentation
    precision: str = "auto"        # auto: bfloat16 on CPUs that have it, float16 and a bigger batch on a GPU, else float32
    strategy: str = "default"      # one device ("default"), or every GPU training this one run ("mirrored")
    initial_model: str = ""        # continue from this .keras checkpoint (same architecture)
    distill_from: tuple = ()       # also learn from these saved models' answers, averaged, not only from the labels
    preset: str = ""               # the preset these values came from, for the record
    name: str = ""                 # a name for people; the run id is separate

    @classmethod
    def from_preset(cls, preset: str, **overrides) -> "TrainConfig":
        if preset not in PRESETS:
            raise ConfigError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.", "preset")
        return cls(**{**PRESETS[preset], "preset": preset, **overrides})

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        if not isinstance(values, dict):
            raise ConfigError("The training settings must be a JSON object of named values.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known, key=str)
        if unknown:
            raise ConfigError(f"Unknown training setting {str(unknown[0])[:40]!r}.")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def changed_from_preset(self) -> bool:
        """Whether a setting of the recipe differs from its preset's: a board that calls a run "quick" when
        its student changed the network and the epochs compares two different recipes as one. The device
        (precision, strategy) is no part of the recipe, nor the seed (the Train page draws one for each run),
        nor a continued run's epochs and learning rate: its name says it goes on, and going on starts each
        time from a lower rate (`runs.going_on`)."""
        if self.preset not in PRESETS:
            return False
        ignored = {"name", "preset", "initial_model", "precision", "strategy", "seed"}
        if self.initial_model:
            ignored |= {"epochs", "learning_rate"}
        preset = TrainConfig.from_preset(self.preset)

        def plain(value):       # read back from config.json, a tuple is a list
            return tuple(value) if isinstance(value, list) else value
        return any(plain(getattr(self, f.name)) != plain(getattr(preset, f.name))
                   for f in dataclasses.fields(self) if f.name not in ignored)

    def validate(self, max_epochs: int | None = None) -> "TrainConfig":
        """Return self, or raise ConfigError with one sentence naming the bad field."""
        max_epochs = max_epochs or settings.get().max_epochs

        def check(field, ok, message):
            if not ok:
                raise ConfigError(message, field)

        check("arch", _is_str(self.arch) and self.arch in models.REGISTRY,
              f"Unknown architecture {_show(self.arch)}; choose one of {', '.join(models.REGISTRY)}.")
        check("epochs", _is_int(self.epochs) and 1 <= self.epochs <= max_epochs,
              f"Epochs must be a whole number from 1 to {max_epochs}, not {_show(self.epochs)}.")
        check("batch_size", _is_int(self.batch_size) and 1 <= self.batch_size <= 4096,
              f"Batch size must be a whole number from 1 to 4096, not {_show(self.batch_size)}.")
        check("learning_rate", _is_number(self.learning_rate) and 0 < self.learning_rate <= 100,
              f"Learning rate must be a number above 0 and at most 100, not {_show(self.learning_rate)}.")
        check("optimizer", _is_str(self.optimizer) and self.optimizer in OPTIMIZERS,
              f"Unknown optimizer {_show(self.optimizer)}; choose one of {', '.join(OPTIMIZERS)}.")
        # Muon scales each convolution's filters back to one size every step, which only a BatchNorm after it
        # undoes: the tutorial CNN has none.
        check("optimizer", self.optimizer != "muon" or self.arch != "tutorial",
              "Muon needs a network with BatchNorm after its convolutions (an airbench one), not the tutorial CNN.")
        check("momentum", _is_number(self.momentum) and 0 <= self.momentum < 1,
              f"Momentum must be at least 0 and below 1, not {_show(self.momentum)}.")
        check("weight_decay", _is_number(self.weight_decay) and 0 <= self.weight_decay < 1,
              f"Weight decay must be at least 0 and below 1, not {_show(self.weight_decay)}.")
        check("schedule", _is_str(self.schedule) and self.schedule in SCHEDULES,
              f"Unknown schedule {_show(self.schedule)}; choose one of {', '.join(SCHEDULES)}.")
        check("warmup", _is_number(self.warmup) and 0 <= self.warmup < 1,
              f"Warm-up must be a fraction of the steps, at least 0 and below 1, not {_show(self.warmup)}.")
        check("final_lr", _is_number(self.final_lr) and 0 <= self.final_lr <= 1,
              f"Final learning rate must be a fraction of the peak from 0 to 1, not {_show(self.final_lr)}.")
        check("bias_lr_scale", _is_number(self.bias_lr_scale) and 0 < self.bias_lr_scale <= 1000,
              f"Bias learning-rate scale must be above 0 and at most 1000, not {_show(self.bias_lr_scale)}.")
        # Not bound by the server's epochs: past the run's last epoch it simply learns to the end.
        check("whiten_bias_epochs", _is_int(self.whiten_bias_epochs) and 0 <= self.whiten_bias_epochs <= 1000,
              f"Whitening bias epochs must be a whole number from 0 to 1000, not {_show(self.whiten_bias_epochs)}.")
        check("lookahead", isinstance(self.lookahead, bool),
              f"Lookahead must be true or false, not {_show(self.lookahead)}.")
        check("augment", isinstance(self.augment, bool), f"Augment must be true or false, not {_show(self.augment)}.")
        check("zoom", _is_number(self.zoom) and 0 <= self.zoom <= MAX_ZOOM,
              f"Zoom must be a fraction from 0 (off) to {MAX_ZOOM}, not {_show(self.zoom)}.")
        # Zoom is drawn with the flips and shifts (recipe.epochs_of): without augmentation it would change nothing.
        check("zoom", self.zoom == 0 or self.augment,
              "Zoom only resizes pictures with augmentation on: turn augment on, or set zoom to 0.")
        check("label_smoothing", _is_number(self.label_smoothing) and 0 <= self.label_smoothing < 1,
              f"Label smoothing must be at least 0 and below 1, not {_show(self.label_smoothing)}.")
        check("train_subset", _is_int(self.train_subset) and 0 <= self.train_subset <= MAX_TRAIN_IMAGES,
              f"Training subset must be a whole number of images from 0 (all) to {MAX_TRAIN_IMAGES:,}, "
              f"not {_show(self.train_subset)}.")
        check("calibration_images", _is_int(self.calibration_images)
              and 0 <= self.calibration_images <= MAX_TRAIN_IMAGES // 10,
              f"Calibration images must be a whole number from 0 to {MAX_TRAIN_IMAGES // 10:,}, "
              f"not {_show(self.calibration_images)}.")
        # The calibration images come out of the 50,000 first: a larger subset trained on fewer than it said.
        check("train_subset", not (_is_int(self.train_subset) and _is_int(self.calibration_images))
              or self.train_subset <= MAX_TRAIN_IMAGES - self.calibration_images,
              f"Training subset can be at most {MAX_TRAIN_IMAGES - self.calibration_images:,} here: the "
              f"{self.calibration_images:,} calibration images are kept out of the {MAX_TRAIN_IMAGES:,} first "
              "(0 trains on all the rest).")
        check("seed", _is_int(self.seed) and 0 <= self.seed <= MAX_SEED,
              f"Seed must be a whole number from 0 to {MAX_SEED}, not {_show(self.seed)}.")
        check("precision", _is_str(self.precision) and self.precision in PRECISIONS,
              f"Unknown precision {_show(self.precision)}; choose one of {', '.join(PRECISIONS)}.")
        check("strategy", _is_str(self.strategy) and self.strategy in STRATEGIES,
              f"Unknown strategy {_show(self.strategy)}; choose one of {', '.join(STRATEGIES)}.")
        check("initial_model", _is_str(self.initial_model) and len(self.initial_model) <= MAX_PATH_CHARS
              and "\x00" not in self.initial_model,
              "The model to continue from must be a file path.")
        check("distill_from", isinstance(self.distill_from, (list, tuple))
              and len(self.distill_from) <= MAX_DISTILL_MODELS
              and all(_is_str(p) and 0 < len(p) <= MAX_PATH_CHARS and "\x00" not in p for p in self.distill_from),
              f"The models to learn from must be up to {MAX_DISTILL_MODELS} .keras file paths.")
        check("preset", _is_str(self.preset) and (not self.preset or self.preset in PRESETS),
              f"Unknown preset {_show(self.preset)}; choose one of {', '.join(PRESETS)}.")
        check("name", _is_str(self.name) and len(self.name) <= MAX_NAME_CHARS,
              f"The run name must be text of at most {MAX_NAME_CHARS} characters.")
        check("name", _is_str(self.name) and self.name.isprintable(),
              "The run name must be plain text on one line (no line breaks or control characters).")
        check("name", _readable(self.name),
              "The run name must show letters or digits, without stacks of accents or invisible characters: "
              "every visitor reads it on the board, and the projector too.")
        check("name", not self.name.startswith(FORMULA_STARTS),
              "The run name cannot start with =, +, - or @: a spreadsheet opening the board's table would take "
              "it for a formula.")
        check("name", not self.name.lstrip().startswith(OWN_RUN_MARKS),
              f"The run name cannot start with {OWN_RUN_MARK} or a dot like it: the board puts {OWN_RUN_MARK} before "
              "each browser's own runs.")
        return self


# Characters a run name cannot begin with: a spreadsheet opening the board's table (its download) reads
# such a cell as a formula, and one can fetch an address or run a command (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The board marks a browser's own runs with OWN_RUN_MARK before their names: a name starting with it, or a
# dot that looks like it, would be marked for every browser.
OWN_RUN_MARK = "●"
OWN_RUN_MARKS = (OWN_RUN_MARK, "⬤", "⚫", "⚈", "◉", "•", "∙", "⦁", "🔴", "⚪", "⬛")
# Letters that show nothing (Hangul fillers, the blank Braille pattern): sixty of them drew a row over the
# board's checkboxes.
INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")
MAX_MARKS = 2      # accents stacked on one letter: sixty combining marks ("Zalgo") spilled over the page


def _readable(name) -> bool:
    """Whether a run name shows what it says: some letter or digit, none invisible, accents in reason."""
    if not _is_str(name) or not name:
        return True     # no name: the run goes by its id; other checks say what else is wrong
    if INVISIBLE & set(name) or not any(c.isalnum() for c in name):
        return False
    stacked = 0
    for c in name:
        stacked = stacked + 1 if unicodedata.category(c) in ("Mn", "Me") else 0
        if stacked > MAX_MARKS:
            return False
    return True


# What a change does, for a person deciding: one line per setting, raise it / lower it (or each choice).
EFFECTS = {
    "arch": "The network to train. Wider ones (airbench: 64/256/256) learn more but take longer an epoch; "
            "airbench16 and airbench16_mini work on 2x2 patches and are the quickest; the tutorial CNN is the "
            "classic baseline to beat.",
    "epochs": "Raise it: higher accuracy, up to a point, and a longer run; past that point test accuracy "
              "stops rising or falls (overfitting). Lower it: a quicker run that ends less accurate.",
    "batch_size": "Raise it: fewer, bigger steps per pass, more pictures a second and more memory (with SGD, "
                  "raise the learning rate in step with it; with Adam, by less; with Muon, leave it). Lower it: "
                  "more, noisier steps, a slower pass on a CPU.",
    "learning_rate": "Raise it: bigger steps, faster learning until it overshoots and the loss jumps about or "
                     "becomes NaN (\"not a number\": the run fails). Lower it: steadier but slower learning that "
                     "may end before it gets far.",
    "optimizer": "How each step moves the weights: SGD with momentum (airbench94's), Adam (sizes each "
                 "weight's step itself), Muon (a newer rule, fewer steps). Each needs its own learning rate: "
                 "switching, change it too (SGD about 0.4-1.5, Adam 0.001, Muon 0.16-0.24).",
    "momentum": "Raise it: steps keep more of their direction, smoother and faster, until it overshoots. "
                "Lower it: each step follows only its own batch, noisier and slower.",
    "weight_decay": "Raise it: weights kept smaller, less overfitting, until it holds the network back. "
                    "Lower it: more freedom to fit the training pictures, and to overfit them.",
    "warmup": "Raise it: a longer gentle start, safer with a high learning rate. Lower it: full speed sooner.",
    "final_lr": "Raise it: bigger steps to the end, noisier final weights. Lower it: a calmer finish.",
    "bias_lr_scale": "Raise it: BatchNorm biases adapt faster, until training turns unstable. Lower it: slower.",
    "whiten_bias_epochs": "Raise it: the first layer learns to shift what it hands on for longer (airbench94 "
                          "does for 3 epochs; without it, its PyTorch version lost 0.45 points in one "
                          "measured run). 0: it never does. Networks without a whitening layer ignore it.",
    "label_smoothing": "Raise it: less over-confident answers, until it blurs the classes. Lower it: "
                       "sharper, more confident answers that overfit sooner.",
    "augment": "On: pictures shifted, half mirrored each pass, so over several epochs test accuracy rises more "
               "and overfitting comes later; in one epoch it gains nothing (no picture is seen twice). Off: it "
               "memorises the training pictures sooner.",
    "zoom": "Raise it: subjects of more sizes, as in photos, where they fill less or more of the frame; too much "
            "and the pictures lose their edges or detail. Lower it: the sizes CIFAR-10's own pictures have.",
    "lookahead": "On: steadier weights, often a little more accurate. Off: plain steps, slightly faster.",
    "train_subset": "Raise it: a better, more general model and a longer epoch. Lower it: quicker epochs, "
                    "lower test accuracy and overfitting sooner.",
    "calibration_images": "Raise it: a more reliable \"% sure\", fewer pictures to train on. Lower it: the reverse.",
    "distill_from": "More models, or better ones: the network learns what they know beyond the labels (which "
                    "pictures look alike), often a more accurate model at the same size; each makes every training "
                    "step about a third longer. Use it with no label smoothing. None: the labels alone.",
    "seed": "Another seed: another start and shuffle, so results vary a little; the same seed repeats a run.",
    "name": "A name for people on the runs board: it changes nothing in training.",
}


STANDS_ALONE = ("arch", "optimizer", "name")   # their code comments speak to programmers: EFFECTS says it all


def _field_help() -> dict[str, str]:
    """Each TrainConfig field's comment, then what raising or lowering it does: for --help and the app's
    tooltips. The comments are written once, above."""
    source = inspect.getsource(TrainConfig)
    comments = {m.group(1): m.group(2).strip()
                for m in re.finditer(r"^    (\w+): [^=\n]+=[^#\n]*#(.*)$", source, re.M)}
    return {field: EFFECTS[field] if field in STANDS_ALONE else
            " ".join(filter(None, [comment[:1].upper() + comment[1:] + ".", EFFECTS.get(field)]))
            for field, comment in comments.items()}


FIELD_HELP = _field_help()


def _is_str(value) -> bool:
    return isinstance(value, str)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    # Huge ints overflow float arithmetic later: bound them by converting here.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _show(value) -> str:
    """A value for an error message, cut short: the message must stay one readable line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
