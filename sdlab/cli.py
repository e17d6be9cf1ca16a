"""`sdlab` on the command line: one subcommand per job; every SdlabError becomes one line and exit 2.

>>> sdlab trace --arch sd15 --component unet --depth 2
>>> sdlab generate --model tiny --prompt "a red circle on the left" --seed 0 --steps 20 --out red.png
"""
import argparse
import sys

from .errors import SdlabError

PROMPT = "a red circle on the left"
MODEL_HELP = "'tiny', a diffusers folder, a .safetensors file or a hub id"


def _add_model_args(p, model=None):
    """--model (into `model`, a mutually exclusive group, when given), --config and --allow-pickle."""
    (model or p).add_argument("--model", default=None if model else "tiny", help=MODEL_HELP)
    p.add_argument("--config", metavar="FOLDER", help="with a single checkpoint file of a model other than "
                   "SD 1.5/2.1/SDXL: a diffusers folder (or hub id) of that model, for its configs")
    p.add_argument("--allow-pickle", action="store_true", help="load .ckpt/.bin files (they can run code)")


def _load(args):
    from . import load

    return load(args.model, allow_pickle=args.allow_pickle, config=args.config)


def _components(choice: str, available) -> list[str]:
    """`text_encoder` means every text encoder (SDXL has two, SD3 three)."""
    chosen = [c for c in available if choice == "all" or c.startswith(choice)]
    if not chosen:
        raise SdlabError(f"this pipeline has no {choice}: choose --component from all, {', '.join(available)}")
    return chosen


def _cmd_trace(args) -> int:
    import json

    import torch

    from . import architecture, trace
    from .render.diagram import transformer_diagram, unet_diagram
    from .trace import components_of

    if args.diagram and args.component not in ("all", "unet", "transformer"):
        raise SdlabError("--diagram draws the unet or transformer: use --component all, unet or transformer")
    target = architecture(args.arch) if args.arch else _load(args)
    chosen = _components(args.component, components_of(target))
    denoiser = next((c for c in chosen if c in ("unet", "transformer")), None)
    if args.arch:
        t = target.trace(chosen)
    else:
        with trace(target, chosen) as t:
            target(args.prompt, num_inference_steps=args.steps, generator=torch.Generator().manual_seed(0))
    if args.params:
        from .render.params import param_summary

        for name in chosen:
            print(f"{name}\n{param_summary(components_of(target)[name], depth=args.depth)}")
    if args.diagram:
        draw = unet_diagram if denoiser == "unet" else transformer_diagram
        path = draw(t).render(outfile=args.diagram, cleanup=True)
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


def _request(args, pipe):
    from .generate import Request

    return Request(args.prompt, args.seed, args.steps, args.guidance, args.height, args.width,
                   args.negative_prompt).checked(pipe)


def _cmd_generate(args) -> int:
    from .generate import generate, save_png, writable

    _request(args, None)  # fail on bad numbers before loading a model
    out = writable(args.out, "image")
    pipe = _load(args)
    print(f"wrote {save_png(generate(pipe, _request(args, pipe)), out)}", file=sys.stderr)
    return 0


def _cmd_attend(args) -> int:
    import diffusers

    from . import capture_attention
    from .generate import generate, writable
    from .render.heatmap import export, overlay_name
    from .tokens import prompt_tokenizers, tokenize

    _request(args, None)
    out = writable(args.out, "output folder")
    pipe = _load(args)
    req = _request(args, pipe)
    tokens = tokenize(prompt_tokenizers(pipe)[0], req.prompt)
    words = list(dict.fromkeys(args.word or [w for w, _ in tokens.mapping()]))
    for w in words:
        tokens.indices(w)  # an unknown word fails here, before anything is written
    with capture_attention(pipe) as cap:
        image = generate(pipe, req)
    meta = dict(vars(req), model=args.model, diffusers=diffusers.__version__)
    export(cap, image, out, meta, words)
    if tokens.truncated:
        print(f"note: {tokens.truncation_report()}", file=sys.stderr)
    print(f"wrote {out}/ image.png heatmaps.npz meta.json " + " ".join(map(overlay_name, words)), file=sys.stderr)
    return 0


def _cmd_figures(args) -> int:
    from .figures import write_figures

    for path in write_figures(args.out, _load(args), steps=args.steps, seed=args.seed):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _cmd_tour(args) -> int:
    from .tour import tour

    print(tour(_load(args), args.prompt, steps=args.steps, seed=args.seed))
    return 0


def _add_generation_args(p, out_help: str):
    _add_model_args(p)
    p.add_argument("--prompt", required=True)
    p.add_argument("--negative-prompt", default=None)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--steps", type=int, required=True, help="denoising steps (at least 1)")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale; 1 turns it off")
    p.add_argument("--height", type=int, default=0, help="pixels, a multiple of 8 (default: the model's size)")
    p.add_argument("--width", type=int, default=0, help="pixels, a multiple of 8 (default: the model's size)")
    p.add_argument("--out", required=True, help=out_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from .architectures import NAMES
    from .hooks import COMPONENTS

    p = sub.add_parser("trace", help="print every block's input and output shapes")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--arch", choices=NAMES, help="full-size architecture on meta, no weights")
    _add_model_args(p, source)
    p.add_argument("--component", default="all", choices=["all", *COMPONENTS])
    p.add_argument("--depth", type=int, default=1, help="0 components, 1 stages, 2 blocks, 3+ layers")
    p.add_argument("--json", action="store_true", help="print every record as JSON")
    p.add_argument("--params", action="store_true", help="also print parameters by block (torchinfo)")
    p.add_argument("--diagram", metavar="FILE.svg", help="also draw the UNet as a U or the transformer "
                   "as a stack (svg, png or pdf)")
    p.add_argument("--prompt", default=PROMPT, help="with --model: the prompt of the short generation")
    p.add_argument("--steps", type=int, default=2, help="with --model: denoising steps")
    p.set_defaults(run=_cmd_trace)

    from .tiny import evaluate, train  # their options live beside the code they configure

    p = sub.add_parser("train-tiny", help="train sdlab-tiny from scratch (resumable; about 45 minutes on 2 idle CPU cores)")
    train.add_arguments(p)
    p.set_defaults(run=train.run)
    p = sub.add_parser("eval-tiny", help="score sdlab-tiny: colour, shape, position, two objects, heatmap peaks")
    evaluate.add_arguments(p)
    p.set_defaults(run=evaluate.run)

    p = sub.add_parser("generate", help="make one image from a prompt")
    _add_generation_args(p, "the image file to write (.png); its folder must exist")
    p.set_defaults(run=_cmd_generate)

    p = sub.add_parser("attend", help="make an image and write its cross-attention heatmaps per word to a folder")
    _add_generation_args(p, "folder to write image.png, heatmaps.npz, meta.json, overlay_<word>.png into")
    p.add_argument("--word", action="append", help="a word to overlay (repeatable; default: every word)")
    p.set_defaults(run=_cmd_attend)
    p = sub.add_parser("figures", help="regenerate figures/ from one seeded run and the meta architectures")
    p.add_argument("--out", default="figures", help="folder to write into (created if missing)")
    _add_model_args(p)
    p.add_argument("--steps", type=int, default=8, help="denoising steps of the run the figures show")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_cmd_figures)

    p = sub.add_parser("tour", help="walk through one run in the terminal: prompt, tokens, text, loop, decode")
    _add_model_args(p)
    p.add_argument("--prompt", default=PROMPT)
    p.add_argument("--steps", type=int, default=4, help="denoising steps (at least 1)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_cmd_tour)
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
