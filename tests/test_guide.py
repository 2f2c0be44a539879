"""Every page says what it is for and what to try first; the glossary explains the words the pages use."""
import re

import pytest
from streamlit.testing.v1 import AppTest

from app_pages import guide
from conftest import ROOT

# The pages in the navigation, read from studio.py itself, so a new page without its sentences fails here.
PAGE_FILES = sorted(re.findall(r'st\.Page\("app_pages/(\w+)\.py"', (ROOT / "studio.py").read_text()))


def test_every_page_file_has_its_two_sentences():
    assert sorted(guide.PAGES) == PAGE_FILES
    for text in guide.PAGES.values():
        for sentence in (text.purpose, text.try_first, *filter(None, [text.paused_try])):
            assert sentence.endswith(".") and sentence.count(". ") == 0, sentence    # one sentence each
            assert len(sentence) <= 130, sentence                                 # one line on a laptop


@pytest.mark.parametrize("word", ["epoch", "batch", "learning rate", "augmentation", "overfitting", "confusion matrix",
                                  "calibration", "accuracy", "test set", "training set", "Grad-CAM",
                                  "test-time augmentation", "recipe", "preset", "loss", "feature map", "filter", "precision",
                                  "recall", "F1", "PCA", "run", "weights", "layer", "optimizer",
                                  "networks side by side", "seed", "airbench"])
def test_the_glossary_explains_the_words_the_pages_use(word):
    assert word.lower() in {term.lower() for term in guide.GLOSSARY}


def test_each_page_shows_its_title_and_sentences_and_the_glossary_is_one_click_away(tiny_env, monkeypatch):
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "studio.py"), default_timeout=180)
    at.run()
    for name in PAGE_FILES:
        at.switch_page(f"app_pages/{name}.py").run()
        assert not at.exception, (name, [e.value for e in at.exception])
        text = guide.PAGES[name]
        assert at.title[0].value == text.title
        shown = " ".join(c.value.replace("\\", "") for c in at.caption)
        assert text.purpose in shown and text.try_first in shown, name
        links = [link.proto.page for link in at.sidebar.get("page_link")]
        assert any("glossary" in link for link in links), (name, links)
        if name == "glossary":
            lines = [m.value.replace("\\", "") for m in at.markdown]
            assert all(any(line.startswith(f"**{term}**") for line in lines) for term in guide.GLOSSARY)


def test_offline_a_page_says_how_the_whole_data_set_comes_for_this_visitor(monkeypatch, tmp_path):
    """On a server a class shares, with no data set yet, Train told a student to download it in the sidebar
    (the button is the teacher's) and to keep the Quick recipe (it opens on For a whole class); a server whose
    own data file is damaged has no download button at all; Home spoke of 60,000 photos."""
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("CIFAR10_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "runs"))

    def said(page: str) -> str:
        at = AppTest.from_file(str(ROOT / "studio.py"), default_timeout=180)
        at.run()
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return " ".join(e.value.replace("\\", "") for e in [*at.caption, *at.markdown, *at.sidebar.info,
                                                              *at.sidebar.error])

    alone = said("train")
    assert "Download the full data set in the sidebar (training needs its 50,000 pictures), then keep the Quick " \
           "recipe" in alone
    assert "1,000 of its 60,000 are here until the whole data set is downloaded" in said("home")
    monkeypatch.setenv("CIFAR_ADMIN_PASSWORD", "s3cret")       # a class's server, seen by a student
    student = said("train")
    assert "Ask your teacher to download the full data set in the sidebar (training needs its 50,000 pictures), " \
           "then keep the For a whole class recipe" in student
    assert "Your teacher can download the full data set here" in student
    assert "once your teacher downloads it in the sidebar" in said("explore")
    monkeypatch.delenv("CIFAR_ADMIN_PASSWORD")
    damaged = tmp_path / "cifar-10-python.tar.gz"
    damaged.write_bytes(b"not an archive")
    monkeypatch.setenv("CIFAR10_DATA", str(damaged))
    said("explore")             # found unreadable as a page reads it; every page after knows
    assert "Ask whoever runs this server to replace its data file, which cannot be read" in said("train")
    told = said("explore")
    assert "cifar-10-python.tar.gz" in told and str(tmp_path) not in told        # the server's folders unsaid
