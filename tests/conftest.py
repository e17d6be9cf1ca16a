import pytest

from sdlab.tiny.config import build_pipeline


@pytest.fixture(scope="module")
def tiny():
    """The shipped sdlab-tiny, loaded once per test module (a test that changes the model loads its own)."""
    import sdlab

    pipe = sdlab.load("tiny")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def random_pipe(tmp_path_factory):
    """sdlab-tiny's architecture with random weights: fast, and independent of the shipped model."""
    return build_pipeline(tmp_path_factory.mktemp("tiny") / "tokenizer")


@pytest.fixture(scope="session")
def pipe_dir(random_pipe, tmp_path_factory):
    """random_pipe saved as a standard diffusers folder (safetensors), as a user's own model would be."""
    from sdlab.tiny.config import WORDS
    from sdlab.tiny.tokenizer import write_tokenizer_folder

    folder = tmp_path_factory.mktemp("saved") / "pipe"
    random_pipe.save_pretrained(folder)
    # transformers 5 writes a tokenizer.json that reloads wrongly; keep the vocab/merges files CLIP reads.
    (folder / "tokenizer" / "tokenizer.json").unlink(missing_ok=True)
    write_tokenizer_folder(WORDS, folder / "tokenizer")
    return folder


@pytest.fixture(scope="session")
def live_export(tmp_path_factory):
    """sdlab-tiny exported once for the session: the ONNX graphs and live.json the page runs."""
    from sdlab.export import export

    return export("tiny", tmp_path_factory.mktemp("live") / "export")
