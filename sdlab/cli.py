"""`sdlab` on the command line: one subcommand per job; every SdlabError becomes one line and exit 2.

>>> sdlab trace --arch sd15 --component unet --depth 2
>>> sdlab generate --model tiny --prompt "a red circle on the left" --seed 0 --steps 20 --out red.png
"""
import argparse
import re
import sys
import tempfile
from pathlib import Path

from .errors import SdlabError

PROMPT = "a red circle on the left"
MODEL_HELP = "'tiny', a diffusers folder, a .safetensors file or a hub id"
DIAGRAM_SUFFIXES = (".svg", ".png", ".pdf")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other sdlab error (its default prints the usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    if not re.fullmatch(r"\d+", text.strip()):
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, not {text!r}")
    return int(text)


def _add_model_args(p, model=None):
    """--model (into `model`, a mutually exclusive group, when given), --config and --allow-pickle."""
    (model or p).add_argument("--model", default=None if model else "tiny", help=MODEL_HELP)
    p.add_argument("--config", metavar="FOLDER", help="with a single checkpoint file of a model other than "
                   "SD 1.5/2.1/SDXL: a diffusers folder (or hub id) of that model, for its configs")
    p.add_argument("--allow-pickle", action="store_true", help="load .ckpt/.bin files (they can run code)")
    p.add_argument("--device", help="cpu (default), auto (a CUDA GPU in float16, else Apple's MPS, else the CPU), "
                   "cuda, cuda:N or mps")


def _load(args):
    from . import load

    return load(args.model, device=args.device or "cpu", allow_pickle=args.allow_pickle, config=args.config)


def _components(choice: str, available, source: str) -> list[str]:
    """`text_encoder` means every text encoder (SDXL has two, SD3 three); a component the model lacks is an error."""
    names = [c for c in available if choice == "all" or c.startswith(choice)]
    if not names:
        raise SdlabError(f"{source} has no {choice}: choose --component all or one of {', '.join(available)}")
    return names


def _diagram_path(path, overwrite: bool) -> Path | None:
    """--diagram's file, checked like every output before any work: a folder that exists, a suffix graphviz writes."""
    from .generate import output_file

    if path is None:
        return None
    path = Path(path)
    if path.suffix.lower() not in DIAGRAM_SUFFIXES:
        raise SdlabError(f"cannot draw the diagram {path}: end the name in {', '.join(DIAGRAM_SUFFIXES)}")
    return output_file(path, "diagram", overwrite)


def _cmd_trace(args) -> int:
    import json

    from . import architecture, trace
    from .generate import Request, generate
    from .render.diagram import transformer_diagram, unet_diagram
    from .trace import components_of

    if args.arch and args.device:
        raise SdlabError("--device applies to --model: --arch traces on the meta device, with no weights")
    if args.diagram and args.component not in ("all", "unet", "transformer"):
        raise SdlabError("--diagram draws the unet or transformer: use --component all, unet or transformer")
    diagram = _diagram_path(args.diagram, args.overwrite)
    if args.arch:
        target = architecture(args.arch)
        names = _components(args.component, components_of(target), args.arch)
        t = target.trace(names)
    else:
        req = Request(args.prompt, 0, args.steps).checked()
        target = _load(args)
        req = req.checked(target)
        names = _components(args.component, components_of(target), args.model)
        with trace(target, names) as t:
            generate(target, req)
    if args.params:
        from .render.params import param_summary

        for name in names:
            print(f"{name}\n{param_summary(components_of(target)[name], depth=args.depth)}")
    if diagram:
        draw = unet_diagram if "unet" in names else transformer_diagram
        path = draw(t).render(outfile=diagram, cleanup=True)
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
                   args.negative_prompt).checked(pipe, allow_slow=args.allow_slow)


def _repeat(req) -> str:
    """What a user needs to run it again, the seed above all (it has a default, so it may not be on the line)."""
    steps = f"{req.steps} step{'s' * (req.steps != 1)}"
    return f"seed {req.seed}, {steps}, guidance {req.guidance:g}, {req.height}x{req.width}"


def _cmd_generate(args) -> int:
    from .generate import generate, image_path, save_png

    _request(args, None)  # fail on bad numbers before loading a model
    out = image_path(args.out, args.overwrite)
    pipe = _load(args)
    req = _request(args, pipe)
    print(f"wrote {save_png(generate(pipe, req), out)} ({_repeat(req)})", file=sys.stderr)
    return 0


def _pair(text: str, what: str, default: float | None = None) -> tuple[str, float]:
    """'name=number' (or a bare name when there is a default) -> (name, number); a one-line error otherwise."""
    name, sep, value = text.rpartition("=") if "=" in text else (text, "", "")
    try:
        number = float(value) if sep else default
    except ValueError:
        number = None
    if not name or number is None or number != number:
        form = "NAME or NAME=SCALE" if default is not None else "WORD=WEIGHT"
        raise SdlabError(f"{what} {text!r} is not {form} with a number: e.g. --{what} "
                         + ("unet.down_blocks.1.attentions.0=0" if default is not None else "red=2"))
    return name, number


def _edits(args) -> list:
    """The skip and reweight edits the command line asks for, each checked as it is made (before any model loads)."""
    from . import edit

    return ([edit.skip(name, scale) for name, scale in (_pair(t, "skip", 0.0) for t in args.skip)]
            + [edit.reweight(word, weight) for word, weight in (_pair(t, "reweight") for t in args.reweight)])


def _check_edits(edits: list, pipe, prompt: str) -> None:
    """Each edit against this pipeline and prompt: a skip it has, a word in the prompt."""
    from .hooks import denoiser
    from .tokens import prompt_tokenizers, tokenize

    name, module = denoiser(pipe)
    tokens = tokenize(prompt_tokenizers(pipe)[0], prompt)
    for e in edits:
        if not hasattr(e, "resolve"):
            tokens.indices(e.word)
        elif name != "unet":
            raise SdlabError(f"--skip scales a UNet skip connection, and this model's denoiser is a {name} "
                             f"({type(module).__name__}) with none: use --reweight or --inject-from")
        else:
            e.resolve(module)


def _cmd_edit(args) -> int:
    from . import capture_attention, edit
    from .generate import Request, generate, image_path, save_png
    from .render.compare import before_after

    req = _request(args, None)
    if args.inject_steps is not None and not args.inject_from:
        raise SdlabError("--inject-steps needs --inject-from PROMPT (the run whose maps are injected)")
    if not (args.skip or args.reweight or args.inject_from):
        raise SdlabError("no edit given: add --skip NAME[=SCALE], --reweight WORD=WEIGHT or --inject-from PROMPT")
    if args.inject_from is not None:
        Request(args.inject_from, req.seed, req.steps).checked()
        if not 0 <= (args.inject_steps or 0) <= req.steps:
            raise SdlabError(f"--inject-steps must be 0 to {req.steps} (the run's steps), not {args.inject_steps}")
    edits = _edits(args)
    out = image_path(args.out, args.overwrite)
    figure = image_path(out.with_name(f"{out.stem}_before_after.png"), args.overwrite)
    pipe = _load(args)
    req = _request(args, pipe)
    _check_edits(edits, pipe, req.prompt)
    if args.inject_from:
        with capture_attention(pipe, heads="each", steps="each") as source:
            generate(pipe, Request(**{**vars(req), "prompt": args.inject_from}))
        edits.append(edit.inject(source, steps=None if args.inject_steps is None else range(args.inject_steps)))
    with edit(pipe, *edits):
        edited = generate(pipe, req)
    plain = generate(pipe, req)
    said = "; ".join(f"{type(e).__name__} {_said(e)}" for e in edits)
    _write_all({out: lambda part: save_png(edited, part),
                figure: lambda part: before_after(plain, edited, said).savefig(part, dpi=100)})
    print(f"wrote {out} and {figure} ({said}; {_repeat(req)})", file=sys.stderr)
    return 0


def _said(e) -> str:
    """An edit in the words of its command-line flag."""
    if hasattr(e, "scale"):
        return f"{e.name} x {e.scale:g}"
    if hasattr(e, "weight"):
        return f"{e.word!r} x {e.weight:g}"
    return f"maps of {e.source.tokens.prompt!r}" + (f" for steps {e.steps[0]}..{e.steps[-1]}" if e.steps else
                                            "" if e.steps is None else " for no step")


def _write_all(writes: dict) -> None:
    """Call each write(part) on a hidden part file beside its path, then move them all in with Ctrl-C held:
    every file or none (a half would make the re-run refuse for the file that exists)."""
    from .generate import write_failed
    from .hooks.core import deferred_interrupts

    parts = {path: path.with_name(f".{path.stem}.part{path.suffix}") for path in writes}
    try:
        for path, write in writes.items():
            try:
                write(parts[path])
            except OSError as error:
                raise write_failed(path, error) from error
        with deferred_interrupts():
            for path, part in parts.items():
                part.replace(path)
    finally:
        for part in parts.values():
            part.unlink(missing_ok=True)


def _write_folder(out: Path, write) -> None:
    """Call write(folder) on a hidden sibling folder, then move its files into `out`: a failure leaves no half."""
    from .generate import write_failed

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        try:
            write(Path(tmp))
        except OSError as error:
            raise write_failed(out, error) from error
        out.mkdir(exist_ok=True)
        for f in Path(tmp).iterdir():
            f.replace(out / f.name)


def _cmd_attend(args) -> int:
    import diffusers

    from . import capture_attention
    from .generate import folder_path, generate
    from .render.heatmap import export, overlay_names
    from .tokens import prompt_tokenizers, tokenize

    _request(args, None)
    out = folder_path(args.out, args.overwrite)
    pipe = _load(args)
    req = _request(args, pipe)
    tokens = tokenize(prompt_tokenizers(pipe)[0], req.prompt)
    words = list(dict.fromkeys(args.word or [w for w, _ in tokens.mapping()]))
    for w in words:
        tokens.indices(w)  # an unknown word fails here, before anything is written
    with capture_attention(pipe) as cap:
        image = generate(pipe, req)
    meta = dict(vars(req), model=args.model, diffusers=diffusers.__version__)
    _write_folder(out, lambda folder: export(cap, image, folder, meta, words))
    if tokens.truncated:
        print(f"note: {tokens.truncation_report()}", file=sys.stderr)
    files = " ".join(overlay_names(words).values())
    print(f"wrote {out}/ image.png heatmaps.npz meta.json {files} ({_repeat(req)})", file=sys.stderr)
    return 0


def _cmd_figures(args) -> int:
    from .figures import write_figures
    from .generate import Request, folder_path

    Request(PROMPT, args.seed, args.steps).checked()
    folder_path(args.out, overwrite=True)  # regenerating figures/ writes over the last ones
    for path in write_figures(args.out, _load(args), steps=args.steps, seed=args.seed):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _cmd_tour(args) -> int:
    from .generate import Request
    from .tour import tour

    Request(args.prompt, args.seed, args.steps).checked()
    print(tour(_load(args), args.prompt, steps=args.steps, seed=args.seed))
    return 0


def _add_generation_args(p, out_help: str, overwrite_help: str):
    _add_model_args(p)
    p.add_argument("--prompt", required=True, help="the text; a blank prompt is refused")
    p.add_argument("--negative-prompt", default=None)
    p.add_argument("--seed", type=int, default=0, help="0 to 2**64 - 1 (default 0; printed with the result)")
    p.add_argument("--steps", type=int, required=True,
                   help="denoising steps, from 1 to the scheduler's training timesteps (1000 for SD)")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale, a finite number "
                   ">= 0 (default 7.5); diffusers turns guidance off at 1 or below: the prompt's prediction alone")
    p.add_argument("--height", type=int, default=0, help="pixels, a multiple of 8 (default: the model's size)")
    p.add_argument("--width", type=int, default=0, help="pixels, a multiple of 8 (default: the model's size)")
    p.add_argument("--allow-slow", action="store_true", help="on a CPU, run a size above the model's own even when "
                   "its self-attention would take over a minute per step (timed from one layer; it grows with the "
                   "square of the pixels)")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sdlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from .architectures import NAMES
    from .hooks import COMPONENTS

    p = sub.add_parser("trace", help="print every block's input and output shapes")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--arch", choices=NAMES, help="full-size architecture on meta, no weights")
    _add_model_args(p, source)
    p.add_argument("--component", default="all", choices=["all", *COMPONENTS])
    p.add_argument("--depth", type=_count, default=1, help="0 components, 1 stages, 2 blocks, 3+ layers")
    p.add_argument("--json", action="store_true", help="print every record as JSON")
    p.add_argument("--params", action="store_true", help="also print parameters by block (torchinfo)")
    p.add_argument("--diagram", metavar="FILE.svg", help="also draw the UNet as a U or the transformer "
                   "as a stack (svg, png or pdf)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --diagram file")
    p.add_argument("--prompt", default=PROMPT, help="with --model: the prompt of the short generation")
    p.add_argument("--steps", type=int, default=2, help="with --model: denoising steps (at least 1)")
    p.set_defaults(run=_cmd_trace)

    from .tiny import evaluate, train  # their options live beside the code they configure

    p = sub.add_parser("train-tiny", help="train sdlab-tiny from scratch (resumable; about 45 minutes on 2 idle CPU cores)")
    train.add_arguments(p)
    p.set_defaults(run=train.run)
    p = sub.add_parser("eval-tiny", help="score sdlab-tiny: colour, shape, position, two objects, heatmap peaks")
    evaluate.add_arguments(p)
    p.set_defaults(run=evaluate.run)

    p = sub.add_parser("generate", help="make one image from a prompt")
    _add_generation_args(p, "the image file to write (.png, .jpg, .webp); its folder must exist",
                         "replace --out if it exists (refused otherwise)")
    p.set_defaults(run=_cmd_generate)

    p = sub.add_parser("edit", help="make an image with a skip scaled, a word reweighted or another prompt's "
                       "attention maps injected, and a before/after figure beside it")
    _add_generation_args(p, "the edited image (.png, .jpg, .webp); NAME_before_after.png is written beside it",
                         "replace --out and its before/after figure if they exist")
    p.add_argument("--skip", action="append", default=[], metavar="NAME[=SCALE]",
                   help="scale a skip connection, named by its source or target as `sdlab trace` lists it "
                   "(default scale 0: removed); repeatable")
    p.add_argument("--reweight", action="append", default=[], metavar="WORD=WEIGHT",
                   help="multiply the attention every pixel pays to a prompt word (0 removes it); repeatable")
    p.add_argument("--inject-from", metavar="PROMPT", help="run PROMPT first with the same seed and use its "
                   "cross-attention maps in this run (prompt-to-prompt's replace)")
    p.add_argument("--inject-steps", type=int, metavar="N", help="inject only the first N steps (default: all)")
    p.set_defaults(run=_cmd_edit)

    p = sub.add_parser("attend", help="make an image and write its cross-attention heatmaps per word to a folder")
    _add_generation_args(p, "a new or empty folder to write image.png, heatmaps.npz, meta.json and "
                         "overlay_NN_<word>.png into (meta.json's 'overlays' maps word -> file)",
                         "write into --out even if it already holds files")
    p.add_argument("--word", action="append", help="a word to overlay (repeatable; default: every word)")
    p.set_defaults(run=_cmd_attend)
    p = sub.add_parser("figures", help="regenerate figures/ from one seeded run and the meta architectures")
    p.add_argument("--out", default="figures", help="folder to write into (created if missing; its files are replaced)")
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
        if getattr(args, "device", None):
            from .loading import resolve_device

            resolve_device(args.device)  # before any output folder is made or model read
        return args.run(args) or 0
    except SdlabError as err:
        print(f"sdlab: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
