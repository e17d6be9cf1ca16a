"""What a block's output carries, by name: the image stream, a DiT block's text stream, a UNet down block's skips.

SD3 and Flux blocks return (text, image); a UNet down block returns (hidden states, the tuple its skips push).
>>> parts(block, output)["image"]               # the image tokens, whatever position they sit at
>>> replace(block, output, {"image": zeros})    # the same output with its image stream replaced
"""
import torch

from ..errors import SdlabError
from .core import replace_main

STREAMS = ("image", "text", "both")
TWO_STREAM = ("JointTransformerBlock", "FluxTransformerBlock", "FluxSingleTransformerBlock")  # return (text, image)
POSITION = {"text": 0, "image": 1}


def two_stream(module: torch.nn.Module) -> bool:
    """Whether the module is a DiT block that carries an image and a text stream (SD3, Flux)."""
    return type(module).__name__ in TWO_STREAM


def has_skips(output) -> bool:
    """Whether an output is a UNet down block's (hidden states, (tensors its skips push))."""
    return (isinstance(output, tuple) and len(output) == 2 and isinstance(output[1], tuple)
            and all(isinstance(t, torch.Tensor) for t in output[1]))


def streams_of(module: torch.nn.Module, name: str, stream: str | None, default: str = "image") -> tuple[str, ...]:
    """The streams an edit of `name` acts on: None is `default` on a two-stream block and the main output elsewhere."""
    if stream is not None and stream not in STREAMS:
        raise SdlabError(f"stream must be 'image', 'text' or 'both', not {stream!r}")
    if not two_stream(module):
        if stream in ("text", "both"):
            raise SdlabError(f"{name} ({type(module).__name__}) has one stream: drop stream={stream!r}, or name a "
                             "two-stream DiT block (SD3's transformer_blocks.N)")
        return ("image",)
    stream = stream or default
    return ("image", "text") if stream == "both" else (stream,)


def parts(module: torch.nn.Module, output) -> dict[str, object]:
    """The output by name: "image" (the main tensor, or a DiT block's image stream), "text" (a two-stream block's,
    None after SD3's last block), "skips" (a UNet down block's tuple of pushed tensors)."""
    if two_stream(module):
        return {"image": output[POSITION["image"]], "text": output[POSITION["text"]]}
    found = {}
    replace_main(output, lambda t: found.setdefault("image", t))
    if has_skips(output):
        found["skips"] = output[1]
    return found


def replace(module: torch.nn.Module, output, new: dict):
    """The output with the named parts in `new` replaced (the others as they were)."""
    if not new:
        return output
    if two_stream(module):
        out = list(output)
        for key, value in new.items():
            out[POSITION[key]] = value
        return tuple(out)
    if "skips" in new:
        output = (output[0], tuple(new["skips"]))
    return replace_main(output, lambda t: new["image"]) if "image" in new else output
