"""Prompt -> the tokens the text encoder sees, with indices, and word -> token indices.

>>> toks = tokenize(pipe.tokenizer, "a red circle, on the left")
>>> toks.indices("circle")        # [3]; toks[0].kind == "start", toks[-1].kind == "pad"
"""
import re
from dataclasses import dataclass, field

from .errors import SdlabError

CLIP_SPLIT = re.compile(r"[^\W\d_]+|\d|[^\w\s]+")  # CLIP's pre-tokenizer: letter runs, single digits, symbol runs


@dataclass
class Token:
    """One position of the text encoder's input: `kind` is start, word, end or pad."""
    index: int
    id: int
    text: str
    kind: str
    word: int | None = None  # number of the prompt word this piece belongs to


@dataclass
class Tokens:
    """A prompt's tokens exactly as the pipeline feeds them (padded to `max_length`), plus its words."""
    prompt: str
    tokens: list[Token]
    words: list[str]
    truncated: list[str] = field(default_factory=list)  # words cut off (wholly or partly) past max_length
    max_length: int = 77

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, i):
        return self.tokens[i]

    def __iter__(self):
        return iter(self.tokens)

    def word_tokens(self) -> dict[int, list[int]]:
        """Word number -> token indices of its pieces (only words that survived truncation)."""
        out: dict[int, list[int]] = {}
        for tok in self.tokens:
            if tok.word is not None:
                out.setdefault(tok.word, []).append(tok.index)
        return out

    def mapping(self) -> list[tuple[str, list[int]]]:
        """(word, token indices) for every kept word, in prompt order; words may repeat."""
        return [(self.words[w], idx) for w, idx in self.word_tokens().items()]

    def indices(self, word: str | int) -> list[int]:
        """Token indices of a token index, a word (all its occurrences) or a run of words ("red circle")."""
        if isinstance(word, int):
            if not -len(self) <= word < len(self):
                raise SdlabError(f"token index {word} out of range 0..{len(self) - 1}")
            return [word % len(self)]
        wanted = CLIP_SPLIT.findall(word.lower())
        kept = self.word_tokens()
        found = []
        for start in range(len(self.words) - len(wanted) + 1):
            run = range(start, start + len(wanted))
            if [self.words[w].lower() for w in run] == wanted and all(w in kept for w in run):
                found += [i for w in run for i in kept[w]]
        if not found:
            raise SdlabError(f"{word!r} is not in the prompt; its words are: "
                             + ", ".join(dict.fromkeys(self.words[w] for w in kept)))
        return sorted(set(found))

    def truncation_report(self) -> str:
        """One line naming the words dropped past `max_length`, or '' when nothing was dropped."""
        if not self.truncated:
            return ""
        return (f"prompt is longer than {self.max_length} tokens; dropped {len(self.truncated)} words: "
                + " ".join(self.truncated))


def split_words(tokenizer, text: str) -> tuple[list[list[int]], list[str]]:
    """The BPE ids of `text` grouped per word (a piece ending in </w> closes a word), and the words."""
    ids = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids
    groups, current = [], []
    for tok_id, piece in zip(ids, tokenizer.convert_ids_to_tokens(ids)):
        current.append(tok_id)
        if piece.endswith("</w>"):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    words = [tokenizer.decode(g).strip() for g in groups]
    return groups, words


def tokenize(tokenizer, prompt: str) -> Tokens:
    """Tokens of `prompt` as a diffusers pipeline pads and truncates them, with the words they spell."""
    max_length = tokenizer.model_max_length
    groups, words = split_words(tokenizer, prompt)
    ids = tokenizer(prompt, padding="max_length", max_length=max_length, truncation=True).input_ids
    pieces = tokenizer.convert_ids_to_tokens(ids)
    room = max_length - 2  # start and end tokens always take two places
    owner = [w for w, g in enumerate(groups) for _ in g]
    n_content = min(len(owner), room)
    tokens = [Token(0, ids[0], pieces[0], "start")]
    tokens += [Token(i + 1, ids[i + 1], pieces[i + 1], "word", owner[i]) for i in range(n_content)]
    tokens += [Token(i, ids[i], pieces[i], "end" if i == n_content + 1 else "pad")
               for i in range(n_content + 1, len(ids))]
    first_cut = owner[n_content] if n_content < len(owner) else len(words)
    return Tokens(prompt, tokens, words, words[first_cut:], max_length)


def prompt_tokenizers(pipe) -> list:
    """The pipeline's tokenizers in text-encoder order (SDXL has two; its refiner only the second)."""
    return [t for t in (getattr(pipe, "tokenizer", None), getattr(pipe, "tokenizer_2", None)) if t is not None]
