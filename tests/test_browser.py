"""In a real JupyterLab: chapters 05 and 06 run top to bottom in headless Chromium, and the shape tracer and the
attention heatmap render and respond to a selection. Screenshots go to test-artifacts/."""
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

import pytest
from playwright.sync_api import TimeoutError, expect

from sdlab.tiny import MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium")
CHAPTERS = {"05": "05_*.ipynb", "06": "06_*.ipynb"}

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Debian chromium on PATH (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
         f"--LabApp.workspaces_dir={root / '.workspaces'}", "--LabApp.expose_app_in_browser=True"],
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


def run_all(browser, url: str, name: str, timeout_s: float = 150):
    """Open a notebook, wait for its kernel, run every cell, and fail with the first error output if any."""
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(f"{url}/lab/tree/{name}?reset")  # reset: do not restore the other chapter's tab
    # optional chaining: polling starts before JupyterLab has defined window.jupyterapp, and a throw fails the wait
    notebook = (f"[...(window.jupyterapp?.shell?.widgets('main') ?? [])]"
                f".find(w => w.context?.path === {json.dumps(name)})")
    page.wait_for_function(f"{notebook}?.sessionContext?.session?.kernel?.status === 'idle'",
                           timeout=60_000, polling=250)
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


def test_chapter_05_shape_tracer_renders_and_follows_a_click(lab, browser):
    url, names = lab
    page = run_all(browser, url, names["05"])
    tracer = page.locator(".sdlab-tracer")
    tracer.wait_for(state="visible", timeout=30_000)
    details = tracer.locator(".sdlab-details")
    shown = details.locator("b")  # the block's name heads the details table
    assert shown.inner_text().startswith("unet") and tracer.locator("svg").count() == 1
    target = tracer.locator("button.sdlab-stage:not(.mod-warning)", has_text=re.compile(r"^down_blocks")).first
    name = "unet." + target.inner_text()  # a down stage the chapter has not selected
    stage = tracer.locator("button.sdlab-stage", has_text=re.compile(f"^{re.escape(target.inner_text())}$"))
    assert shown.inner_text() != name
    stage.scroll_into_view_if_needed()
    stage.click()
    page.wait_for_function("name => document.querySelector('.sdlab-details b').innerText === name", arg=name,
                           timeout=30_000)
    expect(stage).to_have_class(re.compile(r"\bmod-warning\b"))  # the clicked stage is highlighted
    assert "skip out" in details.inner_text()  # every down stage pushes onto the skip stack
    ARTIFACTS.mkdir(exist_ok=True)
    tracer.screenshot(path=ARTIFACTS / "browser_05_shape_tracer.png")


def test_chapter_06_heatmap_renders_and_follows_a_word(lab, browser):
    url, names = lab
    page = run_all(browser, url, names["06"])
    explorer = page.locator(".sdlab-attention")
    explorer.wait_for(state="visible", timeout=30_000)
    heatmap = explorer.locator("img.sdlab-heatmap")
    assert heatmap.evaluate("img => img.complete && img.naturalWidth > 0")
    before = heatmap.get_attribute("src")
    word = explorer.locator("select").first
    options = word.locator("option").all_inner_texts()
    word.select_option(options[-1] if word.input_value() != options[-1] else options[0])
    page.wait_for_function("old => document.querySelector('img.sdlab-heatmap').src !== old", arg=before,
                           timeout=30_000)
    assert heatmap.evaluate("img => img.complete && img.naturalWidth > 0")
    ARTIFACTS.mkdir(exist_ok=True)
    explorer.screenshot(path=ARTIFACTS / "browser_06_attention.png")
