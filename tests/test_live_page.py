"""sdlab.widgets.live.build_page: one self-contained try.html from sdlab.export's files and onnxruntime-web (npm,
cached); a bad folder or a missing npm is one clear error before any work."""
import re
import shutil

import pytest

from sdlab.errors import SdlabError
from sdlab.widgets import live
from sdlab.widgets.live import build_page, onnxruntime_web

NPM = shutil.which("npm")


def test_a_missing_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(live, "onnxruntime_web", lambda: pytest.fail("fetched before checking the folder"))
    with pytest.raises(SdlabError, match="does not exist"):
        build_page(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


def test_without_npm_or_a_cached_runtime_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("SDLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SdlabError, match="install Node.js's npm"):
        build_page(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(NPM is None, reason="no npm on PATH (apt-get install npm)")
def test_the_page_holds_everything_it_loads(tmp_path, live_export, monkeypatch):
    onnxruntime_web()  # fetched into the cache once ...
    monkeypatch.setattr(shutil, "which", lambda name: None)  # ... so a build needs npm no more
    page = build_page(tmp_path, live_export)
    assert [p.name for p in tmp_path.iterdir()] == ["try.html"]
    text = page.read_text(encoding="utf-8")
    markup = re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.S)
    assert "<script src" not in text and "<link" not in markup and not re.search(r"(src|href)=['\"]?https?:", markup)
    ids = re.findall(r'<script type="[^"]+" id="([^"]+)"', text)
    assert ids == ["live-manifest", "live-worker", "asset-glue", "asset-wasm", "asset-text_encoder", "asset-unet",
                   "asset-decoder", "live-page"]
    assert 30e6 < page.stat().st_size < 60e6  # graphs (about 20 MB) and runtime (15 MB), as base64
