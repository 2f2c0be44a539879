"""The teacher password: bytes comparison, growing delays per visitor, a server-wide pace."""
from cifar_core import password


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_non_ascii_passwords_work_and_near_misses_do_not():
    assert password.matches("Schlüssel", "Schlüssel")
    assert not password.matches("Schlussel", "Schlüssel")
    assert not password.matches("", "Schlüssel")
    assert password.matches("\ud800", "\ud800")     # a lone surrogate from a browser is no TypeError


def test_a_guess_that_is_not_text_is_a_wrong_guess_and_counted():
    """A script sent a number for the password box: an error after the server's pace had moved on, so it
    held everyone's guesses back without ever earning a delay of its own."""
    clock = Clock()
    guard = password.Guard(clock=clock)
    for sent in (12345, ["right"], None, b"right"):
        verdict = guard.check(f"eve {sent!r}", sent, "right")
        assert not verdict.ok and verdict.checked and verdict.wait_s == 1
        clock.now += guard.min_interval_s
    assert len(guard._failures) == 4


def test_each_failure_doubles_the_wait_and_guesses_during_it_are_not_checked():
    clock = Clock()
    guard = password.Guard(clock=clock)
    waits = []
    for _ in range(5):
        verdict = guard.check("eve", "guess", "right")
        assert verdict.checked and not verdict.ok
        waits.append(verdict.wait_s)
        refused = guard.check("eve", "right", "right")      # even the right one, too soon
        assert not refused.ok and not refused.checked and refused.wait_s > 0
        clock.now += verdict.wait_s
    assert waits == [1, 2, 4, 8, 16]
    assert guard.check("eve", "right", "right").ok


def test_the_delay_caps_and_a_success_resets_it():
    clock = Clock()
    guard = password.Guard(clock=clock, max_delay_s=10)
    for _ in range(8):
        clock.now += guard.check("eve", "no", "right").wait_s
    assert guard.check("eve", "no", "right").wait_s == 10
    clock.now += 10
    assert guard.check("eve", "right", "right").ok
    clock.now += 1
    assert guard.check("eve", "no", "right").wait_s == 1


def test_the_whole_server_checks_at_most_one_guess_a_second():
    clock = Clock()
    guard = password.Guard(clock=clock)
    checked = sum(guard.check(f"visitor{i}", "guess", "right").checked for i in range(301))
    assert checked == 1          # 301 guesses from 301 "visitors" within the same second
    clock.now += 0.5
    waiting = guard.check("teacher", "right", "right")
    assert not waiting.checked and waiting.busy, "held up by someone else's guess, not by the teacher's own"
    assert not guard.check("visitor0", "guess", "right").busy     # held up by its own failure
    clock.now += 0.5
    assert guard.check("teacher", "right", "right").ok     # someone else is not locked out for long


def test_one_visitors_failures_do_not_delay_another():
    clock = Clock()
    guard = password.Guard(clock=clock)
    for _ in range(5):
        clock.now += guard.check("eve", "no", "right").wait_s
    clock.now += 1
    assert guard.check("teacher", "right", "right").ok


def test_an_unlocked_browser_stays_so_for_the_day_until_locked_and_the_oldest_are_forgotten():
    clock = Clock()
    unlocked = password.Unlocked(clock=clock, hold_s=100, limit=3)
    unlocked.add("teacher")
    clock.now += 99
    assert unlocked.holds("teacher") and not unlocked.holds("student")
    assert unlocked.left_s("teacher") == 1 and unlocked.left_s("student") == 0     # said on the Lock button
    clock.now += 1
    assert not unlocked.holds("teacher")          # the day is over
    unlocked.add("teacher")
    unlocked.remove("teacher")
    assert not unlocked.holds("teacher")          # locked before leaving a shared computer
    for name in ("a", "b", "c", "d"):
        unlocked.add(name)
    assert [unlocked.holds(n) for n in "abcd"] == [False, True, True, True]


def test_a_flood_of_wrong_guesses_from_fresh_visitors_slows_the_whole_server():
    """A script without a cookie is a new visitor on every connection: its own delays never grow."""
    clock = Clock()
    guard = password.Guard(clock=clock)
    checked = 0
    for second in range(3600):                  # an hour, a fresh visitor's wrong guess every second
        checked += guard.check(f"fresh{second}", "guess", "right").checked
        clock.now += 1
    assert checked <= 30 + 3600 / 30, checked   # 30 at a guess a second, then one every 30 s
    clock.now += 30
    assert guard.check("teacher", "right", "right").ok


def test_a_script_guessing_without_pause_cannot_keep_a_known_teacher_browser_out():
    """A script guessing every tenth of a second from fresh sessions was the first guess in after every
    pause of the server's, and the teacher's right password was refused for as long as it ran. A browser
    where it was entered before is checked at once; a browser never seen waits, as before."""
    clock = Clock()
    guard = password.Guard(clock=clock)
    refused_new = checked_known = 0
    for tick in range(3000):                         # five minutes of a script
        clock.now += 0.1
        guard.check(f"fresh session {tick}", "guess", "right")
        if tick % 150 == 75:                         # the teacher, every 15 s
            refused_new += not guard.check("a new laptop", "right", "right").checked
            checked_known += guard.check("the teacher's computer", "right", "right", known=True).ok
    assert checked_known == 20 and refused_new == 20
    # A known browser's own wrong guesses still wait, doubling.
    assert guard.check("the teacher's computer", "wrong", "right", known=True).wait_s == 1
    assert not guard.check("the teacher's computer", "right", "right", known=True).checked


def test_known_browsers_outlive_a_restart_and_stay_few(tmp_path):
    known = password.KnownBrowsers(tmp_path / "known.json", limit=3)
    for owner in ("a", "b", "c", "d", "b"):
        known.add(owner)
    again = password.KnownBrowsers(tmp_path / "known.json", limit=3)      # another process, or after a restart
    assert "b" in again and "d" in again and "c" in again and "a" not in again
    (tmp_path / "known.json").write_text("not json")
    assert "b" not in password.KnownBrowsers(tmp_path / "known.json") and "b" in known     # this process knew it
