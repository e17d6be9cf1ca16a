import pytest

from sdlab.tiny.config import build_pipeline


@pytest.fixture(scope="session")
def random_pipe(tmp_path_factory):
    """sdlab-tiny's architecture with random weights: fast, and independent of the shipped model."""
    return build_pipeline(tmp_path_factory.mktemp("tiny") / "tokenizer")
