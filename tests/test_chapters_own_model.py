"""Every chapter runs top to bottom on a learner's own model and shows that model's results: here a diffusers folder of
sdlab-tiny's family at other widths with random weights (tests/own_model.py), put in the chapter's MODEL. A chapter
whose asserts encode sdlab-tiny's outcomes without `if MODEL == "tiny":` stops here (its outputs are not compared)."""
import nbformat
import pytest
from nbclient import NotebookClient

from own_model import UNET_WIDTHS, random_tiny
from test_notebooks import CHAPTERS, NOTEBOOKS

# the last cell: which UNets the chapter's variables hold, so a chapter that quietly loads sdlab-tiny is caught
UNETS = """import diffusers
print("UNET WIDTHS", sorted({tuple(v.unet.config.block_out_channels) for v in list(globals().values())
                             if isinstance(v, diffusers.DiffusionPipeline) and hasattr(v, "unet")}))"""


@pytest.fixture(scope="module")
def own_model(tmp_path_factory):
    return random_tiny(tmp_path_factory.mktemp("own") / "model")


@pytest.mark.parametrize("name", CHAPTERS)
def test_the_chapter_runs_on_your_own_model(name, own_model):
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    first = next(c for c in book.cells if c.cell_type == "code")
    first.source = first.source.replace('MODEL = "tiny"', f"MODEL = {str(own_model)!r}", 1)
    book.cells.append(nbformat.v4.new_code_cell(UNETS))
    NotebookClient(book, timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    printed = "".join(o.get("text", "") for o in book.cells[-1].outputs)
    assert printed.strip() == f"UNET WIDTHS {[tuple(UNET_WIDTHS)]}", printed
