"""In a real JupyterLab: chapters 06 and 08 run top to bottom in headless Chromium and their widgets answer a click
at 1280x800 with the file browser open; a notebook saved with widgets shows their pictures before running, even
untrusted. In JupyterLab and Notebook 7 (one server) real key presses and clicks drive every widget, focus stays in
it until Escape, and every control and canvas has a name a screen reader reads. Offline (every request off this
machine refused): each widget's export and the book built by `sdlab.sh book` stay interactive and log no console
error. Screenshots go to test-artifacts/."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from playwright.sync_api import TimeoutError

import sdlab
from sdlab.tiny import MODEL_DIR
from sdlab.grid import Cell, Grid
from sdlab.widgets import AttentionExplorer, DenoisingStepper, GridExplorer, NoiseExplorer, ShapeTracer, SweepViewer
from sdlab.widgets.book import build

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium")
CHAPTERS = {"06": "06_*.ipynb", "08": "08_*.ipynb"}

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Debian chromium on PATH (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def saved_with_widgets(root: Path, random_pipe) -> str:
    """A notebook whose outputs were saved by a run that showed a tracer and a stepper (as a chapter is stored)."""
    tracer = ShapeTracer(sdlab.architecture("sd15").trace(["vae"]))
    stepper = DenoisingStepper.from_pipe(random_pipe, steps=2)
    cells = []
    for source, widget in [("tracer.widget", tracer.widget), ("stepper.widget", stepper.widget)]:
        data, metadata = widget._repr_mimebundle_()
        cells.append(nbformat.v4.new_code_cell(source, execution_count=len(cells) + 1, outputs=[
            nbformat.v4.new_output("display_data", data=data, metadata=metadata)]))
    chapter = json.loads(next((ROOT / "notebooks").glob(CHAPTERS["08"])).read_text())  # saved as a chapter is
    metadata = {"kernelspec": dict(chapter["metadata"]["kernelspec"], display_name="Python 3 (ipykernel)"),
                "language_info": chapter["metadata"]["language_info"]}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=metadata), root / "saved.ipynb")
    return "saved.ipynb"


WIDGETS = ['MODEL = "tiny"', "import sdlab\nfrom sdlab.widgets import AttentionExplorer, DenoisingStepper, ShapeTracer\n"
           "pipe = sdlab.load(MODEL)\npipe.set_progress_bar_config(disable=True)",
           "AttentionExplorer.from_pipe(pipe, steps=2)", "DenoisingStepper.from_pipe(pipe, steps=3)",
           'ShapeTracer(sdlab.architecture("sd15").trace(["unet"]))']


def widgets_notebook(root: Path, model: str | None) -> str:
    """A notebook that shows the three widgets on the embedded model (or `model`), quickly."""
    cells = [nbformat.v4.new_code_cell(c.replace('"tiny"', json.dumps(model or "tiny"))) for c in WIDGETS]
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), root / "widgets.ipynb")
    return "widgets.ipynb"


def copy_chapter(pattern: str, root: Path, model: str | None) -> str:
    """Copy a chapter into the lab's root; point MODEL at `model` when the embedded one is not there yet."""
    source = next((ROOT / "notebooks").glob(pattern))
    notebook = json.loads(source.read_text())
    if model:
        for cell in notebook["cells"]:
            cell["source"] = [re.sub(r'^MODEL = "[^"]*"', f'MODEL = "{model}"', line) for line in cell["source"]]
    (root / source.name).write_text(json.dumps(notebook))
    return source.name


def wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def lab(tmp_path_factory, request):
    """JupyterLab on a free localhost port, no token, over a temp copy of the two chapters."""
    root = tmp_path_factory.mktemp("lab")
    model = None if (MODEL_DIR / "model_index.json").is_file() else str(request.getfixturevalue("pipe_dir"))
    names = {key: copy_chapter(pattern, root, model) for key, pattern in CHAPTERS.items()}
    names["saved"] = saved_with_widgets(root, request.getfixturevalue("random_pipe"))
    names["widgets"] = widgets_notebook(root, model)
    settings = root / ".settings"
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    # Without windowing every cell is in the DOM, so widgets below the fold can be found and clicked.
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = settings / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))  # no toast on top
    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / ".runtime"), "IPYTHONDIR": str(root / ".ipython")}
    log = (root / "lab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.open_browser=False",
         f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
         f"--LabApp.workspaces_dir={root / '.workspaces'}", "--LabApp.expose_app_in_browser=True",
         "--JupyterNotebookApp.expose_app_in_browser=True"],  # the same server serves Notebook 7
        stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, proc)
        yield url, names
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


def find(name: str) -> str:
    """JS for the notebook panel of `name` (optional chaining: JupyterLab defines jupyterapp late)."""
    return f"[...(window.jupyterapp?.shell?.widgets('main') ?? [])].find(w => w.context?.path === {json.dumps(name)})"


def open_notebook(browser, url: str, name: str):
    """A 1280x800 page on the notebook with the file browser open, once its kernel is idle."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{url}/lab/tree/{name}?reset")  # reset: do not restore the other chapter's tab
    page.wait_for_function(f"{find(name)}?.sessionContext?.session?.kernel?.status === 'idle'",
                           timeout=60_000, polling=250)
    page.evaluate("() => window.jupyterapp.shell.activateById('filebrowser')")
    return page


def run_all(page, name: str, timeout_s: float = 150):
    """Run every cell of the open notebook, and fail with the first error output if any."""
    notebook = find(name)
    # run-all resolves once every cell has run (or one failed); start it when the kernel is ready, then poll.
    page.evaluate(f"""async () => {{
        await {notebook}.sessionContext.ready;
        window.jupyterapp.commands.execute('notebook:run-all-cells').then(() => {{ window.sdlabDone = true; }});
    }}""")
    try:
        page.wait_for_function("() => window.sdlabDone === true", timeout=timeout_s * 1000, polling=500)
    except TimeoutError:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"timeout_{name}.png", full_page=True)
        raise
    cells = f"{notebook}.content.widgets.filter(c => c.model.type === 'code')"
    errors = page.evaluate(f"""() => {cells}.flatMap(c => c.model.outputs.toJSON())
        .filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue)""")
    assert not errors, f"{name} raised: {errors[0]}"
    assert page.evaluate(f"() => {cells}.every(c => c.model.executionCount > 0)"), f"{name}: a cell did not run"
    return page


def changes_view(page, root: str, act) -> None:
    """Do `act` and wait until the view under `root` draws something else."""
    before = page.get_attribute(root, "data-view")
    act()
    page.wait_for_function("([root, old]) => document.querySelector(root).dataset.view !== old", arg=[root, before],
                           timeout=5_000)


def test_chapter_06_shape_tracer_fits_the_screen_and_follows_a_click(lab, browser):
    url, names = lab
    page = run_all(open_notebook(browser, url, names["06"]), names["06"])
    tracer = page.locator(".sdlab-tracer")
    tracer.wait_for(state="visible", timeout=30_000)
    box = tracer.bounding_box()
    assert box["height"] <= 700, f"the tracer is {box['height']:.0f} px high: it must fit a 1280x800 window"
    path = tracer.locator(".sdlab-stage:not(.sdlab-on)", has_text=re.compile(r"^down_blocks")).first.inner_text()
    stage, name = tracer.locator(".sdlab-stage", has_text=re.compile(f"^{re.escape(path)}$")), "unet." + path
    stage.scroll_into_view_if_needed()
    changes_view(page, ".sdlab-tracer", stage.click)
    assert tracer.locator(".sdlab-details b").first.inner_text() == name and "sdlab-on" in stage.get_attribute("class")
    assert "skip out" in tracer.locator(".sdlab-details").inner_text()  # every down stage pushes onto the skip stack
    hits = tracer.locator(".sdlab-hit title").evaluate_all("titles => titles.map(t => t.textContent)")
    assert hits == [name]  # the diagram beside it highlights that stage, and only it
    changes_view(page, ".sdlab-tracer", lambda: tracer.locator(".sdlab-depth").fill("1"))
    assert tracer.locator(".sdlab-details b").first.inner_text() == name  # a shallower tree keeps the selection
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "browser_05_shape_tracer.png")


def test_chapter_08_opens_unmodified_and_its_explorer_fits_beside_the_file_browser(lab, browser):
    url, names = lab
    page = open_notebook(browser, url, names["08"])
    page.wait_for_timeout(1_000)
    changed_on_open = page.evaluate(f"() => {find(names['08'])}.context.model.dirty")  # asserted last
    run_all(page, names["08"])
    explorer = page.locator(".sdlab-explorer")
    explorer.wait_for(state="visible", timeout=30_000)
    explorer.scroll_into_view_if_needed()
    assert page.locator("#filebrowser").is_visible()
    right = page.evaluate("() => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook')"
                          ".getBoundingClientRect().right")
    assert explorer.bounding_box()["x"] + explorer.bounding_box()["width"] <= right, "the explorer is clipped"
    assert explorer.evaluate("e => e.scrollWidth <= e.clientWidth")
    word = explorer.locator("select").first
    assert word.input_value() not in ("a", "the")  # it opens on a content word
    other = [o for o in word.locator("option").all_inner_texts() if o != word.input_value()][-1]
    changes_view(page, ".sdlab-explorer", lambda: word.select_option(other))
    assert f'"{other}"' in explorer.locator(".sdlab-title").inner_text()
    changes_view(page, ".sdlab-explorer", lambda: explorer.locator(".sdlab-norm", has_text="none").click())
    assert explorer.locator(".sdlab-legend").inner_text().startswith("none:")
    assert explorer.locator(".sdlab-ticks span").first.inner_text() != "1"  # the bar shows the probabilities' range
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "browser_06_attention.png")
    assert changed_on_open is False, "opening the chapter changed it (its saved kernelspec differs from the installed)"


def test_a_notebook_opened_before_running_shows_its_widgets_pictures_and_stays_unmodified(lab, browser):
    url, names = lab
    page = open_notebook(browser, url, names["saved"])
    outputs = page.locator(".jp-OutputArea-output")
    outputs.first.wait_for(timeout=30_000)
    page.wait_for_timeout(1_000)  # let JupyterLab settle on what it shows (and whether it marks the file changed)
    assert page.locator(".jp-OutputArea-output img").count() == 2  # untrusted: the saved pictures, not the widgets
    assert "VBox(" not in outputs.all_inner_texts() and "Digraph" not in " ".join(outputs.all_inner_texts())
    assert page.evaluate(f"() => {find(names['saved'])}.context.model.dirty") is False
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "browser_first_open.png")


# (view, control, keys): each key press on the focused control must change the view
KEYS = [(".sdlab-explorer", "select >> nth=0", ["ArrowDown", "ArrowUp"]),
        (".sdlab-explorer", "input[type=range]", ["ArrowLeft", "Home", "End", "PageDown"]),
        (".sdlab-stepper", "input[type=range]", ["ArrowRight", "End", "Home", "PageUp"]),
        (".sdlab-stepper", "select", ["ArrowDown"]),
        (".sdlab-tracer", ".sdlab-depth", ["ArrowUp", "ArrowDown"]),
        (".sdlab-tracer", ".sdlab-tree", ["ArrowDown", "End", "Home", "PageDown"])]
LABELLED = """view => [...view.querySelectorAll("select, input, button")].filter(c =>
    !(c.labels?.length || c.getAttribute("aria-label") || c.textContent.trim())).map(c => c.outerHTML.slice(0, 60))"""


@pytest.mark.parametrize("app", ["lab/tree", "notebooks"], ids=["JupyterLab", "Notebook 7"])
def test_keys_and_clicks_drive_every_widget_and_escape_leaves(lab, browser, app):
    url, names = lab
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{url}/{app}/{names['widgets']}?reset")  # reset: JupyterLab opens this notebook alone
    current = f"({find(names['widgets'])} ?? window.jupyterapp?.shell?.currentWidget)"
    page.wait_for_function(f"{current}?.sessionContext?.session?.kernel?.status === 'idle'", timeout=60_000)
    page.evaluate(f"() => window.jupyterapp.commands.execute('notebook:run-all-cells').then(() => {{ window.sdlabDone = 1; }})")
    page.wait_for_function("window.sdlabDone && document.querySelectorAll('.sdlab-view[data-view]').length === 3",
                           timeout=150_000, polling=500)
    active = f"() => {current}.content.activeCellIndex"
    for root, control, keys in KEYS:
        view = page.locator(root)
        view.locator(control).first.focus()
        cell = page.evaluate(active)
        for key in keys:
            changes_view(page, root, lambda: page.keyboard.press(key))
            assert page.evaluate("r => document.querySelector(r).contains(document.activeElement)", root), \
                f"{key} on {root} {control} took focus out of the widget"
        assert page.evaluate(active) == cell, f"the notebook moved to another cell on a key in {root}"
    page.keyboard.press("Escape")  # gives focus back to the notebook: arrow keys move between cells again
    assert page.evaluate("() => !document.activeElement.closest('.sdlab-view') && "
                         "!!document.activeElement.closest('.jp-Notebook')")
    # mouse: a heatmap pixel reads out its value and word; a block in the diagram selects it
    explorer = page.locator(".sdlab-explorer")
    explorer.locator(".sdlab-heat").click(position={"x": 10, "y": 10})
    word = json.loads(explorer.get_attribute("data-view"))["word"]
    assert re.match(rf'"{re.escape(word)}" at row 0, column 0 of the \d+x\d+ grid: attention [\d.e-]+$',
                    explorer.locator(".sdlab-readout").inner_text())
    tracer = page.locator(".sdlab-tracer")
    node = tracer.locator("g.node.sdlab-pick", has_text="mid_block").first
    node.scroll_into_view_if_needed()
    changes_view(page, ".sdlab-tracer", node.click)
    assert json.loads(tracer.get_attribute("data-view"))["selected"] == "unet.mid_block"
    # accessibility: every control has a name, toggles say whether they are on, every canvas says what it shows
    for root in (".sdlab-explorer", ".sdlab-stepper", ".sdlab-tracer"):
        assert page.locator(root).evaluate(LABELLED) == [], f"unlabelled controls in {root}"
        unnamed = page.locator(root).evaluate("v => [...v.querySelectorAll('canvas')].filter(c => c.isConnected && "
                                              "(c.getAttribute('role') !== 'img' || !c.getAttribute('aria-label'))).length")
        assert unnamed == 0, f"{unnamed} canvases in {root} have no text alternative"
    pressed = explorer.locator(".sdlab-norm").evaluate_all("bs => bs.map(b => b.getAttribute('aria-pressed'))")
    assert sorted(pressed) == ["false", "false", "true"]
    assert tracer.locator(".sdlab-stage[aria-pressed=true]").all_inner_texts() == ["mid_block"]
    assert "top words here" in explorer.locator(".sdlab-heat").get_attribute("aria-label")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"keys_{app.split('/')[0]}.png")
    page.close()


@pytest.fixture(scope="module")
def exports(tmp_path_factory, random_pipe):
    folder = tmp_path_factory.mktemp("exports")
    with sdlab.trace(random_pipe) as t:
        random_pipe("a red circle on the left", num_inference_steps=1)
    grid = Grid(["a red circle on the left"], [0, 1], ["corrupted", "mid @ 0-1", "mid @ 2-3"],
                [Cell("a red circle on the left", s, label, {"right": s == i}, np.full((8, 8, 3), 0.1 * i, np.float32))
                 for s in (0, 1) for i, label in enumerate(["corrupted", "mid @ 0-1", "mid @ 2-3"])])
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    return {".sdlab-tracer": ShapeTracer(t).export(folder / "tracer.html"),
            ".sdlab-explorer": AttentionExplorer.from_pipe(random_pipe, steps=2).export(folder / "explorer.html"),
            ".sdlab-stepper": DenoisingStepper.from_pipe(random_pipe, steps=3).export(folder / "stepper.html"),
            ".sdlab-noise": NoiseExplorer.from_pipe(random_pipe, latent, [0, 500, 900]).export(folder / "noise.html"),
            ".sdlab-sweep": SweepViewer(Grid(grid.prompts, grid.seeds, grid.settings[1:], [
                c for c in grid.cells if c.setting != "corrupted"]), "strength").export(folder / "sweep.html"),
            ".sdlab-tracing": GridExplorer(grid).export(folder / "tracing.html")}


CONTROLS = {".sdlab-tracer": lambda v: v.locator(".sdlab-stage").nth(3).click(),
            ".sdlab-explorer": lambda v: v.locator("select").nth(1).select_option(index=3),
            ".sdlab-stepper": lambda v: v.locator("input[type=range]").fill("3"),
            ".sdlab-noise": lambda v: v.locator(".sdlab-line").click(position={"x": 230, "y": 40}),  # the last t
            ".sdlab-sweep": lambda v: (v.locator("input[type=range]").focus(), v.page.keyboard.press("End")),
            ".sdlab-tracing": lambda v: (v.locator(".sdlab-cells").focus(), v.page.keyboard.press("ArrowRight"))}


def watch(page) -> list[str]:
    """Refuse requests off the machine and collect what the page logs as an error (and each refused request)."""
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        ("file:", "data:", "blob:", "http://127.0.0.1", "http://localhost")) else (
        errors.append(f"request off the machine: {route.request.url}"), route.abort()))
    return errors


def test_each_export_works_offline(exports, browser):
    for root, path in exports.items():
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = watch(page)
        page.goto(path.as_uri())
        page.wait_for_selector(f"{root}[data-view]", timeout=10_000)
        changes_view(page, root, lambda: CONTROLS[root](page.locator(root)))
        assert not errors, errors
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"export_{root[7:]}.png")
        if root == ".sdlab-stepper":
            assert "step 3 of 3" in page.locator(".sdlab-title").inner_text()  # the slider and the title count alike
        if root == ".sdlab-noise":
            assert page.locator(".sdlab-title").inner_text().startswith("t = 900:")
        page.close()


def test_the_book_works_offline_and_logs_no_error(tmp_path, browser, live_export):
    chapter = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# The VAE's shapes\nA latent is $\\sqrt{\\bar\\alpha_t}\\,x_0$ plus noise."),
        nbformat.v4.new_code_cell("import sdlab\nfrom sdlab.widgets import ShapeTracer\n"
                                  "ShapeTracer(sdlab.architecture('sd15').trace(['vae'])).widget")])
    nbformat.write(chapter, tmp_path / "01_vae.ipynb")
    index = build([tmp_path / "01_vae.ipynb"], tmp_path / "book", export_dir=live_export)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = watch(page)  # every request off the machine refused and counted as an error
    page.goto(index.as_uri())
    page.get_by_role("link", name="The VAE's shapes").click()
    page.wait_for_selector(".sdlab-tracer[data-view]", timeout=10_000)
    tree = page.locator(".sdlab-tree")
    changes_view(page, ".sdlab-tracer", lambda: tree.select_option("vae.decoder"))
    assert page.locator(".sdlab-details b").first.inner_text() == "vae.decoder"
    assert page.locator(".jp-MarkdownCell math msqrt").count() == 1  # math drawn by the browser, no MathJax
    page.wait_for_timeout(500)
    assert errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "book_offline.png")
