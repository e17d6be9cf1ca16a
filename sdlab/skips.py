"""The UNet's skip-connection ledger, read off a trace: what is pushed going down, what is popped going up.

>>> for skip in t.ledger(): print(skip)
unet.conv_in 1x320x64x64 -> up_blocks.3.resnets.2: 320 + 320 -> 640
"""
from dataclasses import dataclass

from .records import Record, first_shape


@dataclass
class Skip:
    """One tensor through a UNet skip connection: pushed by `source`, concatenated at `target`."""

    source: str
    shape: list[int]
    target: str
    before: int  # channels arriving from below
    skip: int  # channels from the skip
    after: int  # channels into the target ResNet: before + skip

    def __str__(self) -> str:
        shape = "x".join(map(str, self.shape))
        return f"{self.source} {shape} -> {self.target}: {self.before} + {self.skip} -> {self.after}"


def pairs(paths) -> list[tuple[str, str]]:
    """(source, target) of every skip, from a UNet's module paths alone: pushed going down, popped last-in-first-out.

    Each down block pushes one tensor per ResNet (its attention's output, when it has one) and one from its
    downsampler; conv_in pushes first. Each up-block ResNet pops one and concatenates it to its input.
    >>> pairs(p for p, _ in unet.named_modules())[0]   # ('conv_in', 'up_blocks.3.resnets.2') in SD 1.5
    """
    paths = set(paths)
    if "conv_in" not in paths:
        return []
    pushes = ["conv_in"]
    for block in _numbered(paths, "down_blocks"):
        for j in _numbered(paths, f"{block}.resnets"):
            attention = f"{block}.attentions.{j.rsplit('.', 1)[1]}"
            pushes.append(attention if attention in paths else j)
        if f"{block}.downsamplers.0" in paths:
            pushes.append(f"{block}.downsamplers.0")
    pops = [r for block in _numbered(paths, "up_blocks") for r in _numbered(paths, f"{block}.resnets")]
    return [(pushes.pop(), target) for target in pops]


def _numbered(paths: set[str], prefix: str) -> list[str]:
    """prefix.0, prefix.1, ... that exist, in number order."""
    found = {p[len(prefix) + 1:].split(".")[0] for p in paths if p.startswith(prefix + ".")}
    return [f"{prefix}.{n}" for n in sorted((n for n in found if n.isdigit()), key=int)]


def ledger(records: list[Record]) -> list[Skip]:
    """Each skip with the shape pushed and the channels concatenated at the up-block ResNet that pops it."""
    by_path = {r.path: r for r in records}
    skips = []
    for source, target in pairs(by_path):
        shape = first_shape(by_path[source].outputs)
        after = first_shape(by_path[target].inputs)[1]
        skips.append(Skip(source=f"unet.{source}", shape=shape, target=f"unet.{target}",
                          before=after - shape[1], skip=shape[1], after=after))
    return skips
