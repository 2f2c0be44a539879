"""The visitor's model choice, kept on the server: across reloads, bounded, and never a path from outside."""
import os

import pytest
from streamlit.testing.v1 import AppTest

from app_pages import identity
from cifar_core import evaluation, remembered
from conftest import ROOT
from prepared_runs import finished_run

ALICE, BOB = "a" * 32, "b" * 32    # owner ids are 32 hex digits (identity.owner_id)


def test_a_choice_is_kept_per_visitor(tiny_env):
    assert remembered.recall(ALICE) is None
    assert remembered.remember(ALICE, "20261128-101500-abc123")
    assert remembered.remember(BOB, "bundled")
    assert remembered.recall(ALICE) == "20261128-101500-abc123" and remembered.recall(BOB) == "bundled"
    assert remembered.remember(ALICE, "bundled") and remembered.recall(ALICE) == "bundled"


@pytest.mark.parametrize("owner, key", [("../" * 10 + "x" * 2, "bundled"), ("A" * 32, "bundled"), ("a" * 33, "bundled"),
                                        (ALICE, "../escape"), (ALICE, ".hidden"), (ALICE, "x" * 65), (ALICE, ""),
                                        (ALICE, None), (None, "bundled")])
def test_odd_owners_and_keys_are_refused_and_write_nothing(tiny_env, owner, key):
    assert remembered.remember(owner, key) is False
    folder = tiny_env / "runs" / remembered.FOLDER
    assert not folder.exists() or not os.listdir(folder)


def test_a_damaged_or_oversized_file_reads_as_no_choice(tiny_env):
    remembered.remember(ALICE, "bundled")
    path = tiny_env / "runs" / remembered.FOLDER / f"{ALICE}.json"
    for content in (b"{not json", b'["bundled"]', b'{"model": "../x"}', b'{"model": "' + b"a" * 300 + b'"}'):
        path.write_bytes(content)
        assert remembered.recall(ALICE) is None


def test_only_the_most_recent_visitors_are_kept(tiny_env, monkeypatch):
    monkeypatch.setattr(remembered, "MAX_PEOPLE", 3)
    owners = [f"{i:032x}" for i in range(5)]
    for age, owner in enumerate(owners):
        remembered.remember(owner, "bundled")
        path = tiny_env / "runs" / remembered.FOLDER / f"{owner}.json"
        os.utime(path, (1e9 + age, 1e9 + age))      # oldest first, whatever the file system's clock resolution
    remembered.remember(owners[4], "bundled")         # a write prunes
    kept = sorted(p.name for p in (tiny_env / "runs" / remembered.FOLDER).iterdir())
    assert kept == [f"{o}.json" for o in owners[2:]]


def session(token: str) -> AppTest:
    """A fresh browser session (a new tab, or a reload) of the visitor whose cookie holds `token`."""
    at = AppTest.from_file(str(ROOT / "studio.py"), default_timeout=120)
    at.session_state["owner"] = token      # owner() reads the cookie's token; AppTest has no cookies, so this
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_chosen_model_survives_a_reload_and_falls_back_when_it_is_gone(tiny_env, monkeypatch):
    import shutil
    monkeypatch.chdir(ROOT)
    run = finished_run("kept choice", accuracy=0.7134)
    visitor, stranger = identity.new_token(), identity.new_token()

    first = session(visitor)
    model = first.sidebar.selectbox[0]
    assert model.options == [model.options[0], "Run kept choice (71.3%)"]      # evaluation.percent, one decimal
    assert evaluation.ACCURACY_DEFINITION in model.help                     # stated where the figures are
    model.select("Run kept choice (71.3%)").run()

    again = session(visitor)                                                 # the reload: a new session
    assert again.sidebar.selectbox[0].value == "Run kept choice (71.3%)"
    again.switch_page("app_pages/explore.py").run()
    assert again.sidebar.selectbox[0].value == "Run kept choice (71.3%)"
    assert session(stranger).sidebar.selectbox[0].value.startswith("Bundled model")   # someone else's is theirs

    shutil.rmtree(run.path)                                                  # the remembered run is deleted
    assert session(visitor).sidebar.selectbox[0].value.startswith("Bundled model")
