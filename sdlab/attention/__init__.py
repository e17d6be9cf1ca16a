"""Attention of a diffusers UNet: which layers (layers), the one explicit path (explicit), recording (capture),
and queries over the recorded maps (maps).

>>> with sdlab.capture_attention(pipe) as cap: pipe("a red circle on the left")
>>> cap.peak("circle")
"""
from ..budget import GiB
from ..hooks import Row
from .capture import AttentionCapture, Settings, capture_attention, check_steps, estimate_bytes
from .explicit import Call, ExplicitProcessor, attach, probabilities
from .layers import KINDS, Layer, attention_layers, block_factors, block_of, query_rows, select_layers
from .maps import NORMS, CapturedMaps, LayerMap

__all__ = ["GiB", "KINDS", "NORMS", "AttentionCapture", "Call", "CapturedMaps", "ExplicitProcessor", "Layer",
           "LayerMap", "Row", "Settings", "attach", "attention_layers", "block_factors", "block_of",
           "capture_attention", "check_steps", "estimate_bytes", "probabilities", "query_rows", "select_layers"]
