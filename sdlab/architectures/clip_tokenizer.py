"""OpenAI CLIP's tokenizer (Stable Diffusion's), written offline from the BPE merges bundled with sdlab.

>>> write_clip_tokenizer("out/tokenizer", pad_token="<|endoftext|>")
>>> CLIPTokenizer.from_pretrained("out/tokenizer")("a photo of a cat").input_ids[:3]   # [49406, 320, 1125]
"""
import gzip
from importlib import resources
from pathlib import Path

from ..tiny.tokenizer import BOS, EOS, bytes_to_unicode, write_bpe_folder

BPE_FILE = "clip_bpe_16e6.txt.gz"  # origin and MIT license: CLIP_BPE_LICENSE.txt
N_MERGES = 49152 - 256 - 2  # OpenAI's SimpleTokenizer keeps lines[1:N_MERGES + 1]: 49408 tokens in all


def clip_tables() -> tuple[dict[str, int], list[str]]:
    """Vocabulary (token -> id) and merge list, built exactly as OpenAI's SimpleTokenizer builds them."""
    text = gzip.decompress(resources.files(__package__).joinpath(BPE_FILE).read_bytes()).decode("utf-8")
    merges = [" ".join(line.split()) for line in text.split("\n")[1:N_MERGES + 1]]
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + [m.replace(" ", "") for m in merges] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}, merges


def write_clip_tokenizer(folder, pad_token: str = EOS, max_length: int = 77) -> Path:
    """Write vocab.json, merges.txt and tokenizer_config.json; pad_token is EOS (SD 1.x) or "!" (SD 2.x, SDXL's 2nd)."""
    return write_bpe_folder(folder, *clip_tables(), pad_token=pad_token, max_length=max_length)
