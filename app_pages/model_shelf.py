"""Loaded models kept for the whole server, where one visitor cannot push out the class's.

A model takes 0.4-0.6 s of a core to load, and each one kept holds 3-40 MB, so a server keeps a few dozen
and loads the rest again when asked. Kept by how recently each was asked for alone (st.cache_resource's
`max_entries`), one visitor flicking through forty runs pushed every other student's model out, forty
times, and each of them waited for their own model to load again at their next click, their cores taken
by someone else's curiosity.

A full shelf makes room from, in turn: a model nobody has asked for in `recent_s`; one only the visitor
asking has used in that time (their own flicking replaces their own models); and only then the one asked
for longest ago. Models load one at a time, whoever asks (`loading`), and a model asked for by two
visitors at once loads once.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class Shelf:
    def __init__(self, places: int, recent_s: float, loading: threading.Lock, clock: Callable[[], float] = time.monotonic):
        self.places, self.recent_s, self._loading, self._clock = places, recent_s, loading, clock
        self._lock = threading.Lock()       # the shelf itself: held for bookkeeping only, never while loading
        # key -> (the value, {who: when they last asked for it}); least recently asked for first
        self._kept: OrderedDict[Hashable, tuple[Any, dict[str, float]]] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._kept

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()

    def get(self, key: Hashable, who: str, load: Callable[[], Any]) -> Any:
        """The value kept under `key`, asked for by visitor `who`; `load()` makes it where it is not kept."""
        with self._lock:
            if key in self._kept:
                return self._asked(key, who)
        with self._loading:
            with self._lock:
                if key in self._kept:           # loaded by another visitor while this one waited its turn
                    return self._asked(key, who)
                self._make_room(who)
            # Room is made before the load: serving.freeze_loaded, right after it, frees what went.
            value = load()
            with self._lock:
                self._kept[key] = (value, {who: self._clock()})
            return value

    def _asked(self, key: Hashable, who: str) -> Any:
        self._kept.move_to_end(key)
        value, users = self._kept[key]
        users[who] = now = self._clock()
        if len(users) > 64:     # many visitors (or cookies) on one model: only the recent ones matter
            for stale in [u for u, t in users.items() if now - t >= self.recent_s]:
                del users[stale]
        return value

    def _make_room(self, who: str) -> None:
        now = self._clock()
        while self._kept and len(self._kept) >= self.places:
            lately = {key: {u for u, t in users.items() if now - t < self.recent_s}
                      for key, (_, users) in self._kept.items()}
            unused = [key for key, users in lately.items() if not users]
            only_theirs = [key for key, users in lately.items() if users == {who}]
            del self._kept[(unused or only_theirs or list(self._kept))[0]]
