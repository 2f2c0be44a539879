"""The Quiz's game: the picture on screen, the answer given, both scores, and the rules for changing them."""
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import streamlit as st


@dataclass
class Quiz:
    """One classroom's game: the picture on screen, the last answer, and both scores."""
    against: tuple = ()                 # the model playing, the pictures and hard mode: any new, a new game
    pictures: int = 0                   # how many test pictures there are (`seen` has a place for each)
    index: int = -1
    answer: int | None = None           # the class the people chose for the current picture
    rounds: int = 0
    people: int = 0
    model: int = 0
    # One byte a picture (10 KB for the test set), however long the game: a set of those seen grew to
    # 850 KB in a game through all 10,000, and the server keeps hundreds of games.
    seen: np.ndarray = field(init=False, repr=False, compare=False)
    # In the answer buttons' keys: a click sent before a new game began (another model picked in another
    # tab, the pictures changed) must not score a picture its sender never saw.
    game: str = field(default_factory=lambda: secrets.token_hex(4))
    # The picture's own part of the keys, drawn afresh for each: the picture's index there was in the
    # page's HTML, and Explore (or any copy of CIFAR-10) turned it into the answer before a click.
    turn: str = ""
    # Two tabs of one browser share the game: a click in each within the same moment must count once.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    played: float = field(default_factory=time.time, compare=False)     # when it was last answered or moved on

    def stale(self) -> bool:
        """Whether it is the last lesson's: not played for LESSON_S. The projector's computer opened the next
        lesson on the last one's score, and a class took it for its own."""
        return time.time() - self.played > LESSON_S

    def __post_init__(self):
        self.seen = np.zeros(self.pictures, bool)

    def started_again(self) -> "Quiz":
        """A new game against the same model, pictures and mode, both scores at 0, that remembers which
        pictures this one showed: answered ones do not come back first (in hard mode, a few dozen pictures
        on the bundled sample, about one in four would have)."""
        fresh = Quiz(against=self.against, pictures=self.pictures)
        with self.lock:
            fresh.seen = self.seen.copy()
        return fresh

    def take(self, index: int, choice: int, truth: int, guess: int) -> bool:
        """Score `choice` for picture `index`, unless that picture is no longer on screen or already
        answered (another tab's click came first). Whether it counted."""
        with self.lock:
            if index != self.index or self.answer is not None:
                return False
            self.answer, self.rounds, self.played = choice, self.rounds + 1, time.time()
            self.people += int(choice == truth)
            self.model += int(guess == truth)
            return True

    def move_on(self, pictures, after: int | None = None) -> bool:
        """A new picture from `pictures` (indices below `self.pictures`), one not yet seen while any are
        left. With `after`, only if that picture is still the one on screen and answered: a second tab's
        Next must not skip one. Whether every one had been seen, so that they come round again (never the
        one just shown first, where there are others)."""
        pictures = np.asarray(pictures, dtype=np.int64)
        with self.lock:
            if after is not None and (after != self.index or self.answer is None):
                return False
            fresh = pictures[~self.seen[pictures]]
            again = not len(fresh)
            if again:
                self.seen[pictures] = False
                fresh = pictures[pictures != self.index] if len(pictures) > 1 else pictures
            self.index, self.answer = int(np.random.default_rng().choice(fresh)), None
            self.turn, self.played = secrets.token_hex(4), time.time()
            self.seen[self.index] = True
            return again


KEPT_GAMES = 500    # games the server keeps, the latest played first: about 10 KB each
LESSON_S = 3 * 3600     # a game not played for this long is the last lesson's: the page starts a new one
KEPT_PER_BROWSER = 12     # of them one browser's (its models and modes): the rest are the class's


@st.cache_resource
def kept_games() -> tuple[OrderedDict, threading.Lock]:
    """Each browser's games (by its identity cookie's owner and what the game is played against), so a
    reload at the projector, or a new tab, goes on with the class's score instead of 0 / 0; a flick of hard
    mode or of the sidebar's model and back finds the game as it was; and a game started again in one tab
    is the game in every tab of the browser. In memory only: a restart begins new games. Only games played
    are kept (`keep`): a script with fresh cookies must play a round with each to push out other browsers'
    kept scores, and never a game in a page open now."""
    return OrderedDict(), threading.Lock()


def game(me: str, playing: tuple, pictures: int) -> tuple[Quiz, bool]:
    """This browser's game against `playing`: the server's copy where it keeps one (what another tab
    answered, or started again, reaches this one), else this tab's own, else a new one; and whether it
    is new."""
    games, lock = kept_games()
    with lock:
        kept = games.get((me, playing))
    mine = st.session_state.get("quiz")
    if kept is not None and not kept.stale():
        return kept, False
    if mine is not None and mine.against == playing and not mine.stale():
        return mine, False
    return Quiz(against=playing, pictures=pictures), True


def latest(me: str) -> Quiz | None:
    """The game this browser played last, for a new tab or a reload: it opens in that game's mode."""
    games, lock = kept_games()
    with lock:
        return next((quiz for (owner, _), quiz in reversed(games.items()) if owner == me and not quiz.stale()), None)


def keep(me: str, quiz: Quiz, started_again: bool = False) -> None:
    """`quiz` as this browser's game against what it is played against, once it has been played, or
    `started_again` (so that no tab of the browser still holding the old game puts its score back)."""
    games, lock = kept_games()
    key = (me, quiz.against)
    with lock:
        if not quiz.rounds and not started_again and key not in games:   # nothing to lose yet: a script's fresh
            return                                  # cookies, each opening the page, push out no game being played
        games[key] = quiz
        games.move_to_end(key)
        mine = [k for k in games if k[0] == me]
        for oldest in mine[:max(0, len(mine) - KEPT_PER_BROWSER)]:     # one browser flicking through models
            del games[oldest]                                        # keeps its latest, not the class's
        while len(games) > KEPT_GAMES:
            games.popitem(last=False)


KEYS_SWITCH = "quiz_keys"           # the "Answer with keys" switch
KEYS_KEPT = "quiz_keys_kept"        # its position, kept for the session (a switch's own is not, off its page)


def keep_keys() -> None:
    """The switch's callback: a module function, which holds nothing of the page's run."""
    st.session_state[KEYS_KEPT] = st.session_state[KEYS_SWITCH]
