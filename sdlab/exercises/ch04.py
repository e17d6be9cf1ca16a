"""Chapter 04's exercises: the forward process by hand (SNR, noising, the training target)."""
import torch

from . import exercise


@exercise("04.snr", "What is the SNR at timestep t on this model's schedule? Compute it from "
          "`pipe.scheduler.alphas_cumprod` (a float).",
          "SNR is alpha_bar / (1 - alpha_bar), with alpha_bar = alphas_cumprod[t]")
def snr(answer, scheduler, t: int) -> bool:
    abar = scheduler.alphas_cumprod[t].double().item()
    return abs(float(answer) - abar / (1 - abar)) <= 1e-4 * max(1.0, abar / (1 - abar))


@exercise("04.noise-by-hand", "Noise x0 to timestep t with `noise`, without calling add_noise (a tensor like x0).",
          "x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise, alpha_bar_t from alphas_cumprod[t]")
def noise_by_hand(answer, scheduler, x0, noise, t) -> bool:
    t = torch.as_tensor(t).reshape(-1).expand(len(x0))
    expected = scheduler.add_noise(x0, noise, t)
    return answer.shape == expected.shape and torch.allclose(answer.float(), expected, atol=1e-5)


@exercise("04.target", "What must this model output for `batch`? Compute its training target from batch.x0, "
          "batch.noise and batch.t (a tensor like batch.x0).",
          "read batch.objective: epsilon is the noise; v is sqrt(abar) * noise - sqrt(1 - abar) * x0; "
          "flow is noise - x0")
def target(answer, batch) -> bool:
    return answer.shape == batch.target.shape and torch.allclose(answer.float(), batch.target, atol=1e-5)
