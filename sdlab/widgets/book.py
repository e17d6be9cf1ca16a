"""The chapters as a book: run each notebook with its widgets shown as self-contained HTML, convert it with
nbconvert, and link the pages from an index, so the site works from a folder with no network and no kernel: the
page template loads no script from a CDN (no require.js, MathJax or mermaid), and TeX math in markdown is written
as MathML at build time (latex2mathml), which the browser draws itself.

>>> python -m sdlab.widgets.book --out build/book          # what `bash sdlab.sh book` runs
>>> # open build/book/index.html: every chapter, its widgets interactive offline
"""
import argparse
import html
import os
import re
import sys
from pathlib import Path

from ..errors import SdlabError
from .live import build_page
from .view import BOOK

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
GLOSSARY = NOTEBOOKS.parent / "docs" / "glossary.md"
TEMPLATE = Path(__file__).parent / "book_template"
CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)  # math is not looked for inside code
DISPLAY = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]", re.S)
INLINE = re.compile(r"(?<![\\$])\$([^$\s](?:[^$\n]*?[^$\s])?)\$(?!\d)|\\\((.+?)\\\)")  # "$5 and $6" is money


def title(notebook) -> str:
    """The chapter's first heading, else its file name."""
    for cell in notebook.cells:
        for line in cell.source.splitlines() if cell.cell_type == "markdown" else []:
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return "chapter"


def nav(pages: list[str], i: int) -> str:
    """Links to the contents, the glossary and the chapters before and after page i."""
    links = ["<a href='index.html'>contents</a>", "<a href='glossary.html'>glossary</a>"]
    links += [f"<a href='{pages[i - 1]}'>previous</a>"] if i > 0 else []
    links += [f"<a href='{pages[i + 1]}'>next</a>"] if i + 1 < len(pages) else []
    return f"<nav style='padding:8px 16px;border-bottom:1px solid #ddd'>{' | '.join(links)}</nav>"


def typeset(markdown: str) -> str:
    """Markdown with each $...$, $$...$$, \\(...\\) and \\[...\\] outside code written as MathML."""
    from latex2mathml.converter import convert

    def math(display: str):
        return lambda m: convert(next(g for g in m.groups() if g is not None).strip(), display=display)

    parts = CODE.split(markdown)
    return "".join(part if i % 2 else INLINE.sub(math("inline"), DISPLAY.sub(math("block"), part))
                   for i, part in enumerate(parts))


def glossary(out: Path, pages: list[str]) -> Path:
    """out/glossary.html from docs/glossary.md, each chapter number in its last column a link to that chapter."""
    from nbconvert.filters.markdown import markdown2html

    numbered = {p[:2]: p for p in pages}

    def linked(match):
        return "<td>" + ", ".join(f"<a href='{numbered[n]}'>{n}</a>" if n in numbered else n
                                  for n in match.group(1).split(", ")) + "</td>\n</tr>"
    table = re.sub(r"<td>([\d, ]+)</td>\s*</tr>", linked, markdown2html(GLOSSARY.read_text(encoding="utf-8")))
    page = out / "glossary.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>sdlab glossary</title>"
                    f"<style>body{{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 16px}}"
                    f"td,th{{border:1px solid #ddd;padding:4px 8px}}table{{border-collapse:collapse}}</style>"
                    f"</head><body><nav><a href='index.html'>contents</a></nav>{table}</body></html>\n",
                    encoding="utf-8")
    return page


def build(notebooks: list[Path], out: Path, timeout: int = 600, export_dir: Path | None = None) -> Path:
    """Execute each notebook (in its own folder, widgets as HTML) and write out/NAME.html, the live page
    out/try.html (from sdlab.export's files in export_dir, else exported now), out/glossary.html and
    out/index.html."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    missing = [str(p) for p in notebooks if not p.is_file()]
    if missing:
        raise SdlabError(f"no notebook {missing[0]}: pass .ipynb files, or nothing for every chapter")
    if not out.parent.is_dir():
        raise SdlabError(f"cannot write {out}: folder {out.parent} does not exist")
    out.mkdir(exist_ok=True)
    env = {**os.environ, BOOK: "1"}  # in each kernel: every widget displays as HTML that draws itself
    pages, titles = [p.with_suffix(".html").name for p in notebooks], []
    exporter = HTMLExporter(template_name="lab", extra_template_paths=[str(TEMPLATE)],
                            template_file="sdlab_book.html.j2")
    for i, path in enumerate(notebooks):
        print(f"sdlab book: running {path.name}", file=sys.stderr)
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(notebook, timeout=timeout, store_widget_state=False,  # the pages hold their own state
                       resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
        titles.append(title(notebook))
        for cell in notebook.cells:
            if cell.cell_type == "markdown":
                cell.source = typeset(cell.source)
        body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": titles[-1]}})
        page = re.sub(r"<body[^>]*>", lambda m: m.group(0) + nav(pages, i), body, count=1)
        (out / pages[i]).write_text(page, encoding="utf-8")
    live = build_page(out, export_dir)  # the model itself, running in the page
    words = glossary(out, pages)
    items = "".join(f"<li><a href='{p}'>{html.escape(t)}</a> <small>({p[:-5]})</small></li>"
                    for p, t in zip(pages, titles))
    (out / "index.html").write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>sdlab</title></head>"
                                    f"<body><h1>sdlab: the chapters</h1><p><a href='{live.name}'>Try sdlab-tiny live in "
                                    f"this browser</a>: your own prompt, its maps and edits. <a href='{words.name}'>Glossary</a>: "
                                    f"diffusers names, plain words, the notes' Chinese terms</p><ol>{items}</ol>"
                                    f"</body></html>\n",
                                    encoding="utf-8")
    return out / "index.html"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="sdlab.sh book", description="build the executed chapters into a static site")
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to include (default: every chapter)")
    parser.add_argument("--out", type=Path, default=Path("build/book"), help="folder to write (default build/book)")
    args = parser.parse_args(argv)
    try:
        index = build(args.notebooks or sorted(NOTEBOOKS.glob("[0-9]*.ipynb")), args.out)
    except SdlabError as error:  # one line and exit 2, as the sdlab command does
        print(f"sdlab: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"sdlab book: open {index}")


if __name__ == "__main__":
    main()
