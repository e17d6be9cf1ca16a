"""Chapter 06's exercises: reference answers, confirmed by the skip ledger of a trace."""
import sdlab
from graded import graded


def test_skip_count_and_mid_side():
    pipe = sdlab.load("tiny")
    with sdlab.trace(pipe) as t:
        pipe("a red circle", num_inference_steps=1, output_type="latent")
    graded("06.skip-count", len(t.ledger()), len(pipe.unet.down_blocks), pipe=pipe)
    side = t.get("unet.mid_block", step=0).inputs["hidden_states"][-1]
    graded("06.mid-side", side, pipe.unet.config.sample_size, pipe=pipe)
