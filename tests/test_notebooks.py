"""The chapters keep their promises: a MODEL switch up front, no helpers defined inline, and no number in the prose
(in digits or words: "twice", "most") that the next code cell does not assert. (nbval runs them; this checks how they are written.)"""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
CHAPTERS = ["00_pipeline", "01_vae_encoder", "02_vae_decoder", "03_text_encoder", "04_forward_process",
            "05_time_embedding_resnet", "06_down_mid_skips", "07_transformer_block", "08_cross_attention",
            "09_self_attention", "10_denoising_loop", "11_sampler", "12_guidance", "13_img2img_inpainting",
            "14_architectures", "15_load_train_lora", "16_unet_dit_mmdit", "17_what_if", "18_causal_tracing",
            "19_claims_checked"]
# model names, chapter cross-references and code spans are names, not claims
NAMES = re.compile(r"`[^`]*`|\b(?:1\.5|2\.1)\b|[Cc]hapters? \d\d(?:–\d\d)?|\.\./shared/seeds/")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")  # not the 0 of x0
# a number in words or a quantity word is a claim too: an assert must hold one of the numbers it stands for
SPELLED = "zero one two three four five six seven eight nine ten eleven twelve".split()
QUANTITIES = {**{w: {float(n)} for n, w in enumerate(SPELLED)}, "once": {1.0}, "single": {1.0}, "twice": {2.0},
              "double": {2.0}, "doubles": {2.0}, "half": {2.0, 0.5}, "halves": {2.0, 0.5}, "quarter": {4.0, 0.25},
              "most": {0.5}, "majority": {0.5}, "penultimate": {2.0}}
QUANTITY = re.compile(r"\b(" + "|".join(QUANTITIES) + r")\b", re.I)
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


def unasserted(book: list[dict]) -> list[str]:
    """Each number or quantity word in a markdown cell that no assert of the next code cell holds."""
    missing = []
    for i, c in enumerate(book):
        if c["cell_type"] != "markdown":
            continue
        text = NAMES.sub("", c["text"].split("\n", 1)[1] if i == 0 else c["text"])
        code = next((x["text"] for x in book[i + 1:] if x["cell_type"] == "code"), "")
        asserts = " ".join(line for line in code.splitlines() if line.lstrip().startswith("assert"))
        asserted = {float(n) for n in NUMBER.findall(asserts)}
        claims = [(n, {float(n)}) for n in NUMBER.findall(text)]
        claims += [(w, QUANTITIES[w.lower()]) for w in QUANTITY.findall(text)]
        missing += [f"{word!r} in {c['text']!r}" for word, values in claims if not values & asserted]
    return missing


def test_the_number_rule_catches_digits_and_words():
    def book(prose, code):
        return [{"cell_type": "markdown", "text": "# title\n" + prose}, {"cell_type": "code", "text": code}]

    assert unasserted(book("The batch is twice the prompt count.", "assert batch == 2 * prompts")) == []
    assert unasserted(book("The batch is twice the prompt count.", "print(batch)"))
    assert unasserted(book("Most of the mass is on padding; 69 pads.", "assert pad > 0.5\nassert n == 69")) == []
    assert unasserted(book("It takes one more ResNet.", "assert ups == downs"))
    assert unasserted(book("`hidden_states[-2]` is in code, not prose.", "x = 1")) == []


@pytest.mark.parametrize("name", CHAPTERS)
def test_numbers_in_prose_are_asserted_by_the_next_code_cell(name):
    assert unasserted(cells(name)) == []


@pytest.mark.parametrize("name", CHAPTERS)
def test_each_chapter_asks_runs_pictures_and_explains(name):
    book = cells(name)
    markdown = [c["text"] for c in book if c["cell_type"] == "markdown"]
    assert "**Question:**" in markdown[0] and markdown[-1].startswith("## What it shows")
    assert any(c["cell_type"] == "code" and any(p in c["text"] for p in PICTURES) for c in book)
