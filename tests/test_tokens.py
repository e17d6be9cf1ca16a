"""Prompt -> tokens: indices, start/end/padding, multi-token words, punctuation, truncation, two tokenizers."""
from types import SimpleNamespace

import pytest

from sdlab import SdlabError
from sdlab.tokens import prompt_tokenizers, tokenize


@pytest.fixture(scope="module")
def tok(random_pipe):
    return random_pipe.tokenizer


def test_start_words_end_and_padding(tok):
    t = tokenize(tok, "a red circle")
    assert [x.kind for x in t[:5]] == ["start", "word", "word", "word", "end"]
    assert all(x.kind == "pad" for x in t[5:]) and len(t) == 77
    assert [x.index for x in t] == list(range(77))
    assert t.words == ["a", "red", "circle"] and t.indices("circle") == [3]
    assert [x.id for x in t] == tok("a red circle", padding="max_length", max_length=77).input_ids


def test_multi_token_words_and_punctuation(tok):
    t = tokenize(tok, "a zebra, on the left-side!")
    assert t.words == ["a", "zebra", ",", "on", "the", "left", "-", "side", "!"]
    assert t.indices("zebra") == [2, 3, 4, 5, 6]          # not in the tiny vocabulary: one token per letter
    assert t.indices(",") == [7]
    assert t.indices("left-side") == [10, 11, 12, 13, 14, 15]  # split as CLIP splits: left, -, side


def test_word_runs_case_and_repeats(tok):
    t = tokenize(tok, "A red circle and a red square")
    assert t.indices("Red") == [2, 6]
    assert t.indices("red square") == [6, 7]
    assert t.indices(-1) == [76] and t.indices(0) == [0]


def test_unknown_word_lists_the_words(tok):
    t = tokenize(tok, "a red circle")
    with pytest.raises(SdlabError, match="'dog' is not in the prompt; its words are: a, red, circle") as err:
        t.indices("dog")
    assert "\n" not in str(err.value)
    with pytest.raises(SdlabError, match="out of range"):
        t.indices(77)


def test_long_prompt_truncation_is_reported(tok):
    t = tokenize(tok, " ".join(["red circle"] * 40) + " blue")
    assert len(t) == 77 and t[-1].kind == "end" and t[-2].kind == "word"
    assert t.truncated == ["circle", "red"] * 2 + ["circle", "blue"]
    assert "dropped 6 words" in t.truncation_report() and t.truncation_report().endswith("blue")
    with pytest.raises(SdlabError):
        t.indices("blue")
    assert tokenize(tok, "red").truncation_report() == ""


def test_negative_prompt_empty_is_start_end_padding(tok):
    t = tokenize(tok, "")
    assert [x.kind for x in t[:3]] == ["start", "end", "pad"] and t.words == []


def test_pad_token_other_than_end(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    sd2_like = type(tok).from_pretrained(tmp_path, pad_token="!")   # SD 2.x and SDXL's second tokenizer pad with "!"
    t = tokenize(sd2_like, "a red circle")
    assert t[4].kind == "end" and t[5].kind == "pad" and t[5].text == "!"


def test_two_tokenizers_in_encoder_order(tok):
    assert prompt_tokenizers(SimpleNamespace(tokenizer=tok, tokenizer_2="second")) == [tok, "second"]
    assert prompt_tokenizers(SimpleNamespace(tokenizer=None, tokenizer_2="second")) == ["second"]
