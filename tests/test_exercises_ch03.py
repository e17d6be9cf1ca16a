"""Chapter 03's exercises: reference answers read off the tokenizer."""
import sdlab
from graded import graded


def test_token_index_and_pad_count():
    pipe = sdlab.load("tiny")
    pieces = pipe.tokenizer.tokenize("a red circle on the left")  # the start token comes before these
    graded("03.token-index", 1 + pieces.index("circle</w>"), 2, pipe=pipe)
    words = len(pipe.tokenizer("a blue square on the right").input_ids)  # start + words + end
    graded("03.pad-count", pipe.tokenizer.model_max_length - words, 77 - 6, pipe=pipe)
