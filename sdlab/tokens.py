"""Prompt -> the tokens the text encoder sees, with indices, and word -> token indices (CLIP's BPE and T5's pieces).

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


def tokenize(tokenizer, prompt: str, max_length: int | None = None) -> Tokens:
    """Tokens of `prompt` as a diffusers pipeline pads and truncates them, with the words they spell."""
    if tokenizer.bos_token_id is None:  # SentencePiece (T5): no start token, pieces not ending in </w>
        return tokenize_pieces(tokenizer, prompt, max_length or tokenizer.model_max_length)
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


def tokenize_pieces(tokenizer, prompt: str, max_length: int) -> Tokens:
    """T5's tokens of `prompt`, padded to max_length; a piece belongs to the word (as CLIP splits words) it overlaps.

    >>> tokenize(pipe.tokenizer_3, "a red circle", 256).indices("circle")     # [2]; then "</s>", then "<pad>"s
    """
    if not getattr(tokenizer, "is_fast", False):
        raise SdlabError(f"{type(tokenizer).__name__} gives no character offsets, so its words are unknown: load the "
                         "pipeline's T5 tokenizer as T5TokenizerFast")
    spans = [m.span() for m in CLIP_SPLIT.finditer(prompt)]
    words = [prompt[a:b] for a, b in spans]
    encoded = tokenizer(prompt, padding="max_length", max_length=max_length, truncation=True,
                        return_offsets_mapping=True)
    pieces = tokenizer.convert_ids_to_tokens(encoded.input_ids)
    special = {tokenizer.eos_token_id: "end", tokenizer.pad_token_id: "pad"}
    tokens = []
    for i, (tok_id, piece, (a, b)) in enumerate(zip(encoded.input_ids, pieces, encoded.offset_mapping)):
        word = next((w for w, (c, d) in enumerate(spans) if a < d and c < b), None) if b > a else None
        tokens.append(Token(i, tok_id, piece, special.get(tok_id, "word") if b <= a else "word", word))
    kept = max((t.word for t in tokens if t.word is not None), default=-1)
    full = len(tokenizer(prompt).input_ids) > max_length  # the end token always takes one place
    return Tokens(prompt, tokens, words, words[kept + 1:] if full else [], max_length)


def joined(first: Tokens, second: Tokens) -> Tokens:
    """Two encoders' tokens one after the other in a text sequence (SD3: CLIP's 77, then T5's), indices shifted."""
    shift, n_words = len(first), len(first.words)
    tokens = first.tokens + [Token(t.index + shift, t.id, t.text, t.kind, None if t.word is None else t.word + n_words)
                             for t in second]
    return Tokens(first.prompt, tokens, first.words + second.words, second.truncated,
                  first.max_length + second.max_length)


def sequence_tokens(pipe, arguments: dict, negative: bool = False) -> list[Tokens]:
    """Tokens at the denoiser's text positions for each prompt encode_prompt was given (its bound arguments).

    SD3: CLIP's 77 then T5's max_sequence_length; Flux: T5's (prompt_2, else prompt); PixArt: T5's; else CLIP's.
    >>> sequence_tokens(pipe, {"prompt": "a red circle", "max_sequence_length": 8})[0].indices("circle")
    """
    prompts = as_list(arguments.get("prompt"), 1)
    if prompts == [None]:
        return []
    lead = "negative_prompt" if negative else "prompt"
    if negative:
        prompts = [n or "" for n in as_list(arguments.get(lead), len(prompts))]
    t5_name, t5_arg = next(((n, a) for n, a in (("tokenizer_3", "_3"), ("tokenizer_2", "_2"), ("tokenizer", ""))
                            if is_t5(getattr(pipe, n, None))), (None, None))
    if t5_name is None:
        return [tokenize(prompt_tokenizers(pipe)[0], p) for p in prompts]
    texts = [t or p for t, p in zip(as_list(arguments.get(lead + t5_arg), len(prompts)), prompts)]
    if hasattr(pipe, "_text_preprocessing"):  # PixArt lowercases (and may clean) the caption before T5 sees it
        texts = [pipe._text_preprocessing(t, clean_caption=arguments.get("clean_caption", False))[0] for t in texts]
    length = arguments.get("max_sequence_length") or getattr(pipe, t5_name).model_max_length
    t5 = [tokenize(getattr(pipe, t5_name), t, length) for t in texts]
    if t5_name != "tokenizer_3":
        return t5
    return [joined(tokenize(pipe.tokenizer, p), t) for p, t in zip(prompts, t5)]


def is_t5(tokenizer) -> bool:
    return tokenizer is not None and tokenizer.bos_token_id is None


def as_list(prompt, n: int) -> list:
    """A prompt argument as a list of n (a str or None repeated) or the list given."""
    return [prompt] * n if isinstance(prompt, str) or prompt is None else list(prompt)


def prompt_tokenizers(pipe) -> list:
    """The pipeline's tokenizers in text-encoder order (SDXL has two; its refiner only the second)."""
    return [t for t in (getattr(pipe, "tokenizer", None), getattr(pipe, "tokenizer_2", None)) if t is not None]
