"""Write a CLIP BPE tokenizer folder (vocab.json + merges.txt) for a small word list.

Every byte has a token, so unknown words are split into pieces, never rejected.
We write the files ourselves: transformers 5's CLIPTokenizer(vocab_file=...) ignores its files and
save_pretrained's tokenizer.json reloads as all <|endoftext|>; from_pretrained on these files is right.

>>> write_tokenizer_folder(["red", "circle"], "out/tokenizer")
>>> CLIPTokenizer.from_pretrained("out/tokenizer")("a red circle").input_ids[:4]
"""
import json
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, map(chr, cs)))


def bpe_tables(words: list[str]) -> tuple[dict[str, int], list[str]]:
    """Vocabulary and merge list so each word in `words` is one token ending in </w>."""
    chars = list(bytes_to_unicode().values())
    vocab = dict.fromkeys(chars + [c + "</w>" for c in chars])
    merges: dict[str, None] = {}
    for word in words:
        pieces = bpe(list(word[:-1]) + [word[-1] + "</w>"], merges)
        while len(pieces) > 1:  # earlier words' merges may stop part-way ("g re e n"); finish left to right
            merges[f"{pieces[0]} {pieces[1]}"] = None
            vocab[pieces[0] + pieces[1]] = None
            pieces = bpe(pieces, merges)
    vocab.update(dict.fromkeys([BOS, EOS]))
    return {tok: i for i, tok in enumerate(vocab)}, list(merges)


def bpe(pieces: list[str], merges: dict[str, None]) -> list[str]:
    """CLIP's BPE: keep merging the adjacent pair that was listed first, until no listed pair is left."""
    rank = {pair: i for i, pair in enumerate(merges)}
    while len(pieces) > 1:
        pairs = [f"{a} {b}" for a, b in zip(pieces, pieces[1:])]
        best = min(pairs, key=lambda pair: rank.get(pair, len(rank)))
        if best not in rank:
            break
        i = pairs.index(best)
        pieces = [*pieces[:i], pieces[i] + pieces[i + 1], *pieces[i + 2:]]
    return pieces


def write_bpe_folder(folder, vocab: dict[str, int], merges: list[str], pad_token: str = EOS,
                     max_length: int = 77) -> Path:
    """Write vocab.json, merges.txt and tokenizer_config.json (padding to `max_length`, as SD's)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": pad_token,
        "do_lower_case": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return folder


def write_tokenizer_folder(words: list[str], folder, max_length: int = 77) -> Path:
    """The tiny model's tokenizer: every word in `words` one token, anything else in byte pieces."""
    return write_bpe_folder(folder, *bpe_tables(words), max_length=max_length)
