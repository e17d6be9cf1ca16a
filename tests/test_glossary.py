"""The glossary: reachable from the README, and every row names the chapter that teaches it."""
import re
from pathlib import Path

from test_notebooks import CHAPTERS


ROOT = Path(__file__).parent.parent
ROWS = [line.split("|")[1:-1] for line in (ROOT / "docs" / "glossary.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| diffusers name") and "---" not in line]


def test_the_readme_links_the_glossary():
    assert "(docs/glossary.md)" in (ROOT / "README.md").read_text()


def test_every_row_has_four_cells_and_names_chapters_that_exist():
    numbers = {name[:2] for name in CHAPTERS}
    assert len(ROWS) > 30 and all(len(row) == 4 for row in ROWS)
    for name, _, _, chapters in ROWS:
        cited = re.findall(r"\d\d", chapters)
        assert cited and set(cited) <= numbers, (name, chapters)
