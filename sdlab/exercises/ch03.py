"""Chapter 03's exercises: where words land among the text encoder's positions."""
from . import exercise
from ..tokens import tokenize


@exercise("03.token-index", "At which position (index) of the text encoder's input is the word 'circle' in 'a red "
          "circle on the left'?", "the start token comes first; count the pieces the tokenizer makes before the word")
def _token_index(answer, pipe) -> bool:
    return [answer] == tokenize(pipe.tokenizer, "a red circle on the left").indices("circle")


@exercise("03.pad-count", "How many padding tokens follow 'a blue square on the right'?",
          "the input is always model_max_length long: subtract the start, word and end tokens")
def _pad_count(answer, pipe) -> bool:
    return answer == sum(t.kind == "pad" for t in tokenize(pipe.tokenizer, "a blue square on the right"))
