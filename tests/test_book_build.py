"""The book, checked without a browser: every chapter run and written, the index linking each in order, and each
page's links going to pages that exist (contents, previous, next)."""
import re

import nbformat

from sdlab.widgets.book import build


def chapter(folder, name: str, heading: str):
    cells = [nbformat.v4.new_markdown_cell(f"# {heading}\n\nA line of prose."),
             nbformat.v4.new_code_cell(f"print('ran {name}', 6 * 7)")]
    path = folder / f"{name}.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def links(page: str) -> dict[str, str]:
    return {text: href for href, text in re.findall(r"<a href='([^']+)'>([^<]+)</a>", page)}


def test_every_chapter_is_run_written_and_linked_in_order(tmp_path, live_export):
    names = ["00_first", "01_second", "02_third"]
    notebooks = [chapter(tmp_path, n, f"Chapter {n[-5:]}") for n in names]
    index = build(notebooks, tmp_path / "book", timeout=120, export_dir=live_export)
    pages = [f"{n}.html" for n in names]
    assert sorted(p.name for p in (tmp_path / "book").iterdir()) == sorted(
        ["index.html", "try.html", "glossary.html", *pages])  # try.html: the live page
    contents = index.read_text()
    assert re.findall(r"<li><a href='([^']+)'>([^<]+)</a>", contents) == [
        (p, f"Chapter {n[-5:]}") for p, n in zip(pages, names)]
    for i, (page, name) in enumerate(zip(pages, names)):
        text = (tmp_path / "book" / page).read_text()
        assert f"ran {name} 42" in text  # executed, its output in the page
        nav = links(text[:text.index("</nav>")])
        assert nav["contents"] == "index.html"
        assert nav.get("previous") == (pages[i - 1] if i else None) and nav.get("next") == (
            pages[i + 1] if i + 1 < len(pages) else None)
        assert all((tmp_path / "book" / href).is_file() for href in nav.values())


def test_the_book_has_the_glossary_linked_to_its_chapters(tmp_path, live_export):
    from sdlab.widgets.book import GLOSSARY

    notebooks = [chapter(tmp_path, "03_text", "Chapter 03")]
    index = build(notebooks, tmp_path / "book", timeout=120, export_dir=live_export)
    assert links(index.read_text())["Glossary"] == "glossary.html"
    page = (tmp_path / "book" / "glossary.html").read_text()
    rows = [line for line in GLOSSARY.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    assert page.count("<tr>") == len(rows)  # the header and every row
    assert "<code>text_encoder</code> (CLIP)" in page and "文本编码器" in page
    assert "<a href='03_text.html'>03</a>" in page  # a chapter in this book: linked
    assert "<td>16</td>" in page  # a chapter not in this book: plain text
