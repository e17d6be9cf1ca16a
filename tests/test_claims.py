"""Each study-note claim keeps its verdict: if diffusers changes an architecture, the claim that moved fails here."""
import pytest

from sdlab import claims

WRONG = {"down-attention-last", "last-down-downsamples", "temb-320", "temb-after-conv2", "up-transposed-conv",
         "cross-attention-everywhere", "up-channels", "vae-downsample-channels", "vae-no-attention",
         "latent-compression"}


@pytest.fixture(scope="module")
def results():
    return {r.claim.id: r for r in claims.check_all()}


def test_ids_are_unique_and_cover_every_claim(results):
    assert len(results) == len(claims.CLAIMS)
    assert WRONG <= set(results)
    assert 12 <= len(results) <= 25


@pytest.mark.parametrize("claim", claims.CLAIMS, ids=lambda c: c.id)
def test_verdict(claim, results):
    result = results[claim.id]
    assert result.verdict.holds == (claim.id not in WRONG), str(result)
    assert result.verdict.measured


def test_measured_values_of_the_issue_s_three_wrong_notes(results):
    assert "temb 1x1280" in results["temb-320"].verdict.measured
    assert "encoder.mid_block.attentions.0" in results["vae-no-attention"].verdict.measured
    assert "resnets.0 -> attentions.0 -> resnets.1 -> attentions.1" in results["down-attention-last"].verdict.measured
    assert "nearest" in results["up-transposed-conv"].verdict.measured
    assert "0 ConvTranspose2d" in results["up-transposed-conv"].verdict.measured


def test_claims_cite_existing_seed_notes_and_models():
    for c in claims.CLAIMS:
        assert c.source.startswith("seeds/00") and c.model in ("sd15", "sd21", "sdxl"), c


def test_summary_and_str_show_the_verdict(results):
    text = claims.summary(list(results.values()))
    assert text.count("WRONG") == len(WRONG)
    assert str(results["temb-320"]).startswith("WRONG [temb-320, sd15, seeds/002]")


def test_check_all_can_pick_claims():
    assert [r.claim.id for r in claims.check_all(["vae-scaling"])] == ["vae-scaling"]
