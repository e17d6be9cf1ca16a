"""The set-up files agree with each other, so conda and pip users get the same project."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
CONDA_NAMES = {"torch": "pytorch", "graphviz": "python-graphviz"}  # PyPI name -> conda-forge name
CONDA_ONLY = {"python", "pip", "graphviz"}  # the interpreter and Graphviz's `dot` binary


def _split(spec: str) -> tuple[str, str]:
    name, version = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", spec).groups()
    return name.lower(), version.replace(" ", "")


def test_environment_yml_lists_the_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(map(_split, project["dependencies"] + project["optional-dependencies"]["test"]))
    listed = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1]
    conda = dict(_split(line.strip()[2:]) for line in listed.splitlines() if line.startswith("  - "))
    assert {CONDA_NAMES.get(k, k): v for k, v in wanted.items()} == {k: v for k, v in conda.items()
                                                                      if k not in CONDA_ONLY}


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(bash sdlab\.sh \w+)$", quick_start, re.M)
    assert commands == ["bash sdlab.sh lab", "bash sdlab.sh test"]
    assert "bash sdlab.sh test" in (ROOT / ".ci" / "run").read_text()


def test_the_bundled_model_and_configs_ship_in_the_package():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert {"*.json", "*.txt", "*.safetensors", "*.md"} <= set(data)


def test_sdlab_sh_runs_any_other_word_as_an_sdlab_command():
    import subprocess

    done = subprocess.run(["bash", str(ROOT / "sdlab.sh"), "trace", "--arch", "sd15", "--component", "vae",
                           "--depth", "0"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "vae" in done.stdout and "1x3x512x512" in done.stdout
