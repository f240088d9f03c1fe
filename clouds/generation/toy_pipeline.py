"""A toy text-to-image generator with Stable Diffusion's pipeline interface (quickstart, tests).

It reads a prompt the way a person would skim it (weather, time of day, place, the objects it
names) and draws an unlabelled toy street scene with the toy renderer
(:mod:`clouds.data.toy`): the prompt sets the weather, the light (tint, brightness), the road
layout and how often each kind of object appears, and every image draws its own palette
rotation, saturation, contrast, texture scale, noise and blur from ranges that span the toy
target domains. Only images leave it, never the scene's labels.

A folder holding :data:`TOY_PIPELINE_FILE` is loaded by
:func:`clouds.generation.pipeline.load_pipeline` like a diffusers folder, so
``generate_txt_im.py --model-id FOLDER`` uses it through its normal path
(:func:`save_toy_pipeline` writes one). ``num_inference_steps`` and ``guidance_scale`` are
accepted and have no effect; each image is a pure function of its prompt and its generator's
seed.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clouds.data.toy.render import DomainStyle, render_scene
from clouds.data.toy.scene import SceneContent, sample_scene

__all__ = [
    "TOY_PIPELINE_FILE",
    "PromptAttributes",
    "ToyPipelineOutput",
    "ToyTextToImagePipeline",
    "is_toy_pipeline_folder",
    "parse_prompt",
    "prompt_content",
    "prompt_style",
    "save_toy_pipeline",
]

TOY_PIPELINE_FILE = "toy_pipeline.json"
_FORMAT = "clouds-toy-text-to-image"

# Weather words -> the renderer's weather; the first listed weather found wins ties at random.
_WEATHER_WORDS: dict[str, tuple[str, ...]] = {
    "night": ("night", "midnight", "nighttime", "neon", "dark"),
    "fog": ("fog", "foggy", "mist", "misty", "haze", "hazy", "smog"),
    "rain": (
        "rain", "rainy", "raining", "drizzle", "shower", "puddles", "puddle", "wet", "storm",
        "thunderclouds", "umbrellas", "downpour", "monsoon", "raincoats", "ponchos",
    ),
    "snow": ("snow", "snowy", "snowfall", "blizzard", "winter", "icy", "sleet", "frost"),
}  # fmt: skip

# Time-of-day words -> (RGB tint, brightness, saturation) of the light.
_LIGHT_WORDS: tuple[tuple[tuple[str, ...], tuple[float, float, float], float, float], ...] = (
    (("golden hour", "sunset", "dusk", "evening"), (1.12, 0.96, 0.8), 0.85, 1.05),
    (("dawn", "sunrise", "early morning", "morning"), (1.04, 0.98, 0.92), 0.92, 0.95),
    (("noon", "midday", "sunny", "bright", "afternoon", "summer"), (1.0, 1.0, 0.97), 1.1, 1.1),
    (("cloudy", "overcast", "grey", "gray", "autumn"), (0.97, 1.0, 1.03), 0.95, 0.75),
)

# Layout words -> road half-width range at the bottom row and horizon range.
_NARROW = ("narrow", "old-town", "old town", "alley", "cobblestone", "village", "quiet", "lane")
_WIDE = ("highway", "multi-lane", "avenue", "boulevard", "wide", "motorway", "intersection")
_HILLY = ("hillside", "steep", "hill", "hills", "mountain", "mountains")

# Object words -> the scene content they raise.
_OBJECT_WORDS: dict[str, tuple[str, ...]] = {
    "cars": ("car", "cars", "taxi", "taxis", "traffic", "suv", "sedan", "kei car"),
    "truck": ("truck", "trucks", "lorry", "pickup", "semi", "van", "vans"),
    "bus": ("bus", "buses", "minibus", "minibuses", "double-decker", "coach"),
    "train": ("tram", "trams", "train", "rails", "light-rail", "streetcar", "metro"),
    "persons": (
        "pedestrian", "pedestrians", "people", "person", "crowd", "woman", "man", "tourists",
        "walking", "commuters", "vendors", "children",
    ),
    "rider": (
        "cyclist", "cyclists", "rider", "riders", "motorcyclist", "motorcyclists", "biker",
        "scooter", "scooters", "motorbike", "motorbikes", "motorcycle", "motorcycles",
    ),
    "parked_bicycle": ("bicycle", "bicycles", "bike", "bikes"),
    "fence": ("fence", "fences", "railing", "railings", "chain-link"),
    "wall": ("wall", "walls", "barrier", "barriers", "graffiti"),
    "poles": (
        "pole", "poles", "lamp", "lamps", "post", "posts", "streetlight", "streetlights",
        "sign", "signs", "traffic light", "traffic lights", "signal", "signals",
    ),
    "trees": (
        "tree", "trees", "tree-lined", "vegetation", "hedge", "hedges", "bush", "bushes",
        "park", "palm", "garden", "gardens", "forest", "leaves",
    ),
    "buildings": (
        "building", "buildings", "tower", "towers", "skyscraper", "skyscrapers", "houses",
        "storefronts", "warehouses", "downtown", "office",
    ),
    "sky": ("sky", "open sky", "skyline"),
}  # fmt: skip


def _words(prompt: str) -> set[str]:
    """Lower-case words and two-word phrases of ``prompt``."""
    tokens = re.findall(r"[a-z][a-z'-]*", prompt.lower())
    return set(tokens) | {f"{a} {b}" for a, b in zip(tokens, tokens[1:])}


@dataclass(frozen=True)
class PromptAttributes:
    """What a prompt says about the scene.

    Attributes:
        weathers: the renderer weathers it names (empty: clear).
        light: index into the time-of-day table, or None.
        layout: "narrow", "wide" or "" (neither).
        hilly: whether it names hills or steep streets.
        place: the place after " in " (e.g. "Tokyo"), or "".
        objects: the object kinds it names (keys of the object-word table).
    """

    weathers: tuple[str, ...] = ()
    light: int | None = None
    layout: str = ""
    hilly: bool = False
    place: str = ""
    objects: frozenset[str] = field(default_factory=frozenset)


def parse_prompt(prompt: str) -> PromptAttributes:
    """Read weather, time of day, layout, place and objects out of ``prompt``."""
    words = _words(prompt)
    weathers = tuple(w for w, keys in _WEATHER_WORDS.items() if words & set(keys))
    light = next((i for i, (keys, *_) in enumerate(_LIGHT_WORDS) if words & set(keys)), None)
    layout = "narrow" if words & set(_NARROW) else "wide" if words & set(_WIDE) else ""
    place = re.search(r"\bin (?:the )?([A-Z][\w'-]*(?: [A-Z][\w'-]*)*)", prompt)
    objects = frozenset(kind for kind, keys in _OBJECT_WORDS.items() if words & set(keys))
    return PromptAttributes(
        weathers=weathers,
        light=light,
        layout=layout,
        hilly=bool(words & set(_HILLY)),
        place=place.group(1) if place else "",
        objects=objects,
    )


def prompt_content(attributes: PromptAttributes) -> SceneContent:
    """The scene content a prompt asks for: named objects appear more often."""
    content = SceneContent()
    objects = attributes.objects
    changes: dict[str, Any] = {}
    if attributes.layout == "narrow":
        changes["road_width"] = (0.2, 0.32)
    elif attributes.layout == "wide":
        changes["road_width"] = (0.4, 0.55)
    probabilities = {
        "truck": 0.8,
        "bus": 0.8,
        "train": 0.6,
        "rider": 0.9,
        "parked_bicycle": 0.8,
        "fence": 0.9,
        "wall": 0.9,
    }
    changes.update({k: p for k, p in probabilities.items() if k in objects})
    counts = {"cars": (2, 6), "persons": (2, 6), "poles": (2, 5)}
    changes.update({k: r for k, r in counts.items() if k in objects})
    if "trees" in objects and "buildings" not in objects:
        changes["skyline"] = (0.4, 0.5, 0.1)
    elif "buildings" in objects and "trees" not in objects:
        changes["skyline"] = (0.8, 0.12, 0.08)
    elif "sky" in objects:
        changes["skyline"] = (0.5, 0.2, 0.3)
    return replace(content, **changes)


def prompt_style(attributes: PromptAttributes, rng: np.random.Generator) -> DomainStyle:
    """One image's look: the prompt's weather and light on a palette, texture scale, noise and
    blur drawn from ranges that span the toy target domains."""
    weather = str(rng.choice(attributes.weathers)) if attributes.weathers else "clear"
    tint, brightness, saturation = np.ones(3), 1.0, 1.0
    if attributes.light is not None:
        _, light_tint, brightness, saturation = _LIGHT_WORDS[attributes.light]
        tint = np.asarray(light_tint)
    # a place keeps its own palette offset; every image adds its own jitter around it
    place_hue = (zlib.crc32(attributes.place.encode()) % 31 - 15.0) if attributes.place else 0.0
    tint = tint * (1.0 + rng.normal(0.0, 0.04, size=3))
    horizon = (0.3, 0.5) if attributes.hilly else (0.35, 0.58)
    return DomainStyle(
        hue_shift=float(np.clip(place_hue + rng.uniform(-15.0, 15.0), -28.0, 28.0)),
        saturation=float(saturation * rng.uniform(0.65, 1.25)),
        brightness=float(brightness * rng.uniform(0.8, 1.15)),
        contrast=float(rng.uniform(0.85, 1.15)),
        tint=(float(tint[0]), float(tint[1]), float(tint[2])),
        texture_period=int(rng.integers(3, 7)),
        noise=float(rng.uniform(0.01, 0.06)),
        blur=float(rng.uniform(0.0, 0.6)),
        weather=weather,
        horizon_range=horizon,
    )


@dataclass(frozen=True)
class ToyPipelineOutput:
    """What a call returns, as diffusers' pipeline output: ``images`` (B, H, W, 3) float in
    [0, 1] for ``output_type="np"``."""

    images: np.ndarray


class ToyTextToImagePipeline:
    """Prompted toy street scenes behind the ``StableDiffusionPipeline`` call interface."""

    def __init__(self, *, min_size: int = 16) -> None:
        """
        Args:
            min_size: smallest image height and width it draws.
        """
        self.min_size = min_size

    @classmethod
    def from_pretrained(cls, folder: str | Path, **_: Any) -> ToyTextToImagePipeline:
        """Load the pipeline saved in ``folder`` (diffusers' keyword arguments are accepted)."""
        path = Path(folder) / TOY_PIPELINE_FILE
        try:
            config = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"Cannot read the toy pipeline config {path}: {e}") from e
        if not isinstance(config, dict) or config.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a toy pipeline config (format {_FORMAT!r})")
        return cls(min_size=int(config.get("min_size", 16)))

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the pipeline's folder (its config file)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"format": _FORMAT, "min_size": self.min_size}
        (folder / TOY_PIPELINE_FILE).write_text(json.dumps(config, indent=2) + "\n")
        return folder

    def to(self, device: torch.device | str) -> ToyTextToImagePipeline:
        """Images are drawn on the CPU whatever the device."""
        return self

    def set_progress_bar_config(self, **_: Any) -> None:
        """No progress bar: drawing is instantaneous."""

    def __call__(
        self,
        prompt: str | Sequence[str],
        *,
        height: int = 64,
        width: int = 128,
        num_inference_steps: int = 1,
        guidance_scale: float = 0.0,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        output_type: str = "np",
    ) -> ToyPipelineOutput:
        """Draw one image per prompt.

        Args:
            prompt: one prompt or B prompts.
            height, width: image size.
            num_inference_steps, guidance_scale: accepted for the interface, no effect.
            generator: one torch generator per prompt (or one for all); its initial seed and
                the prompt seed the image.
            output_type: "np" only.

        Returns:
            ``images`` (B, height, width, 3) float32 in [0, 1].
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if output_type != "np":
            raise ValueError(f"The toy pipeline only returns output_type='np', got {output_type!r}")
        if height < self.min_size or width < self.min_size:
            raise ValueError(
                f"The toy pipeline draws images of at least {self.min_size}x{self.min_size}, "
                f"got {height}x{width}"
            )
        if generator is None or isinstance(generator, torch.Generator):
            generators = [generator] * len(prompts)
        else:
            generators = list(generator)
        if len(generators) != len(prompts):
            raise ValueError(f"Got {len(generators)} generators for {len(prompts)} prompts")
        images = [
            self.draw(text, 0 if g is None else g.initial_seed(), height, width)
            for text, g in zip(prompts, generators)
        ]
        return ToyPipelineOutput(images=np.stack(images).astype(np.float32) / 255.0)

    @staticmethod
    def draw(prompt: str, seed: int, height: int, width: int) -> np.ndarray:
        """The (H, W, 3) uint8 image of ``prompt`` for ``seed``."""
        rng = np.random.default_rng([seed, zlib.crc32(prompt.encode())])
        attributes = parse_prompt(prompt)
        style = prompt_style(attributes, rng)
        scene = sample_scene(
            rng,
            height,
            width,
            horizon_range=style.horizon_range,
            content=prompt_content(attributes),
        )
        return render_scene(scene, style, rng)


def is_toy_pipeline_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a saved toy pipeline."""
    return (Path(folder).expanduser() / TOY_PIPELINE_FILE).is_file()


def save_toy_pipeline(folder: str | Path) -> Path:
    """Save a toy pipeline to ``folder`` (load it with ``--model-id FOLDER``)."""
    return ToyTextToImagePipeline().save_pretrained(folder)
