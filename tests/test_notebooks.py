"""The chapters keep their promises: a MODEL switch up front, no helpers defined inline, and no number in the prose
that the next code cell does not assert. (nbval runs them; this checks how they are written.)"""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
CHAPTERS = ["00_pipeline", "01_vae_encoder", "02_vae_decoder", "03_text_encoder", "04_time_embedding_resnet",
            "05_down_mid_skips", "06_cross_attention", "07_self_attention", "08_denoising_loop", "09_architectures",
            "10_claims_checked", "11_load_train_lora"]
# model names, chapter cross-references and code spans are names, not claims
NAMES = re.compile(r"`[^`]*`|\b(?:1\.5|2\.1)\b|[Cc]hapters? \d\d(?:–\d\d)?|\.\./shared/seeds/")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")  # not the 0 of x0
PICTURES = ("plt.show()", ".widget", "display(", "_diagram(")


def cells(name: str) -> list[dict]:
    return [dict(c, text="".join(c["source"])) for c in json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())["cells"]]


def test_every_chapter_exists_and_nothing_else():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == CHAPTERS


@pytest.mark.parametrize("name", CHAPTERS)
def test_first_code_cell_sets_model_to_the_embedded_tiny(name):
    first = next(c for c in cells(name) if c["cell_type"] == "code")
    assert 'MODEL = "tiny"' in first["text"]


@pytest.mark.parametrize("name", CHAPTERS)
def test_no_helpers_are_defined_in_a_notebook(name):
    for c in cells(name):
        if c["cell_type"] == "code":
            assert not re.search(r"^\s*(def|class) |lambda\b", c["text"], re.M), c["text"]


@pytest.mark.parametrize("name", CHAPTERS)
def test_pictures_and_widgets_are_not_compared_by_nbval(name):
    for c in cells(name):
        if c["cell_type"] == "code" and any(p in c["text"] for p in PICTURES):
            assert c["text"].startswith("# NBVAL_IGNORE_OUTPUT"), c["text"]


@pytest.mark.parametrize("name", CHAPTERS)
def test_numbers_in_prose_are_asserted_by_the_next_code_cell(name):
    book = cells(name)
    for i, c in enumerate(book):
        if c["cell_type"] != "markdown":
            continue
        text = NAMES.sub("", c["text"].split("\n", 1)[1] if i == 0 else c["text"])
        numbers = NUMBER.findall(text)
        if not numbers:
            continue
        code = next((x["text"] for x in book[i + 1:] if x["cell_type"] == "code"), "")
        asserts = " ".join(line for line in code.splitlines() if line.lstrip().startswith("assert"))
        asserted = {float(n) for n in NUMBER.findall(asserts)}
        for n in numbers:
            assert float(n) in asserted, f"{name}: '{n}' in {c['text']!r} is not asserted by {asserts!r}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_each_chapter_asks_runs_pictures_and_explains(name):
    book = cells(name)
    markdown = [c["text"] for c in book if c["cell_type"] == "markdown"]
    assert "**Question:**" in markdown[0] and markdown[-1].startswith("## What it shows")
    assert any(c["cell_type"] == "code" and any(p in c["text"] for p in PICTURES) for c in book)
