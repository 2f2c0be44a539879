"""One visitor measures a model on the test pictures while others wait for that same measurement."""
from __future__ import annotations

import threading

import numpy as np

from app_pages import common
from cifar_core import inference


class FinishedJustBefore:
    """A lock taken a moment after another visitor left their answers and gave it back."""

    def __init__(self, kept: dict, answers: np.ndarray):
        self.kept, self.answers, self.lock = kept, answers, threading.Lock()

    def acquire(self, blocking: bool = True) -> bool:
        self.kept["probabilities"] = self.answers
        return self.lock.acquire(blocking)

    def release(self) -> None:
        self.lock.release()


def test_answers_left_just_before_the_lock_is_taken_leave_it_free(tiny_env):
    choice = common.ModelChoice("Bundled model", inference.DEFAULT_MODEL, common.BUNDLED)
    test = common.loaded()[0]
    kept = common._test_probabilities(str(choice.path), choice.path.stat().st_mtime, test.origin, len(test.y_test))
    kept.pop("probabilities", None)
    answers = np.full((len(test.y_test), 10), 0.1, np.float32)
    kept["lock"] = FinishedJustBefore(kept, answers)

    assert common.test_probabilities(choice, test) is answers
    # Free again: the next visitor, and the one after, are not left waiting for good.
    assert not kept["lock"].lock.locked()


def test_a_visitor_who_leaves_while_waiting_leaves_the_lock_free(tiny_env, monkeypatch):
    from contextlib import contextmanager

    from streamlit.runtime.scriptrunner_utils.exceptions import StopException
    choice = common.ModelChoice("Bundled model", inference.DEFAULT_MODEL, common.BUNDLED)
    test = common.loaded()[0]
    kept = common._test_probabilities(str(choice.path), choice.path.stat().st_mtime, test.origin, len(test.y_test))
    kept.pop("probabilities", None)
    kept["lock"] = threading.Lock()
    kept["lock"].acquire()                  # someone else is measuring...

    @contextmanager
    def waiting(_text):
        kept["probabilities"] = np.zeros((len(test.y_test), 10), np.float32)
        kept["lock"].release()              # ...and finishes while this visitor waits,
        yield
        raise StopException()               # but this visitor has closed the tab: Streamlit stops the script here.
    monkeypatch.setattr(common.st, "spinner", waiting)

    try:
        common.test_probabilities(choice, test)
    except StopException:
        pass
    assert not kept["lock"].locked()
