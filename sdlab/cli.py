"""`sdlab` on the command line: one subcommand per job; every SdlabError becomes one line and exit 2.

>>> sdlab trace --arch sd15 --component unet --depth 2
>>> sdlab generate --model tiny --prompt "a red circle on the left" --seed 0 --steps 20 --out red.png
"""
import argparse
import sys

from .errors import SdlabError

PROMPT = "a red circle on the left"


def _components(choice: str, available) -> list[str]:
    """`text_encoder` means every text encoder (SDXL has two)."""
    return [c for c in available if choice == "all" or c.startswith(choice)]


def _cmd_trace(args) -> int:
    import json

    import torch

    from . import architecture, load, trace
    from .render.diagram import unet_diagram
    from .trace import components_of

    if args.arch:
        target = architecture(args.arch)
        with trace(target, _components(args.component, components_of(target))) as t:
            target.run()
    else:
        target = load(args.model, allow_pickle=args.allow_pickle)
        with trace(target, _components(args.component, components_of(target))) as t:
            target(args.prompt, num_inference_steps=args.steps, generator=torch.Generator().manual_seed(0))
    if args.diagram:
        path = unet_diagram(t).render(outfile=args.diagram, cleanup=True)
        print(f"wrote {path}", file=sys.stderr)
    if args.json:
        json.dump(t.to_json(), sys.stdout)
        print()
        return 0
    print(t.table(depth=args.depth))
    if skips := t.ledger():
        print("\nskip connections (pushed going down -> concatenated going up: channels before + skip -> after)")
        print("\n".join(map(str, skips)))
    if args.model:
        print(f"(denoising step 0 of {args.steps} shown; --json has every step)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("trace", help="print every block's input and output shapes")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--arch", choices=["sd15", "sd21", "sdxl"], help="full-size architecture on meta, no weights")
    source.add_argument("--model", help="'tiny', a diffusers folder, a .safetensors file or a hub id")
    p.add_argument("--component", default="all", choices=["all", "unet", "vae", "text_encoder", "text_encoder_2"])
    p.add_argument("--depth", type=int, default=1, help="0 components, 1 stages, 2 blocks, 3+ layers")
    p.add_argument("--json", action="store_true", help="print every record as JSON")
    p.add_argument("--diagram", metavar="FILE.svg", help="also draw the UNet as a U (svg, png or pdf)")
    p.add_argument("--prompt", default=PROMPT, help="with --model: the prompt of the short generation")
    p.add_argument("--steps", type=int, default=2, help="with --model: denoising steps")
    p.add_argument("--allow-pickle", action="store_true", help="load .ckpt/.bin files (they can run code)")
    p.set_defaults(run=_cmd_trace)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except SdlabError as err:
        print(f"sdlab: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
