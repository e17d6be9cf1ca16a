"""Attention explorer: which pixels look at a word, by layer, head and denoising step, over the generated image.

>>> ex = AttentionExplorer.from_pipe(sdlab.load("tiny"), "a red circle on the left", steps=8)
>>> ex.widget          # word, layer, head, step, opacity and normalisation selectors over the overlay

`ex.export("attention.html")` writes a static page: one precomputed overlay per word (at the current layer,
head, step, opacity and normalisation), picked by a dropdown in the browser without a kernel.
"""
import html
from dataclasses import dataclass, replace
from pathlib import Path

import ipywidgets as W
from matplotlib.figure import Figure

from ..attention import NORMS, capture_attention
from ..figures import png_bytes
from ..render.heatmap import as_rgb, overlay, short
from .export import export_html

ALL = "all layers (mean)"
MEAN = "mean"  # a Dropdown treats the value None as "nothing selected", so the mean needs a real value


@dataclass
class Choice:
    """One state of the explorer; None for head or step means their mean."""

    word: str
    layer: str = ALL  # a cross-attention path, or ALL
    head: int | None = None
    step: int | None = None
    opacity: float = 0.5
    norm: str = "max"


def layer_paths(cap) -> list[str]:
    """Cross-attention layers captured, in the UNet's order."""
    return [p for p, m in cap.maps.items() if m.kind == "cross"]


def head_count(cap, layer: str) -> int:
    """How many heads can be picked one by one: 0 when heads were averaged during capture."""
    maps = [cap.maps[p] for p in (layer_paths(cap) if layer == ALL else [layer])]
    return 0 if maps[0].heads == "mean" else min(m.probs.shape[2] for m in maps)


def kept_steps(cap) -> list[int]:
    """Steps kept one by one (empty when the capture averaged them)."""
    first = cap.maps[layer_paths(cap)[0]]
    return list(first.steps) if first.per_step else []


def figure(cap, image, choice: Choice) -> Figure:
    """The image, and beside it the chosen word's heatmap over a grey copy, titled with what was chosen."""
    heat = cap.heatmap(choice.word, layers=None if choice.layer == ALL else choice.layer, step=choice.step,
                       head=choice.head, norm=choice.norm)
    fig = Figure(figsize=(6.4, 3.6))
    where = "all layers" if choice.layer == ALL else short(choice.layer)
    title = (f"{choice.word!r} | {where} | head {'mean' if choice.head is None else choice.head} | "
             f"step {'mean' if choice.step is None else choice.step} | {choice.norm}")
    left, right = fig.subplots(1, 2)
    left.imshow(as_rgb(image))
    left.set_axis_off()
    overlay(right, heat, image, alpha=choice.opacity, title=title)
    fig.tight_layout()
    return fig


def tokens_html(tokens, word: str) -> str:
    """The prompt's tokens with their indices, the chosen word's token(s) in bold: a word may be several tokens."""
    chosen = set(tokens.indices(word))
    shown = [t for t in tokens if t.kind != "pad"]
    texts = [f"{t.index}:{html.escape(t.text.removesuffix('</w>'))}" for t in shown]  # </w> only ends a word
    cells = [f"<b>{text}</b>" if t.index in chosen else text for t, text in zip(shown, texts)]
    return f"<code>{' '.join(cells)}</code> + {len(tokens) - len(shown)} padding"


def _or_none(value):
    return None if value == MEAN else value


def overlay_png(cap, image, choice: Choice) -> bytes:
    return png_bytes(figure(cap, image, choice))


class AttentionExplorer:
    """The widget over a finished capture (`with capture_attention(pipe, heads="each", steps="each") as cap`)."""

    def __init__(self, cap, image):
        self.cap, self.image = cap, image
        words = list(dict.fromkeys(w for w, _ in cap.tokens.mapping()))  # the prompt's words, each once
        self.word = W.Dropdown(options=words, description="word")
        self.layer = W.Dropdown(options=[ALL] + layer_paths(cap), description="layer", layout=W.Layout(width="460px"))
        self.head = W.Dropdown(description="head")
        self.step = W.Dropdown(options=[MEAN, *kept_steps(cap)], description="step")
        self.opacity = W.FloatSlider(value=0.5, min=0, max=1, step=0.05, description="opacity")
        self.norm = W.ToggleButtons(options=NORMS, description="normalise")
        self.image_view = W.Image(format="png").add_class("sdlab-heatmap")
        self.tokens = W.HTML()
        self._heads()
        for control in (self.word, self.head, self.step, self.opacity, self.norm):
            control.observe(lambda _: self.render(), "value")
        self.layer.observe(lambda _: (self._heads(), self.render()), "value")
        controls = W.VBox([self.word, self.tokens, self.layer, self.head, self.step, self.opacity, self.norm])
        self.widget = W.HBox([controls, self.image_view]).add_class("sdlab-attention")
        self.render()

    def _repr_mimebundle_(self, **kwargs):  # the object itself displays as its widget in a notebook
        return self.widget._repr_mimebundle_(**kwargs)

    @classmethod
    def from_pipe(cls, pipe, prompt: str = "a red circle on the left", steps: int = 8, seed: int = 0,
                  guidance: float = 7.5) -> "AttentionExplorer":
        """Generate once while capturing every cross-attention layer, head and step, then explore."""
        from ..generate import Request, generate

        request = Request(prompt, seed, steps, guidance).checked(pipe)
        with capture_attention(pipe, heads="each", steps="each") as cap:
            image = generate(pipe, request)
        return cls(cap, image)

    def _heads(self) -> None:
        count = head_count(self.cap, self.layer.value)
        self.head.options = [MEAN, *range(count)]
        self.head.value = MEAN  # a new layer may have fewer heads: start again from their mean

    @property
    def choice(self) -> Choice:
        return Choice(self.word.value, self.layer.value, _or_none(self.head.value), _or_none(self.step.value),
                      self.opacity.value, self.norm.value)

    def render(self) -> None:
        self.tokens.value = tokens_html(self.cap.tokens, self.word.value)
        self.image_view.value = overlay_png(self.cap, self.image, self.choice)

    def export(self, path) -> Path:
        """A standalone page: one overlay per word at the current other settings, chosen by a dropdown."""
        words = list(self.word.options)
        views = [W.Image(value=overlay_png(self.cap, self.image, replace(self.choice, word=w)), format="png")
                 for w in words]
        selector = W.Dropdown(options=[(w, i) for i, w in enumerate(words)], description="word")
        return export_html(path, "sdlab attention explorer", selector, "index", views)
