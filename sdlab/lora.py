"""LoRA on sdlab-tiny's attention projections, attached with peft as diffusers does; a trained one teaches "orange".

>>> pipe = sdlab.load("tiny"); pipe.load_lora_weights(ORANGE_LORA, adapter_name="orange")
>>> judge(pipe, "orange")        # share of 'a orange <shape> <place>' images that show it
"""
import argparse
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from tqdm import tqdm

from .errors import SdlabError
from .lessons import LORA_TARGETS
from .tiny import MODEL_DIR
from .tiny.evaluate import EVAL_SEED, clean, describe
from .tiny.scenes import (BACKGROUND, COLORS, PLACES, SHAPES, SIZE, Scene, Thing, caption_of, draw, make_scene,
                          things_of, word_objects)
from .tiny.train import images_tensor

NEW_COLOR = ("orange", (240, 130, 20))  # not in sdlab-tiny's grammar (split into byte pieces); its VAE does draw it
ORANGE_LORA = MODEL_DIR.parent / "orange_lora"  # the shipped result of `python -m sdlab.lora`


def attach(unet, rank: int = 4, name: str = "lora") -> None:
    """Add a LoRA adapter to every attention projection; B starts at zero, so the model is unchanged."""
    from peft import LoraConfig

    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS))
    unet.add_adapter(config, adapter_name=name)


def count(module: torch.nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    return (sum(p.numel() for p in module.parameters() if p.requires_grad),
            sum(p.numel() for p in module.parameters()))


def concept_scene(seed: int) -> Scene:
    """One orange object drawn as sdlab-tiny's single-object scenes are (same sizes and jitter), with its mask."""
    rng = np.random.default_rng(seed)
    things = [Thing(NEW_COLOR[0], str(rng.choice(SHAPES)), str(rng.choice(list(PLACES))))]
    _, x, y = PLACES[things[0].place]
    half, cx, cy = rng.uniform(8, 11), x + rng.uniform(-3, 3), y + rng.uniform(-3, 3)
    image, mask = Image.new("RGB", (SIZE, SIZE), BACKGROUND), Image.new("L", (SIZE, SIZE), 0)
    draw(ImageDraw.Draw(image), things[0].shape, NEW_COLOR[1], cx, cy, half)
    draw(ImageDraw.Draw(mask), things[0].shape, 255, cx, cy, half)
    return Scene(np.asarray(image), caption_of(things), np.asarray(mask)[None] > 0, word_objects(things))


@dataclass
class Trained:
    """What `train` did: where it saved, how long it took, the loss over its first and last 20 steps."""
    folder: Path
    seconds: float
    steps: int
    first_loss: float
    last_loss: float


@torch.no_grad()
def _dataset(pipe, scenes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled latents and text states: half orange scenes, half sdlab-tiny's own (so it keeps its four colours)."""
    drawn = [concept_scene(seed + i) if i % 2 == 0 else make_scene(seed + i, two_share=0) for i in range(scenes)]
    latents = pipe.vae.encode(images_tensor(drawn)).latent_dist.mean * pipe.vae.config.scaling_factor
    ids = pipe.tokenizer([s.caption for s in drawn] + [""], padding="max_length", return_tensors="pt").input_ids
    return latents, pipe.text_encoder(ids)[0]


def train(pipe, folder: str | Path, steps: int = 400, batch: int = 16, rank: int = 4, lr: float = 3e-3,
          scenes: int = 512, seed: int = 0) -> Trained:
    """Train a LoRA on the UNet's attention projections (everything else frozen) and save it in diffusers' format.

    The loss is the model's own: MSE on its scheduler's prediction_type (v for sdlab-tiny, epsilon for SD 1.5), 10%
    of captions dropped to "" for guidance. Any SD 1.x/2.x pipeline trains: the LoRA has its UNet's widths.
    """
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    if steps < 1 or batch < 1 or rank < 1 or scenes < batch:
        raise SdlabError(f"give steps, batch and rank >= 1 and scenes >= batch (got {steps}, {batch}, {rank}, "
                         f"{scenes})")
    start = time.time()
    latents, states = _dataset(pipe, scenes, seed)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    unet = pipe.unet.requires_grad_(False)
    attach(unet, rank)
    params = [p for p in unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    losses = []
    for step in tqdm(range(steps), desc="lora", mininterval=10, disable=None):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        index = torch.randint(scenes, (batch,), generator=g)
        noise = torch.randn((batch, *latents.shape[1:]), generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=g)
        text = torch.where((torch.rand(batch, generator=g) < 0.1)[:, None, None], states[-1], states[index])
        x0 = latents[index]
        out = unet(scheduler.add_noise(x0, noise, t), t, text).sample
        goal = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)
        loss = F.mse_loss(out, goal)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    unet.requires_grad_(False).eval()
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name="lora"))
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True)
    return Trained(Path(folder), time.time() - start, steps, float(np.mean(losses[:20])), float(np.mean(losses[-20:])))


def prompts(color: str, n: int = 15) -> list[str]:
    """The first n of 'a <color> <shape> <place>' over every place x shape (15 in all)."""
    return [caption_of([Thing(color, shape, place)]) for place, shape in itertools.product(PLACES, SHAPES)][:n]


def judge(pipe, color: str = NEW_COLOR[0], n: int = 15, steps: int = 20, **call) -> float:
    """Share of n 'a <color> <shape> <place>' images whose dominant colour, shape and place are the prompt's.

    The scene judge of sdlab/tiny/evaluate.py, with orange added to its palette; `call` goes to the pipeline
    (e.g. cross_attention_kwargs={"scale": 0.5}).
    """
    texts = prompts(color, n)
    generators = [torch.Generator().manual_seed(EVAL_SEED + i) for i in range(n)]
    images = (pipe(texts, generator=generators, num_inference_steps=steps, output_type="np", **call).images * 255
              ).round().astype(np.uint8)
    return float(np.mean([shows(image, text) for image, text in zip(images, texts)]))


def shows(image: np.ndarray, caption: str) -> bool:
    """Whether the image's dominant colour (orange included) is the caption's, with its shape and place."""
    palette = {**COLORS, NEW_COLOR[0]: NEW_COLOR[1]}
    values = np.array([*palette.values(), BACKGROUND], np.float32)
    distance = np.linalg.norm(image[:, :, None, :].astype(np.float32) - values, axis=-1)
    label = np.where(distance.min(-1) > 100, -1, distance.argmin(-1))
    masks = {name: clean(label == i) for i, name in enumerate(palette)}
    dominant = max(masks, key=lambda c: masks[c].sum())
    thing = things_of(caption)[0]
    return dominant == thing.color and describe(masks[dominant]) == (thing.shape, thing.place)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m sdlab.lora`."""
    parser.add_argument("--model", default="tiny", help="the pipeline to train it for: tiny or your diffusers folder")
    parser.add_argument("--out", type=Path, default=ORANGE_LORA, help="folder for pytorch_lora_weights.safetensors")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)


def run(args: argparse.Namespace) -> int:
    """Train the orange LoRA on --model (the shipped sdlab-tiny by default), save it, judge it at scale 0 and 1."""
    from .loading import load

    if args.steps < 1 or args.threads < 1:
        raise SdlabError(f"give --steps and --threads >= 1 (got {args.steps}, {args.threads})")
    torch.set_num_threads(args.threads)
    if args.model != "tiny" and args.out == ORANGE_LORA:
        raise SdlabError("give --out FOLDER for a LoRA of your own model: the shipped one belongs to sdlab-tiny")
    pipe = load(args.model)
    pipe.set_progress_bar_config(disable=True)
    done = train(pipe, args.out, steps=args.steps)
    print(f"trained {done.steps} steps in {done.seconds:.0f} s, loss {done.first_loss:.4f} -> {done.last_loss:.4f}")
    print(f"judge: orange prompts right {judge(pipe):.2f} (LoRA at 1), "
          f"{judge(pipe, cross_attention_kwargs={'scale': 0.0}):.2f} (at 0)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
