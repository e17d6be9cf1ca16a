"""`sdlab tour`: the notebooks' story in a terminal — prompt -> tokens -> text states -> denoising loop -> VAE decode,
every shape read off a live trace of one run of the model.

>>> print(tour(sdlab.load("tiny"), "a red circle on the left", steps=4))
1. the prompt ...
"""
import numpy as np

from .denoising import PREDICTION, Denoising, denoise
from .hooks import denoiser
from .render.table import fmt_shape, format_table
from .tokens import Tokens, prompt_tokenizers, tokenize
from .trace import Trace, first_shape, trace

PROMPT = "a red circle on the left"


def _title(n: int, text: str) -> list[str]:
    return ["", f"{n}. {text}", "-" * (len(text) + 3)]


def prompt_section(tokens: Tokens) -> list[str]:
    words = [t for t in tokens if t.kind in ("start", "word", "end")]
    pads = sum(t.kind == "pad" for t in tokens)
    lines = _title(1, "the prompt becomes tokens")
    lines.append(f"prompt: {tokens.prompt!r}")
    lines.append("tokens: " + "  ".join(f"{t.index}:{t.text.removesuffix('</w>')}" for t in words))
    lines.append(f"then {pads} padding tokens: always {len(tokens)} positions in all")
    if tokens.truncated:
        lines.append(tokens.truncation_report())
    return lines


def text_section(t: Trace) -> list[str]:
    calls = [r.index for r in t.records if r.component == "text_encoder" and r.depth == 0]
    end = calls[1] if len(calls) > 1 else len(t.records)  # the first call's records come before the second call
    lines = _title(2, "the text encoder turns tokens into one vector per position")
    lines.append(format_table([r for r in t.select(1, "text_encoder") if calls[0] <= r.index < end]))
    lines.append(f"called {len(calls)} times: your prompt" + (" and the empty prompt (for guidance)" * (len(calls) > 1)))
    return lines


def loop_section(t: Trace, run: Denoising, name: str = "unet") -> list[str]:
    """The loop as `name` (the unet, or an SD3 / Flux transformer) ran it."""
    net = t.get(name, step=0)
    title = "UNet" if name == "unet" else name
    lines = _title(3, f"the denoising loop: {len(run.steps)} steps of {run.scheduler}")
    lines.append(f"the {title}'s inputs at step 0: {', '.join(f'{k} {fmt_shape(v)}' for k, v in net.inputs.items())}")
    if run.steps[0].uncond is not None:
        lines.append(f"batch {first_shape(net.inputs)[0]}: [empty prompt; your prompt], mixed as "
                     f"uncond + {run.guidance_scale} x (cond - uncond)")
    lines.append(format_table([r for r in t.select(1, name, step=0) if r.depth == 1], width=44))
    if t.ledger():
        lines.append(f"{len(t.ledger())} skip connections carry the down path's tensors across the U, e.g.:")
        lines += [f"  {s}" for s in t.ledger()[:3]]
    predicts = PREDICTION.get(run.prediction_type, run.prediction_type) if name == "unet" else "noise - x0 (flow)"
    lines.append(f"\n{'step':>4}  {'timestep':>8}  {'x_t std':>8}  {'predicted x0 std':>16}  (the {title} predicts "
                 f"{predicts})")
    lines += [f"{s.index:>4}  {s.timestep:>8}  {np.std(s.latent):>8.3f}  {np.std(s.x0):>16.3f}" for s in run.steps]
    return lines


def decode_section(t: Trace, run: Denoising) -> list[str]:
    vae = [r for r in t.select(2, "vae", step=None) if r.depth == 1]
    latent, image = first_shape(vae[0].inputs), first_shape(vae[-1].outputs)
    lines = _title(4, "the VAE decoder turns the last latent into pixels")
    lines.append(format_table(vae))
    ratio = np.prod(image[1:]) / np.prod(latent[1:])
    lines.append(f"latent {fmt_shape(latent)} -> image {fmt_shape(image)}: {ratio:g} times more numbers "
                 f"({image[-1] // latent[-1]}x per side)")
    lines.append(f"final image: {run.image.shape[0]}x{run.image.shape[1]} pixels, RGB")
    return lines


def process_section(pipe, run: Denoising) -> list[str]:
    """Noising, one sampler step redone by hand, and guidance, each read off one step of the live run (chapters
    04, 11, 12)."""
    import torch  # only this section computes: the others read records

    from .sampler import ddim_step

    s = run.steps[min(1, len(run.steps) - 1)]
    lines = _title(5, f"the process behind step {s.index} (t={s.timestep})")
    if hasattr(pipe.scheduler, "alphas_cumprod"):
        abar = float(pipe.scheduler.alphas_cumprod[int(s.timestep)])
        lines.append(f"noising: x_t = {abar ** 0.5:.3f} x0 + {(1 - abar) ** 0.5:.3f} noise (alpha_bar {abar:.3f}: "
                     f"{abar:.0%} of x0's variance left)")
    else:  # flow matching: a straight line from x0 to noise
        sigma = float(s.timestep) / pipe.scheduler.config.num_train_timesteps
        lines.append(f"noising (flow matching): x_t = {1 - sigma:.3f} x0 + {sigma:.3f} noise")
    if s.uncond is not None:
        mixed = s.uncond + run.guidance_scale * (s.cond - s.uncond)
        lines.append(f"guidance: uncond + {run.guidance_scale} x (cond - uncond) = what the scheduler got "
                     f"(max difference {np.abs(mixed - s.guided).max():.1e})")
    if type(pipe.scheduler).__name__ == "DDIMScheduler":
        step = ddim_step(pipe.scheduler, torch.from_numpy(s.guided), s.timestep, torch.from_numpy(s.latent))
        lines.append(f"one DDIM step by hand: output -> x0 and eps -> x at t={step.prev_timestep}, equal to "
                     f"scheduler.step (max difference {np.abs(step.prev_sample.numpy() - s.next_latent).max():.1e})")
    return lines


def tour(pipe, prompt: str = PROMPT, steps: int = 4, seed: int = 0) -> str:
    """Run `pipe` once under the tracer and the denoising recorder and narrate what went through it."""
    with trace(pipe) as t:
        run = denoise(pipe, prompt, steps=steps, seed=seed, decode=False)
    tokens = tokenize(prompt_tokenizers(pipe)[0], prompt)
    sections = [prompt_section(tokens), text_section(t), loop_section(t, run, denoiser(pipe)[0]),
                decode_section(t, run), process_section(pipe, run)]
    return "\n".join(line for section in sections for line in section).lstrip("\n")
