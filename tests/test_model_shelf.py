"""The server's loaded models: one visitor's flicking replaces their own, never the class's."""
import threading
import time

import pytest

from app_pages.model_shelf import Shelf


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


def shelf_of(places, clock, recent_s=600.0):
    return Shelf(places, recent_s, threading.Lock(), clock)


def ask(shelf, key, who, loads=None):
    def load():
        if loads is not None:
            loads.append(key)
        return f"model {key}"
    return shelf.get(key, who, load)


def test_a_visitor_flicking_through_forty_models_keeps_every_other_visitors_model(clock):
    shelf = shelf_of(4, clock)
    for who in "abc":
        ask(shelf, f"run {who}", who)
    loads = []
    for i in range(40):
        clock.now += 1
        ask(shelf, f"flicked {i}", "d", loads)
    assert len(loads) == 40 and len(shelf) == 4
    assert all(f"run {who}" in shelf for who in "abc")
    reloads = []
    for who in "abc":
        ask(shelf, f"run {who}", who, reloads)
    assert reloads == []        # each student's next click finds their model loaded


def test_a_class_quiet_while_the_teacher_talks_keeps_its_models_from_one_flicker(clock):
    """Ten quiet minutes (the teacher at the projector) made every class model one nobody had asked for
    lately: a flicker's forty runs pushed them all out, and thirty students clicked together after."""
    shelf = shelf_of(32, clock, recent_s=600)
    for who in range(30):
        for _ in range(3):                  # each rerun of a page asks again
            ask(shelf, f"run {who}", f"student {who}")
            ask(shelf, "bundled", f"student {who}")
    clock.now += 700
    for i in range(40):
        ask(shelf, f"flicked {i}", "flicker")
    reloads = []
    for who in range(30):
        ask(shelf, f"run {who}", f"student {who}", reloads)
    ask(shelf, "bundled", "student 0", reloads)
    assert reloads == [] and len(shelf) == 32


def test_a_new_students_model_is_not_pushed_out_before_their_next_click(clock):
    """Loaded once and read for a few seconds: a model asked for once is no less in use than another."""
    shelf = shelf_of(4, clock)
    for who in "ab":
        ask(shelf, f"run {who}", who)
        ask(shelf, f"run {who}", who)
    ask(shelf, "new student's", "c")        # asked once, so far
    for i in range(5):
        clock.now += 1
        ask(shelf, f"flicked {i}", "d")
    assert "new student's" in shelf and "run a" in shelf and "run b" in shelf


def test_a_model_nobody_asked_for_lately_goes_before_one_in_use(clock):
    shelf = shelf_of(3, clock, recent_s=600)
    for _ in range(2):
        ask(shelf, "left", "a")             # its visitor went home
    clock.now = 500
    for _ in range(2):
        ask(shelf, "in use", "b")
        ask(shelf, "also in use", "c")
    clock.now = 700
    ask(shelf, "new", "d")
    assert "left" not in shelf and all(k in shelf for k in ("in use", "also in use", "new"))


def test_with_none_of_their_own_a_visitor_pushes_out_the_model_asked_for_longest_ago(clock):
    shelf = shelf_of(3, clock)
    for who in "abc":
        clock.now += 1
        ask(shelf, who, who)
        ask(shelf, who, who)
    clock.now += 1
    ask(shelf, "a", "a")                    # asked again: now the latest
    ask(shelf, "new", "d")
    assert "b" not in shelf and all(k in shelf for k in ("a", "c", "new"))


def test_a_model_another_visitor_uses_is_not_the_flickers_to_replace(clock):
    shelf = shelf_of(3, clock)
    ask(shelf, "run a", "a")
    ask(shelf, "shared", "d")
    ask(shelf, "shared", "a")               # a student uses it too
    clock.now += 1
    ask(shelf, "flicked 1", "d")
    clock.now += 1
    ask(shelf, "flicked 2", "d")
    assert "shared" in shelf and "run a" in shelf and "flicked 1" not in shelf and "flicked 2" in shelf


def test_two_visitors_asking_for_one_model_at_once_load_it_once():
    shelf = Shelf(4, 600.0, threading.Lock())
    loads = []

    def slow_load():
        loads.append(1)
        time.sleep(0.2)
        return object()
    got = []
    visitors = [threading.Thread(target=lambda who=who: got.append(shelf.get("m", who, slow_load))) for who in "ab"]
    for visitor in visitors:
        visitor.start()
    for visitor in visitors:
        visitor.join()
    assert len(loads) == 1 and got[0] is got[1]


def test_a_model_that_fails_to_load_takes_nothing_off_the_shelf_and_the_next_ask_tries_again(clock):
    shelf = shelf_of(2, clock)
    ask(shelf, "x", "b")
    ask(shelf, "y", "c")

    def broken():
        raise ValueError("damaged")
    for _ in range(3):
        with pytest.raises(ValueError):
            shelf.get("m", "a", broken)
    assert "m" not in shelf and "x" in shelf and "y" in shelf
    assert ask(shelf, "m", "a") == "model m" and len(shelf) == 2


def test_many_visitors_on_one_model_keep_only_the_recent_ones(clock):
    shelf = shelf_of(2, clock, recent_s=10)
    for i in range(1000):
        clock.now += 1
        ask(shelf, "bundled", f"cookie {i}")
    assert len(shelf._kept["bundled"].users) <= 64 + 10
