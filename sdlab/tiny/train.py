"""Train sdlab-tiny from scratch: VAE, then scene latents, then text encoder + UNet, then export.

Every stage checkpoints into --out and resumes from there; batches and noise come from (seed, step),
so a resumed run draws the same data as an uninterrupted one.

>>> python -m sdlab.tiny.train --out runs/tiny            # 45 min alone on 2 cores (--threads 1 when shared)
>>> python -m sdlab.tiny.train --out runs/tiny --export sdlab/tiny/model
>>> python -m sdlab.tiny.train --arch mmdit --out runs/tiny-mmdit   # sdlab-tiny-mmdit (sdlab/tiny/mmdit.py)
"""
import argparse
import copy
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import SdlabError
from ..hooks import Hooks
from ..tokens import tokenize
from .config import SCHEDULER, WORDS, build_pipeline
from .grounding import grounding_loss, pooled_masks, record_cross_attention
from .scenes import make_scene
from .tokenizer import write_tokenizer_folder

SIDES = (8, 4, 2)           # cross-attention grids that are grounded (1x1 cannot localise anything)
UNET_SCENE_SEED = 1_000_000  # UNet scenes use seeds from here; VAE scenes use 0 upwards


@dataclass
class Recipe:
    """Everything that decides the weights."""
    vae_steps: int = 600
    vae_batch: int = 16
    vae_lr: float = 5e-4
    scenes: int = 12_000
    two_share: float = 0.5
    unet_steps: int = 3000
    unet_batch: int = 64
    unet_lr: float = 5e-4
    warmup: int = 200
    grounding: float = 1e-2
    prompt_dropout: float = 0.1
    ema: float = 0.999
    seed: int = 0
    checkpoint_every: int = 100


CHECKPOINTS = ("vae.pt", "unet.pt", "transformer.pt")  # what a resumed run reads from --out
SHARES = ("two_share", "prompt_dropout", "ema")  # fractions, 0 to 1


def check_recipe(recipe: Recipe) -> None:
    """Every number of the recipe in its range, before any work: a bad one would fail (or train NaNs) much later."""
    for name, value in asdict(recipe).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, float) and not math.isfinite(value):
            raise SdlabError(f"{flag} must be a finite number, not {value}")
        if name in SHARES and not 0 <= value <= 1:
            raise SdlabError(f"{flag} is a fraction from 0 to 1, not {value}")
        if name.endswith("_lr") and not value > 0:
            raise SdlabError(f"{flag} (a learning rate) must be above 0, not {value}")
        if name in ("vae_steps", "unet_steps", "vae_batch", "unet_batch", "checkpoint_every") and value < 1:
            raise SdlabError(f"{flag} must be at least 1, not {value}")
        if name in ("warmup", "grounding", "seed") and value < 0:
            raise SdlabError(f"{flag} must be 0 or more, not {value}")
    if recipe.scenes < recipe.unet_batch:
        raise SdlabError(f"--scenes ({recipe.scenes}) must be at least --unet-batch ({recipe.unet_batch})")


def check_out(out: Path, threads: int) -> None:
    """--out a folder (or new) whose checkpoints load, and --threads >= 1: all before any training."""
    if threads < 1:
        raise SdlabError(f"--threads must be at least 1, not {threads}")
    if out.exists() and not out.is_dir():
        raise SdlabError(f"--out {out} is a file: give a folder for checkpoints (new, or one to resume)")
    for name in CHECKPOINTS:
        path = out / name
        if path.exists():
            try:
                torch.load(path, weights_only=False, mmap=True)["step"]
            except Exception as error:  # noqa: BLE001 - torch raises many types for a damaged file
                raise SdlabError(f"cannot resume from {path}: it is damaged ({type(error).__name__}); delete it to "
                                 "train that stage again, or use a new --out") from None


def images_tensor(scenes) -> torch.Tensor:
    """uint8 (64, 64, 3) images -> (batch, 3, 64, 64) floats in [-1, 1], as SD's VAE expects."""
    array = np.stack([s.image for s in scenes]).astype(np.float32) / 127.5 - 1
    return torch.from_numpy(array).permute(0, 3, 1, 2)


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically, so a run killed mid-save still resumes from the previous checkpoint."""
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def train_vae(recipe: Recipe, pipe, out: Path) -> None:
    """Reconstruction (MSE) + a tiny KL, on freshly drawn scenes; checkpoints to out/vae.pt."""
    vae, ckpt = pipe.vae, out / "vae.pt"
    opt = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr)
    step = resume(ckpt, {"vae": vae, "opt": opt})
    vae.train()
    for step in tqdm(range(step, recipe.vae_steps), initial=step, total=recipe.vae_steps, desc="vae",
                     mininterval=20):
        first = step * recipe.vae_batch
        x = images_tensor([make_scene(first + i, recipe.two_share) for i in range(recipe.vae_batch)])
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(torch.Generator().manual_seed(step))).sample
        loss = F.mse_loss(recon, x) + 1e-6 * posterior.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % recipe.checkpoint_every == 0 or step + 1 == recipe.vae_steps:
            save_checkpoint(ckpt, {"vae": vae.state_dict(), "opt": opt.state_dict(), "step": step + 1})
            tqdm.write(f"vae step {step + 1} mse {F.mse_loss(recon, x).item():.5f}")


def resume(ckpt: Path, parts: dict) -> int:
    """Load every part's state from `ckpt` if it exists; return the step to continue from."""
    if not ckpt.exists():
        return 0
    state = torch.load(ckpt, weights_only=False)
    for key, part in parts.items():
        part.load_state_dict(state[key])
    tqdm.write(f"resumed {ckpt} at step {state['step']}")
    return state["step"]


def token_positions(scene, tokenizer) -> list[list[int]]:
    """(objects=2, words=2) token positions of colour and shape words (a word's first piece); -1 where there is no
    object. Positions come from sdlab.tokens, the one word-to-token mapping."""
    pieces = tokenize(tokenizer, scene.caption).word_tokens()
    positions = [[-1, -1], [-1, -1]]
    for word, obj in scene.word_objects.items():
        positions[obj][int(word not in (1, 8))] = pieces[word][0]
    return positions


@torch.no_grad()
def encode_scenes(recipe: Recipe, pipe, out: Path) -> dict:
    """Draw the UNet's training scenes once: latents (scaled), token ids, word positions, pooled masks."""
    path = out / "scenes.pt"
    if path.exists():
        return torch.load(path)
    pipe.vae.eval()
    parts = {"latents": [], "ids": [], "tokens": [], **{side: [] for side in SIDES}}
    for first in tqdm(range(0, recipe.scenes, 256), desc="encode", mininterval=20):
        seeds = range(UNET_SCENE_SEED + first, UNET_SCENE_SEED + min(first + 256, recipe.scenes))
        scenes = [make_scene(s, recipe.two_share) for s in seeds]
        parts["latents"].append(pipe.vae.encode(images_tensor(scenes)).latent_dist.mean)
        parts["ids"].append(pipe.tokenizer([s.caption for s in scenes], padding="max_length",
                                           return_tensors="pt").input_ids)
        parts["tokens"].append(torch.tensor([token_positions(s, pipe.tokenizer) for s in scenes]))
        masks = torch.from_numpy(np.stack([np.concatenate([s.masks, np.zeros((2 - len(s.masks), 64, 64), bool)])
                                           for s in scenes]))
        for side in SIDES:
            parts[side].append(pooled_masks(masks, side).half())
    data = {key: torch.cat(value) for key, value in parts.items()}
    data["scale"] = 1 / data["latents"].std().item()
    torch.save(data, path)
    return data


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Exponential moving average of weights: smoother samples than the last step's weights."""
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)


def unet_batch(recipe: Recipe, data: dict, empty_ids: torch.Tensor, step: int):
    """The batch for `step`: scene indices, noise, timesteps and prompt dropout all from (seed, step)."""
    g = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
    index = torch.randint(len(data["ids"]), (recipe.unet_batch,), generator=g)
    noise = torch.randn((recipe.unet_batch, 4, 8, 8), generator=g)
    t = torch.randint(0, SCHEDULER["num_train_timesteps"], (recipe.unet_batch,), generator=g)
    drop = torch.rand(recipe.unet_batch, generator=g) < recipe.prompt_dropout  # unconditional, for CFG
    ids = torch.where(drop[:, None], empty_ids, data["ids"][index])
    tokens = torch.where(drop[:, None, None], -1, data["tokens"][index])
    cells = {side: data[side][index].float() for side in SIDES}
    return data["latents"][index] * data["scale"], noise, t, ids, tokens, cells


def learn(recipe: Recipe, step: int, mse, ground, parts: tuple, ckpt: Path, bar) -> None:
    """One optimiser step of the shared recipe: warm-up, clipped gradients, EMA, and a checkpoint when one is due.

    parts: (optimiser, the trained modules, their EMA copy, the checkpoint key the modules are saved under).
    """
    opt, models, ema, key = parts
    for group in opt.param_groups:
        group["lr"] = recipe.unet_lr * min(1, (step + 1) / recipe.warmup)
    opt.zero_grad()
    (mse + recipe.grounding * ground).backward()
    torch.nn.utils.clip_grad_norm_(models.parameters(), 1.0)
    opt.step()
    ema_update(ema, models, min(recipe.ema, (1 + step) / (10 + step)))
    bar.set_postfix(mse=f"{mse.item():.4f}", ground=f"{ground.item():.3f}", refresh=False)
    if (step + 1) % recipe.checkpoint_every == 0 or step + 1 == recipe.unet_steps:
        save_checkpoint(ckpt, {key: models.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                               "step": step + 1})
        tqdm.write(f"{time.strftime('%H:%M:%S')} {bar.desc} step {step + 1} mse {mse.item():.4f} "
                   f"ground {ground.item():.3f}")


def train_unet(recipe: Recipe, pipe, data: dict, out: Path) -> None:
    """Text encoder + UNet: v-prediction MSE on a zero-terminal-SNR schedule + the grounding loss."""
    from diffusers import DDPMScheduler

    unet, text = pipe.unet, pipe.text_encoder
    scheduler = DDPMScheduler(**{k: v for k, v in SCHEDULER.items() if k != "set_alpha_to_one"})
    models = torch.nn.ModuleDict({"unet": unet, "text": text})
    ema = copy.deepcopy(models).requires_grad_(False)
    opt = torch.optim.AdamW(models.parameters(), lr=recipe.unet_lr, weight_decay=1e-2)
    ckpt = out / "unet.pt"
    step = resume(ckpt, {"models": models, "ema": ema, "opt": opt})
    with Hooks() as hooks:  # the probability recorders come off the UNet when training ends or fails
        stores = record_cross_attention(hooks, unet)
        empty_ids = pipe.tokenizer("", padding="max_length", return_tensors="pt").input_ids
        models.train()
        bar = tqdm(range(step, recipe.unet_steps), initial=step, total=recipe.unet_steps, desc="unet", mininterval=20)
        for step in bar:
            x0, noise, t, ids, tokens, cells = unet_batch(recipe, data, empty_ids, step)
            v = unet(scheduler.add_noise(x0, noise, t), t, text(ids)[0]).sample
            mse = F.mse_loss(v, scheduler.get_velocity(x0, noise, t))
            ground = grounding_loss(stores, tokens, cells)
            learn(recipe, step, mse, ground, (opt, models, ema, "models"), ckpt, bar)


def export(pipe, out: Path, folder: Path, scale: float) -> Path:
    """Write the EMA weights as a standard diffusers folder: float16 safetensors, our tokenizer files."""
    state = torch.load(out / "unet.pt", weights_only=False)
    models = torch.nn.ModuleDict({"unet": pipe.unet, "text": pipe.text_encoder})
    models.load_state_dict(state["ema"])
    pipe.vae.register_to_config(scaling_factor=scale)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)  # keeps a MODEL_CARD.md beside
    shutil.rmtree(folder / "tokenizer")
    write_tokenizer_folder(WORDS, folder / "tokenizer")
    text_config = folder / "text_encoder" / "config.json"  # else transformers 5 loads it as float16
    text_config.write_text(text_config.read_text().replace('"dtype": "float16"', '"dtype": "float32"'))
    pipe.to(torch.float32)
    return folder


def load_vae(pipe, out: Path) -> None:
    """Put the trained VAE's weights into the pipeline."""
    pipe.vae.load_state_dict(torch.load(out / "vae.pt", weights_only=False)["vae"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sdlab train-tiny` / `python -m sdlab.tiny.train`."""
    parser.add_argument("--arch", choices=("unet", "mmdit"), default="unet",
                        help="unet: sdlab-tiny (SD 1.5 layout); mmdit: sdlab-tiny-mmdit (SD3 layout, on sdlab-tiny's "
                        "VAE and text encoder; the --vae-* options do not apply, --unet-* set its transformer)")
    parser.add_argument("--out", type=Path, default=Path("runs/tiny"), help="checkpoints and logs (resumable)")
    parser.add_argument("--export", type=Path, default=None, help="diffusers folder to write (default OUT/model)")
    parser.add_argument("--threads", type=int, default=2, help="1 is faster when other jobs share the cores")
    for field, value in asdict(Recipe()).items():
        parser.add_argument(f"--{field.replace('_', '-')}", type=type(value), default=value)


def run(args: argparse.Namespace) -> int:
    """Run every stage, resuming whatever --out already holds; write the diffusers folder."""
    recipe = Recipe(**{k: getattr(args, k) for k in asdict(Recipe())})
    check_recipe(recipe)
    out = Path(args.out)
    check_out(out, args.threads)
    torch.set_num_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if args.arch == "mmdit":
        from . import mmdit

        print(f"wrote {mmdit.run(recipe, out, args.export)} ({time.time() - start:.0f} s this run)")
        return 0
    pipe = build_pipeline(out / "tokenizer", seed=recipe.seed)
    train_vae(recipe, pipe, out)
    load_vae(pipe, out)
    data = encode_scenes(recipe, pipe, out)
    train_unet(recipe, pipe, data, out)
    folder = export(pipe, out, args.export or out / "model", data["scale"])
    print(f"wrote {folder} ({time.time() - start:.0f} s this run)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
