"""The README and docs/ point only at files that exist: links, benchmark scripts and modules."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_relative_links_lead_to_files(document):
    text = document.read_text()
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "://" not in t]
    missing = [t for t in targets if not (document.parent / t).exists()]
    assert not missing, f"{document.name} links to files that do not exist: {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_named_scripts_and_modules_exist(document):
    text = document.read_text()
    scripts = set(re.findall(r"benchmarks/\w+\.py", text))
    modules = {f"cifar_core/{name}.py" for name in re.findall(r"`cifar_core/(\w+)\.py`", text)}
    missing = sorted(p for p in scripts | modules if not (ROOT / p).exists())
    assert not missing, f"{document.name} names files that do not exist: {missing}"
