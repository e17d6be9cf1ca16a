"""sdlab-tiny: a small but real Stable Diffusion, trained by this project on drawn scenes."""
