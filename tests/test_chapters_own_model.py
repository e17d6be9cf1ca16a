"""Every chapter runs top to bottom on a learner's own model and shows that model's results: here a diffusers folder of
sdlab-tiny's family at other widths with random weights (tests/own_model.py), put in the chapter's MODEL. A chapter
whose asserts encode sdlab-tiny's outcomes without `if MODEL == "tiny":` stops here (its outputs are not compared).

The chapters share one kernel, each starting from an emptied namespace (`%reset -f`): nbval already runs each on a
fresh kernel, and sharing saves a kernel start and the imports per chapter."""
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
def kernel(tmp_path_factory):
    client = NotebookClient(nbformat.v4.new_notebook(), timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}})
    with client.setup_kernel():
        yield client, random_tiny(tmp_path_factory.mktemp("own") / "model")


@pytest.mark.parametrize("name", CHAPTERS)
def test_the_chapter_runs_on_your_own_model(name, kernel):
    client, own_model = kernel
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    first = next(c for c in book.cells if c.cell_type == "code")
    first.source = first.source.replace('MODEL = "tiny"', f"MODEL = {str(own_model)!r}", 1)
    book.cells = [nbformat.v4.new_code_cell("%reset -f"), *book.cells, nbformat.v4.new_code_cell(UNETS)]
    client.nb = book
    for index, cell in enumerate(book.cells):
        client.execute_cell(cell, index)  # raises CellExecutionError with the cell and its traceback
    printed = "".join(o.get("text", "") for o in book.cells[-1].outputs)
    assert printed.strip() == f"UNET WIDTHS {[tuple(UNET_WIDTHS)]}", printed
