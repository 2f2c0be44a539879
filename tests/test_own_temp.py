"""What a trainer killed outright leaves on the machine: its temporary files, and, started by a Ray actor
that was killed, the trainer itself."""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cifar_core import own_temp, ray_backend, rundir
from test_runs import wait_for

ROOT = Path(__file__).resolve().parent.parent


def _gone(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def test_a_killed_trainers_temporary_files_go_when_the_next_trainer_starts(tmp_path):
    # TensorFlow writes the code it makes of a step with a loop (autograph, which reads the step's source
    # from its file) into the temporary folder.
    script, temp = tmp_path / "trainer.py", tmp_path / "temp"
    temp.mkdir()
    script.write_text("""
import subprocess, sys, time
from cifar_core import own_temp
folder = own_temp.use_own()
# What a trainer starts (a worker's hand-over starts another worker) inherits its TMPDIR: its folder is
# still made beside, not inside this one's, which goes when this one exits.
started = subprocess.run([sys.executable, "-c", "from cifar_core import own_temp; print(own_temp.use_own())"],
                         capture_output=True, text=True).stdout.strip()
import tensorflow as tf

@tf.function
def count(x):
    for _ in tf.range(3):
        x += 1
    return x

count(tf.constant(0))
print(folder, started, flush=True)
time.sleep(120)
""")
    child = subprocess.Popen([sys.executable, str(script)], cwd=ROOT,
                             env={**{k: v for k, v in os.environ.items() if k != own_temp.BASE},
                                  "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)},
                             stdout=subprocess.PIPE, text=True)
    try:
        folder, started = map(Path, child.stdout.readline().split())
        assert folder.parent == temp and folder.name.startswith(own_temp.PREFIX)
        assert started.parent == temp and started.name.startswith(own_temp.PREFIX) and started != folder
        assert any(folder.rglob("*.py")), "TensorFlow wrote its generated code elsewhere"
    finally:
        child.kill()
        child.wait()
    mine = temp / own_temp.name(os.getpid())          # one still running
    mine.mkdir()
    odd = temp / f"{own_temp.PREFIX}{rundir.PID_SPACE}-\u00b2-1"     # a digit to str.isdigit, not to int()
    odd.mkdir()
    # Another process namespace's (a container sharing the folder, or this one's before a restart): not
    # judged by this one's pids, but let go once untouched for a week.
    theirs, old = temp / f"{own_temp.PREFIX}1-2-3", temp / f"{own_temp.PREFIX}4-5-6"
    for other in (theirs, old):
        other.mkdir()
    os.utime(old, (time.time() - own_temp.OTHERS_KEPT_S - 60,) * 2)
    assert folder.exists()
    own_temp.sweep(temp)
    assert sorted(p.name for p in temp.iterdir()) == sorted([mine.name, theirs.name])


def test_a_trainer_whose_starters_temporary_folder_is_gone_uses_the_systems(tmp_path, monkeypatch):
    """Not the starting trainer's own folder, which goes when it exits."""
    inherited = tmp_path / f"{own_temp.PREFIX}0-1-2"
    inherited.mkdir()
    monkeypatch.setenv("TMPDIR", str(inherited))
    monkeypatch.setenv(own_temp.BASE, str(tmp_path / "gone"))
    monkeypatch.setattr(tempfile, "tempdir", str(inherited))
    assert own_temp._base() != inherited and not Path(tempfile.gettempdir()).name.startswith(own_temp.PREFIX)


def test_a_trainer_a_ray_actor_started_ends_with_the_actor_however_it_ends(tmp_path):
    """Ray kills an actor's children only when the actor exits by its own path: one killed outright left its
    trainer training on. A stand-in actor starts two children, one of them as Ray's trainer is started."""
    actor = subprocess.Popen([sys.executable, "-c", """
import os, subprocess, sys, time
sleeper = [sys.executable, "-c", "import sys, time; from cifar_core import ray_backend; ray_backend.tie_to_actor(); "
                                 "open(sys.argv[1], 'w').close(); time.sleep(120)"]
tied = subprocess.Popen([*sleeper, sys.argv[1] + "/tied"], env={**os.environ, %r: str(os.getpid())})
loose = subprocess.Popen([*sleeper, sys.argv[1] + "/loose"], env={k: v for k, v in os.environ.items() if k != %r})
print(tied.pid, loose.pid, flush=True)
time.sleep(120)
""" % (ray_backend.INSIDE_TRAINER, ray_backend.INSIDE_TRAINER), str(tmp_path)], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    tied, loose = map(int, actor.stdout.readline().split())
    try:
        wait_for(lambda: (tmp_path / "tied").exists() and (tmp_path / "loose").exists(), timeout=60,
                 what="both children to start")
        actor.send_signal(signal.SIGKILL)
        actor.wait()
        wait_for(lambda: _gone(tied), timeout=10, what="the tied trainer to end with its actor")
        assert not _gone(loose)        # the one not tied trains on: what Ray left
    finally:
        for pid in (tied, loose):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
