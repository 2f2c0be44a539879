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
        for sentence in (text.purpose, text.try_first):
            assert sentence.endswith(".") and sentence.count(". ") == 0, sentence    # one sentence each
            assert len(sentence) <= 130, sentence                                 # one line on a laptop


@pytest.mark.parametrize("word", ["epoch", "batch", "learning rate", "augmentation", "overfitting", "confusion matrix",
                                  "calibration", "accuracy", "test set", "training set", "Grad-CAM",
                                  "test-time augmentation", "preset", "loss", "feature map", "filter", "precision",
                                  "recall", "F1", "PCA", "run", "weights", "layer", "optimizer",
                                  "networks side by side"])
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
