"""A WRONG verdict means something only if the same check says "holds" where the claim is true: each check here runs on
an SD 1.5 changed so that its study-note claim becomes right (a check that always fails would pass the other tests)."""
import pytest

from sdlab import claims

SAME_WIDTH = {"block_out_channels": [64, 64, 64, 64], "attention_head_dim": 8}  # 64 / 8 heads = 8 wide
RIGHTED = {  # WRONG claim -> an SD 1.5 made the way the note says
    "temb-320": lambda: claims.doctored("sd15", unet={"time_embedding_dim": 320}),
    "cross-attention-everywhere": lambda: claims.doctored("sd15", unet={
        "down_block_types": ["CrossAttnDownBlock2D"] * 4, "up_block_types": ["CrossAttnUpBlock2D"] * 4}),
    "vae-no-attention": lambda: claims.doctored("sd15", vae={"mid_block_add_attention": False}),
    "head-dim-is-width": lambda: claims.doctored("sd15", unet=SAME_WIDTH),
    "scale-query-dim": lambda: claims.doctored("sd15", unet={"attention_head_dim": 1}),  # one head: width = query_dim
}


@pytest.mark.parametrize("claim_id", RIGHTED)
def test_a_wrong_claim_holds_on_a_model_made_as_it_says(claim_id):
    from test_claims import WRONG

    claim = next(c for c in claims.CLAIMS if c.id == claim_id)
    assert claim_id in WRONG and not claim.check(claims.Models()).holds  # wrong on the published SD 1.5
    result = claim.check(claims.Models({"sd15": RIGHTED[claim_id]()}))
    assert result.holds, f"{claim_id}: {result.measured}"
