"""The book's "try it" page: sdlab-tiny and its attention maps running in the browser with onnxruntime-web.

One self-contained HTML file (graphs, runtime and scripts inlined), so it opens from file:// and from any static
host with nothing installed and no network. onnxruntime-web comes from the npm registry once, into a cache.
>>> build_page(Path("build/book"))            # build/book/try.html
>>> build_page(Path("out"), export_dir)        # reuse graphs sdlab.export already wrote
"""
import base64
import html
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ...errors import SdlabError

HERE = Path(__file__).resolve().parent
ORT_VERSION = "1.31.1"
ORT_FILES = {"runtime": "ort.wasm.min.js", "glue": "ort-wasm-simd-threaded.mjs", "wasm": "ort-wasm-simd-threaded.wasm"}
WORKER = ["randn.js", "scheduler.js", "worker.js"]    # after onnxruntime-web, in the worker
PAGE = ["tokenizer.js", "heatmap.js", "page.js"]       # on the page
PAGE_NAME = "try.html"


def cache_dir() -> Path:
    return Path(os.environ.get("SDLAB_CACHE", Path.home() / ".cache" / "sdlab"))


def onnxruntime_web() -> dict[str, bytes]:
    """onnxruntime-web's files the page needs, from `npm pack` (the registry's checked tarball), cached."""
    tarball = cache_dir() / "npm" / f"onnxruntime-web-{ORT_VERSION}.tgz"
    if not tarball.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise SdlabError("the live page needs onnxruntime-web from npm: install Node.js's npm "
                             "(apt-get install npm) and build again")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tarball.parent) as tmp:
            done = subprocess.run([npm, "pack", f"onnxruntime-web@{ORT_VERSION}", "--pack-destination", tmp],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SdlabError(f"npm could not fetch onnxruntime-web {ORT_VERSION} (is the npm registry "
                                 f"reachable?): {done.stderr.strip().splitlines()[-1:]}")
            (Path(tmp) / tarball.name).replace(tarball)
    with tarfile.open(tarball) as tar:
        return {key: tar.extractfile(f"package/dist/{name}").read() for key, name in ORT_FILES.items()}


def script(element_id: str, text: str, kind: str = "text/plain", **data) -> str:
    """A script element holding text that the page reads (never run by the browser unless kind says so)."""
    if "</script" in text.lower():
        raise SdlabError(f"{element_id} contains '</script' and cannot be inlined")
    attributes = "".join(f' data-{k}="{html.escape(v)}"' for k, v in data.items())
    return f'<script type="{kind}" id="{element_id}"{attributes}>{text}</script>\n'


def inline(name: str, data: bytes, kind: str = "application/octet-stream") -> str:
    """A file as base64 in the page, read back as a data: URL of type `kind`."""
    return script(f"asset-{name}", base64.b64encode(data).decode("ascii"), type=kind)


def build_page(out: Path, export_dir: Path | None = None) -> Path:
    """Write out/try.html; exports sdlab-tiny first (about half a minute) unless `export_dir` holds
    sdlab.export's files."""
    out = Path(out)
    if not out.is_dir():
        raise SdlabError(f"cannot write the live page: folder {out} does not exist")
    runtime = onnxruntime_web()  # before the export: a missing npm fails at once, not after the export
    if export_dir is not None:
        return write_page(out, Path(export_dir), runtime)
    from ...export import export
    with tempfile.TemporaryDirectory() as tmp:
        return write_page(out, export("tiny", Path(tmp) / "export"), runtime)


def sources(names: list[str]) -> str:
    return "\n".join((HERE / n).read_text(encoding="utf-8") for n in names)


def write_page(out: Path, export_dir: Path, runtime: dict[str, bytes]) -> Path:
    """try.html: the page's markup with the manifest, the worker's script and every file inlined."""
    manifest = json.loads((export_dir / "live.json").read_text(encoding="utf-8"))
    worker = runtime["runtime"].decode("utf-8") + "\n" + sources(WORKER)
    assets = [script("live-manifest", json.dumps(manifest).replace("</", "<\\/"), "application/json"),
              script("live-worker", worker), inline("glue", runtime["glue"], "text/javascript"),
              inline("wasm", runtime["wasm"])]
    assets += [inline(name, (export_dir / file).read_bytes()) for name, file in manifest["files"].items()]
    assets.append(script("live-page", sources(PAGE), "text/javascript"))
    page = (HERE / "page.html").read_text(encoding="utf-8").replace("<!-- ASSETS -->", "".join(assets))
    path = out / PAGE_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)  # never a half-written page
    return path
