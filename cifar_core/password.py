"""The teacher password: compared as UTF-8 bytes in constant time, with a growing delay after failures.

One `Guard` per server process serves every visitor. After each wrong
password the same visitor must wait twice as long as before (1 s, 2 s,
4 s... at most 5 minutes) before the next guess is even checked, and the
whole server checks at most one guess per second whoever sends it, and
one every 30 seconds once 30 wrong ones came within an hour: a script gets
under 3,000 guesses a day, hopeless against a password of ten or more
characters that is not a word. Nothing here logs or keeps a guess.

That server-wide pace is also something a script can hold up: a wrong guess
every second keeps everyone else's waiting. So a browser where the password
was entered stays unlocked (`Unlocked`, kept by the identity cookie's owner id,
in the server's memory only) for the rest of the school day: the teacher types
it once before the lesson, and a reload, a new tab or a flood of guesses during
it asks for nothing more. And a browser where it was ever entered on this server
(`KnownBrowsers`, a small file that outlives a restart) is checked without the
server-wide pace: a script guessing from fresh sessions without pause cannot keep
the teacher's own computer out, after a restart or on locking it by mistake.
"""
from __future__ import annotations

import contextlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path


def matches(given: str, expected: str) -> bool:
    """Whether `given` is `expected`: on UTF-8 bytes, so "Schlüssel" works, in constant time. Anything but
    text (a script may send a number for the box) is a wrong guess, counted as one, not an error that left
    the server's pace held without a failure counted."""
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


@dataclass
class Verdict:
    ok: bool
    checked: bool = True    # False: refused unchecked, because the visitor (or the server) must wait
    wait_s: float = 0.0     # when refused: how long until the next guess is checked
    busy: bool = False      # refused only for the server's pace: someone else's guess was checked just now


@dataclass
class Guard:
    first_delay_s: float = 1.0
    max_delay_s: float = 300.0
    min_interval_s: float = 1.0          # across all visitors
    # A visitor is a cookie, and a script without one is a new visitor on every connection, so its own
    # delays never grow: past this many wrong guesses within the window, from anyone, the whole server
    # checks one guess every flood_interval_s. A script then gets under 3,000 a day, not 86,400.
    flood_failures: int = 30
    flood_window_s: float = 3600.0
    flood_interval_s: float = 30.0
    clock: callable = time.monotonic
    _failures: dict = field(default_factory=dict)     # visitor -> (failures so far, not before)
    _recent: deque = field(default_factory=deque)     # when the latest wrong guesses came, anyone's
    _next_check: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, visitor: str, given: str, expected: str, known: bool = False) -> Verdict:
        """`given` checked against `expected` for `visitor`, or refused unchecked while it must wait.
        `known`: a browser where the password was entered before (`KnownBrowsers`), which only its own
        delays hold back, not the server's pace: a script guessing without pause from fresh sessions is
        the first guess in after every pause, and kept the teacher out for as long as it ran."""
        now = self.clock()
        with self._lock:
            failures, not_before = self._failures.get(visitor, (0, 0.0))
            wait = max(not_before, 0.0 if known else self._next_check) - now
            if wait > 0:
                return Verdict(False, checked=False, wait_s=wait, busy=not_before <= now)
            if not known:
                self._next_check = now + self.min_interval_s
            if matches(given, expected):
                self._failures.pop(visitor, None)
                return Verdict(True)
            self._recent.append(now)
            while self._recent and (self._recent[0] < now - self.flood_window_s
                                    or len(self._recent) > self.flood_failures):
                self._recent.popleft()
            if len(self._recent) >= self.flood_failures:
                self._next_check = now + self.flood_interval_s
            delay = min(self.max_delay_s, self.first_delay_s * 2 ** failures)
            self._failures[visitor] = (failures + 1, now + delay)
            if len(self._failures) > 10_000:      # bounded memory: forget the oldest visitors
                self._failures.pop(next(iter(self._failures)))
            return Verdict(False, wait_s=delay)


@dataclass
class Unlocked:
    """The browsers (owner ids) where the teacher password was entered, each for `hold_s` from then or
    until locked again. At most `limit`: past it the oldest is forgotten, and must type it again."""
    hold_s: float = 12 * 3600
    limit: int = 1_000
    clock: callable = time.monotonic
    _until: dict = field(default_factory=dict)        # owner -> unlocked until, oldest first
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, owner: str) -> None:
        with self._lock:
            self._until.pop(owner, None)
            self._until[owner] = self.clock() + self.hold_s
            while len(self._until) > self.limit:
                self._until.pop(next(iter(self._until)))

    def remove(self, owner: str) -> None:
        with self._lock:
            self._until.pop(owner, None)

    def holds(self, owner: str) -> bool:
        return self.left_s(owner) > 0

    def left_s(self, owner: str) -> float:
        """Seconds until `owner` is locked again; 0 where it is not unlocked."""
        with self._lock:
            until = self._until.get(owner)
            left = 0.0 if until is None else until - self.clock()
            if until is not None and left <= 0:
                del self._until[owner]
            return max(0.0, left)


class KnownBrowsers:
    """The browsers (owner ids) where the teacher password was entered on this server, newest last, kept
    in a small file of the runs folder so that a restart forgets none: theirs are checked whoever else is
    guessing (`Guard.check`). At most `limit` (a teacher's few computers), so no one fills it."""

    def __init__(self, path: Path, limit: int = 20):
        self.path, self.limit = Path(path), limit
        self._lock = threading.Lock()
        self._here: list[str] = []      # added by this process: known even where the file cannot be written

    def _read(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                found = json.loads(f.read(64 * 1024)).get("browsers", [])
        except (OSError, ValueError, AttributeError):
            return []
        return [b for b in found if isinstance(b, str)][-self.limit:] if isinstance(found, list) else []

    def __contains__(self, owner: str) -> bool:
        return owner in self._here or owner in self._read()

    def add(self, owner: str) -> None:
        from cifar_core import rundir
        with self._lock:
            self._here = [b for b in self._here if b != owner][-(self.limit - 1):] + [owner]
            browsers = [b for b in self._read() if b != owner] + [owner]
            with contextlib.suppress(OSError):      # a full disk: known to this process until it restarts
                rundir.write_json(self.path, {"browsers": browsers[-self.limit:]})
