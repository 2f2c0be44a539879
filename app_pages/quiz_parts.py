"""The Quiz's game: the picture on screen, the answer given, both scores, and the rules for changing them."""
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import streamlit as st


@dataclass
class Quiz:
    """One classroom's game: the picture on screen, the last answer, and both scores."""
    index: int = -1
    answer: int | None = None           # the class the people chose for the current picture
    rounds: int = 0
    people: int = 0
    model: int = 0
    seen: set = field(default_factory=set)
    against: tuple = ()                 # the model playing, the pictures and hard mode: any new, a new game
    # In the answer buttons' keys, with the picture's index: a click sent before a new game began (another
    # model picked in another tab, the pictures changed) must not score a picture its sender never saw.
    game: str = field(default_factory=lambda: secrets.token_hex(4))
    # Two tabs of one browser share the game: a click in each within the same moment must count once.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def take(self, index: int, choice: int, truth: int, guess: int) -> bool:
        """Score `choice` for picture `index`, unless that picture is no longer on screen or already
        answered (another tab's click came first). Whether it counted."""
        with self.lock:
            if index != self.index or self.answer is not None:
                return False
            self.answer, self.rounds = choice, self.rounds + 1
            self.people += int(choice == truth)
            self.model += int(guess == truth)
            return True

    def move_on(self, pictures, after: int | None = None) -> None:
        """A new picture from `pictures`, one not yet seen while any are left. With `after`, only if that
        picture is still the one on screen and answered: a second tab's Next must not skip one."""
        with self.lock:
            if after is not None and (after != self.index or self.answer is None):
                return
            fresh = [i for i in pictures if i not in self.seen] or list(pictures)
            self.index, self.answer = int(np.random.default_rng().choice(fresh)), None
            self.seen.add(self.index)


KEPT_GAMES = 500    # browsers whose game the server keeps, the latest played first: a few KB each


@st.cache_resource
def kept_games() -> tuple[OrderedDict, threading.Lock]:
    """Each browser's game (by its identity cookie's owner), so a reload at the projector, or a new tab,
    goes on with the class's score instead of 0 / 0. In memory only: a restart begins new games. Only games
    played are kept (`keep`): a script with fresh cookies must play a round with each to push out other
    browsers' kept scores, and never a game in a page open now."""
    return OrderedDict(), threading.Lock()


def keep(me: str, quiz: Quiz) -> None:
    games, lock = kept_games()
    with lock:
        if not quiz.rounds and me not in games:     # nothing to lose yet: a script's fresh cookies, each opening
            return                                  # the page, no longer push out the games being played
        games[me] = quiz
        games.move_to_end(me)
        while len(games) > KEPT_GAMES:
            games.popitem(last=False)
