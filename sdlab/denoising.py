"""Record the denoising loop as a learner would watch it: each step's latent, noise predictions and predicted x0.

>>> run = denoise(sdlab.load("tiny"), "a red circle on the left", steps=8, seed=0)
>>> run.steps[3].timestep, run.steps[3].x0.shape, run.steps[3].image.shape   # 624, (1, 4, 8, 8), (1, 64, 64, 3)
"""
import functools
import inspect
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import SdlabError
from .hooks import Block, Clock, Hooks, branch_rows, denoiser, plan_rows

PREDICTION = {"epsilon": "noise", "v_prediction": "v", "sample": "x0"}  # what the UNet's output is, in a word


@dataclass
class Step:
    """One pass of the loop. Latents are (batch, channels, h, w) float32; `image` is (batch, H, W, 3) in [0, 1]."""

    index: int
    timestep: int
    latent: np.ndarray  # x_t: the latent this step starts from
    cond: np.ndarray  # the UNet's prediction (noise, or v) with the prompt
    uncond: np.ndarray | None  # ... with the empty prompt; None when guidance is off
    guided: np.ndarray  # what the scheduler was given: uncond + scale * (cond - uncond)
    x0: np.ndarray  # the clean latent this step predicts
    next_latent: np.ndarray  # what the scheduler returned: the next step's x_t
    image: np.ndarray | None = None  # x0 through the VAE decoder, filled by decode_steps


@dataclass
class Denoising:
    """A recorded run: its steps, how the model predicts, the guidance scale, and the pipeline's own output."""

    steps: list[Step] = field(default_factory=list)
    prediction_type: str = "epsilon"  # "epsilon" (noise), "v_prediction" or "sample"
    guidance_scale: float | None = None
    scheduler: str = ""
    image: np.ndarray | None = None  # the pipeline's output for the first prompt, (H, W, 3) in [0, 1]

    @property
    def timesteps(self) -> list[int]:
        return [s.timestep for s in self.steps]


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def x0_from_prediction(scheduler, prediction: torch.Tensor, timestep, sample: torch.Tensor) -> torch.Tensor:
    """x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar), or sqrt(abar) x_t - sqrt(1 - abar) v, from the schedule's abar;
    flow matching (SD3, Flux): x_t = (1 - sigma) x0 + sigma noise and the model predicts noise - x0."""
    if not hasattr(scheduler, "alphas_cumprod"):
        sigma = float(timestep) / scheduler.config.num_train_timesteps  # its timesteps are sigma x 1000
        return sample - sigma * prediction
    abar = scheduler.alphas_cumprod.to(sample.device)[int(timestep)].to(sample.dtype)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return (sample - (1 - abar).sqrt() * prediction) / abar.sqrt()
    if kind == "v_prediction":
        return abar.sqrt() * sample - (1 - abar).sqrt() * prediction
    return prediction


def _check(pipe):
    if getattr(pipe, "scheduler", None) is None or not isinstance(getattr(pipe, "components", None), dict):
        raise SdlabError(f"record_denoising needs a diffusers pipeline with a scheduler, not a {type(pipe).__name__}")
    denoiser(pipe)  # refuses a compiled UNet in one line
    flow = type(pipe.scheduler).__name__.startswith("FlowMatch")
    if not flow and not hasattr(pipe.scheduler, "alphas_cumprod"):
        raise SdlabError(f"{type(pipe.scheduler).__name__} has no alphas_cumprod schedule: predicted x0 is undefined "
                         "here; use a DDIM, DDPM, PNDM, Euler or DPM-Solver scheduler")


class record_denoising(Block):  # noqa: N801 - used like a function: `with record_denoising(pipe) as run:`
    """Record every step of the pipeline's own loop: a UNet forward hook and a pass-through wrapper on scheduler.step.

    Nothing is recomputed and nothing is changed: the same seed gives the same image. Both are undone on exit.
    >>> with record_denoising(pipe) as run: pipe("a red circle", num_inference_steps=4)
    >>> [s.timestep for s in run.steps]
    """

    def __init__(self, pipe):
        _check(pipe)
        self.pipe, self.seen = pipe, {}
        self.run = Denoising(prediction_type=pipe.scheduler.config.get("prediction_type", "epsilon"),
                             scheduler=type(pipe.scheduler).__name__)

    name, usage = "recorder", "with record_denoising(pipe) as run:"

    def install(self, hooks: Hooks) -> None:
        hooks.post(denoiser(self.pipe)[1], self._unet_output)
        hooks.patch(self.pipe.scheduler, "step", self._wrap_step)
        # a second run's steps would follow the first's as if one loop
        Clock(self.pipe).install(hooks).one_run(hooks, "record_denoising keeps one pipeline run: open a new "
                                                "`with record_denoising(pipe) as run:` block for each call")

    def opened(self) -> Denoising:
        return self.run

    def _unet_output(self, module, args, kwargs, output):
        # A forward hook sees the batch the pipeline built: [uncond; cond] when guidance is on.
        self.seen["unet"] = output[0].detach()
        self.run.guidance_scale = getattr(self.pipe, "guidance_scale", None)

    def _wrap_step(self, original):
        signature = inspect.signature(original)

        @functools.wraps(original)  # the pipeline inspects step's parameters (eta, generator): keep them visible
        def step(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            wants_dict = bound.arguments.get("return_dict", True)
            bound.arguments["return_dict"] = True
            out = original(*bound.args, **bound.kwargs)
            _record(self.run, self.pipe, self.seen.pop("unet", None), bound.arguments, out)
            return out if wants_dict else out.to_tuple()
        return step


def _record(run: Denoising, pipe, unet_out, arguments: dict, out) -> None:
    scheduler = pipe.scheduler
    guided, timestep, sample = arguments["model_output"], arguments["timestep"], arguments["sample"]
    rows = plan_rows(pipe, unet_out.shape[0], expected=guided.shape[0]) if unet_out is not None else []
    cond = branch_rows(rows, "cond") if rows else slice(None)
    uncond = rows and any(r.branch == "uncond" for r in rows)
    x0 = getattr(out, "pred_original_sample", None)
    if x0 is None:  # PNDM and DPM-Solver return only the next latent
        x0 = x0_from_prediction(scheduler, guided, timestep, sample)
    run.steps.append(Step(
        index=len(run.steps), timestep=round(float(timestep)), latent=_array(sample),
        cond=_array(unet_out[cond] if unet_out is not None else guided),
        uncond=_array(unet_out[branch_rows(rows, "uncond")]) if uncond else None,
        guided=_array(guided), x0=_array(x0), next_latent=_array(out.prev_sample),
    ))


def decode_latents(pipe, latents: np.ndarray) -> np.ndarray:
    """Latents (batch, 4, h, w) through the pipeline's VAE decoder -> images (batch, H, W, 3) in [0, 1]."""
    vae = pipe.vae
    with torch.no_grad():
        z = torch.from_numpy(latents).to(vae.device, vae.dtype) / vae.config.scaling_factor
        z = z + (vae.config.get("shift_factor") or 0)  # SD3's VAE latents are shifted as well as scaled
        image = vae.decode(z, return_dict=False)[0]
    return pipe.image_processor.postprocess(image, output_type="np")


def decode_steps(pipe, run: Denoising) -> Denoising:
    """Fill each step's `image`: its predicted x0 decoded, so a learner sees what the model expects to end with."""
    for s in run.steps:
        s.image = decode_latents(pipe, s.x0)
    return run


def denoise(pipe, prompt: str = "a red circle on the left", steps: int = 8, seed: int = 0,
            guidance: float = 7.5, decode: bool = True) -> Denoising:
    """Generate once (as `sdlab generate` does, same pixels) while recording the loop; decode each x0 if `decode`.

    >>> run = denoise(pipe, "a blue square at the top", steps=4)
    >>> run.steps[0].uncond.shape == run.steps[0].cond.shape     # True: guidance doubles the UNet's batch
    """
    from .generate import Request, generate

    request = Request(prompt, seed, steps, guidance).checked(pipe)
    with record_denoising(pipe) as run:
        run.image = generate(pipe, request)
    return decode_steps(pipe, run) if decode else run
