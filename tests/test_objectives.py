"""The three training targets, on sdlab-tiny's real latents and schedule: what each one asks the model to output."""
import pytest
import torch

import sdlab
from sdlab import objectives


@pytest.fixture(scope="module")
def batch():
    pipe = sdlab.load("tiny")
    x0 = objectives.scene_latents(pipe, range(4))
    return pipe.scheduler, x0, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))


def test_scene_latents_are_the_unets_input_shape_and_unit_scale(batch):
    _, x0, _ = batch
    assert x0.shape == (4, 4, 8, 8)
    assert 0.7 < x0.std().item() < 1.3  # scaling_factor is 1 / latent std


def test_at_the_last_timestep_the_noisy_latent_is_pure_noise_and_v_is_minus_x0(batch):
    scheduler, x0, noise = batch
    target = objectives.targets(scheduler, x0, noise, torch.full((4,), 999))
    assert torch.equal(target.noisy, noise) and torch.equal(target.epsilon, target.noisy)
    assert torch.equal(target.v, -x0)
    assert objectives.x0_from_epsilon(target, target.epsilon).isnan().all()  # 0 / 0: epsilon says nothing of x0


def test_targets_agree_with_their_definitions_at_any_timestep(batch):
    scheduler, x0, noise = batch
    t = torch.tensor([0, 250, 500, 998])
    target = objectives.targets(scheduler, x0, noise, t)
    assert torch.allclose(target.noisy, target.alpha * x0 + target.sigma * noise, atol=1e-6)
    assert torch.allclose(target.v, target.alpha * noise - target.sigma * x0, atol=1e-6)
    assert torch.allclose(target.alpha * target.noisy - target.sigma * target.v, x0, atol=1e-5)  # x0 back from v
    assert torch.allclose(objectives.x0_from_epsilon(target, noise), x0, atol=1e-3)
    assert torch.equal(target.flow, noise - x0)
    assert torch.equal(target.flow_noisy[0], x0[0])  # s = 0: the flow path starts at the image


def test_epsilon_read_off_a_v_prediction_misses_by_alpha_times_the_v_miss(batch):
    scheduler, x0, noise = batch
    target = objectives.targets(scheduler, x0, noise, torch.tensor([100, 500, 900, 998]))
    assert torch.allclose(objectives.epsilon_from_v(target, target.v), noise, atol=1e-4)
    miss = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    eps_miss = objectives.epsilon_from_v(target, target.v + miss) - noise
    ratio = eps_miss.pow(2).mean((1, 2, 3)) / miss.pow(2).mean((1, 2, 3))
    assert torch.allclose(ratio, target.alpha.flatten() ** 2, rtol=1e-3, atol=1e-6)  # the loss is alpha^2 x v's


def test_at_one_timestep_the_flow_input_sits_at_another_snr(batch):
    scheduler, x0, noise = batch
    target = objectives.targets(scheduler, x0, noise, torch.tensor([250, 500, 750, 998]))
    assert torch.allclose(target.flow_snr[1], torch.tensor(1.0)) and target.snr[1] < 0.5  # s = 1/2 vs alpha 0.49
    assert (target.snr.diff(dim=0) < 0).all() and (target.flow_snr.diff(dim=0) < 0).all()  # both fall with t
    assert not torch.allclose(target.snr, target.flow_snr, rtol=0.1)


def test_v_read_off_an_epsilon_prediction_and_the_flow_input_at_the_same_snr(batch):
    scheduler, x0, noise = batch
    target = objectives.targets(scheduler, x0, noise, torch.tensor([100, 500, 900, 990]))
    assert torch.allclose(objectives.v_from_epsilon(target, noise), target.v, atol=1e-4)
    s, x_s = objectives.matched_flow(target)
    assert torch.allclose(x_s, (1 - s) * x0 + s * noise, atol=1e-5)  # on the straight path ...
    assert torch.allclose(((1 - s) / s) ** 2, target.snr, rtol=1e-4)  # ... at the SNR of the v input
    assert (x_s.std((1, 2, 3)) < target.noisy.std((1, 2, 3))).all()
