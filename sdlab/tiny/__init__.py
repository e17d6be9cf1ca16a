"""sdlab-tiny: a small but real Stable Diffusion, trained by this project on drawn scenes.

>>> from sdlab.tiny import MODEL_DIR
>>> StableDiffusionPipeline.from_pretrained(MODEL_DIR)    # what sdlab.load("tiny") does
"""
from pathlib import Path

MODEL_DIR = Path(__file__).parent / "model"
