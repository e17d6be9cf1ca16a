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


def _pushes(records: list[Record]) -> list[tuple[str, list[int]]]:
    """(source, shape) for each tensor diffusers appends to `down_block_res_samples`, in order."""
    by_path = {r.path: r for r in records}
    pushes = [("conv_in", first_shape(by_path["conv_in"].outputs))]
    blocks = sorted((r for r in records if r.path.count(".") == 1 and r.path.startswith("down_blocks.")),
                    key=lambda r: r.index)
    for block in blocks:
        # A down block returns (hidden_states, res_samples): one per ResNet (after its attention) + the downsampler's.
        res_samples = block.outputs[1]
        names = [f"{block.path}.attentions.{j}" if f"{block.path}.attentions.{j}" in by_path
                 else f"{block.path}.resnets.{j}" for j in range(len(res_samples))]
        if f"{block.path}.downsamplers.0" in by_path:
            names[-1] = f"{block.path}.downsamplers.0"
        pushes += list(zip(names, res_samples))
    return pushes


def ledger(records: list[Record]) -> list[Skip]:
    """Pair each push with the up-block ResNet that pops it (last in, first out) and concatenates it."""
    if not any(r.path == "conv_in" for r in records):
        return []
    stack = _pushes(records)
    skips = []
    for resnet in sorted((r for r in records if r.path.startswith("up_blocks.") and r.path.count(".") == 3
                          and ".resnets." in r.path), key=lambda r: r.index):
        source, shape = stack.pop()
        after = first_shape(resnet.inputs)[1]
        skips.append(Skip(source=f"unet.{source}", shape=shape, target=f"unet.{resnet.path}",
                          before=after - shape[1], skip=shape[1], after=after))
    return skips
