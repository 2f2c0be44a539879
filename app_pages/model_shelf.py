"""Loaded models kept for the whole server, where one visitor cannot push out the class's.

A model takes 0.4-0.6 s of a core to load, and each one kept holds 3-40 MB, so a server keeps a few dozen
and loads the rest again when asked. Kept by how recently each was asked for alone (st.cache_resource's
`max_entries`), one visitor flicking through forty runs pushed every other student's model out, forty
times, and each of them waited for their own model to load again at their next click, their cores taken
by someone else's curiosity.

A full shelf makes room from, in turn: a model only the visitor asking has used in the last `recent_s`
(their own flicking replaces their own models, even while the class is quiet for a while); a model
nobody has asked for in `recent_s`; and only then the one asked for longest ago. Room is made once the
new model has loaded, so a file that fails to load takes nothing off the shelf. Models load one at a
time, whoever asks (`loading`), and a model asked for by two visitors at once loads once.

A visitor is a browser's cookie, and cookies are free: a script that flicks under a new cookie each time
has no models "of its own", and makes room as plain recency would. Telling it from thirty new students
would take more than a cookie; the loads are one at a time, so it holds at most one core.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Kept:
    value: Any
    users: dict[str, float] = field(default_factory=dict)     # who -> when they last asked for it


class Shelf:
    def __init__(self, places: int, recent_s: float, loading: threading.Lock, clock: Callable[[], float] = time.monotonic):
        self.places, self.recent_s, self._loading, self._clock = places, recent_s, loading, clock
        self._lock = threading.Lock()       # the shelf itself: held for bookkeeping only, never while loading
        self._kept: OrderedDict[Hashable, _Kept] = OrderedDict()    # least recently asked for first

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
            value = load()
            with self._lock:
                self._make_room(who)
                self._kept[key] = _Kept(value)
                self._asked(key, who)
            return value

    def _asked(self, key: Hashable, who: str) -> Any:
        self._kept.move_to_end(key)
        kept = self._kept[key]
        kept.users[who] = now = self._clock()
        if len(kept.users) > 64:     # many visitors (or cookies) on one model: only the recent ones matter
            for stale in [u for u, t in kept.users.items() if now - t >= self.recent_s]:
                del kept.users[stale]
        return kept.value

    def _make_room(self, who: str) -> None:
        now = self._clock()
        while self._kept and len(self._kept) >= self.places:
            lately = {key: {u for u, t in kept.users.items() if now - t < self.recent_s}
                      for key, kept in self._kept.items()}
            only_theirs = [key for key, users in lately.items() if users == {who}]
            unused = [key for key, users in lately.items() if not users]
            del self._kept[(only_theirs or unused or list(self._kept))[0]]
