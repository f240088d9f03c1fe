"""Offline prompt writer: urban driving scenes combined from templates, seeded.

Each prompt combines a viewpoint, a street scene, a place, a time of day, a weather and four
objects. Every axis is drawn by a balanced picker (the least used option so far, ties broken
at random), so a list of 100 prompts covers all 19 Cityscapes classes, every weather and every
time of day about equally. The place is drawn first; the weather and the scene only among those
that fit it and the time of day (:func:`plausible_weather`, :func:`plausible_scene`): no snow
in tropical or desert cities, no golden-hour light through heavy rain, fog or snowfall, no
multi-lane urban highway, tram or office tower in a village (:func:`plausible_object`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import partial

__all__ = [
    "CLASS_PHRASES",
    "plausible_object",
    "plausible_scene",
    "plausible_weather",
    "template_prompts",
]

VIEWS = (
    "A dashcam photo of",
    "A street-level photo of",
    "A photo taken from a car driving through",
    "A wide-angle view from the driver's seat of",
)

SCENES = (
    "a busy intersection",
    "a tree-lined avenue",
    "a narrow one-way street",
    "a multi-lane urban highway",
    "a quiet residential street",
    "a roundabout",
    "a road over a bridge",
    "a road through an industrial area",
    "a crowded market street",
    "a boulevard with a tram line",
    "a steep hillside street",
    "an old-town street",
)

PLACES = (
    "New York",
    "Paris",
    "Tokyo",
    "Berlin",
    "Mumbai",
    "Cairo",
    "Sao Paulo",
    "Zurich",
    "Amsterdam",
    "Moscow",
    "Sydney",
    "Cape Town",
    "Seoul",
    "Mexico City",
    "London",
    "Rome",
    "Bangkok",
    "Chicago",
    "Lagos",
    "Istanbul",
    "Toronto",
    "Madrid",
    "Hanoi",
    "Oslo",
    "a small European town",
    "an American suburb",
    "a Japanese village",
    "a Chinese megacity",
)

TIMES = (
    "at dawn",
    "in the early morning",
    "at noon",
    "in the afternoon",
    "at golden hour",
    "at sunset",
    "at dusk",
    "at night",
)

WEATHERS = (
    "under a clear sky",
    "under a cloudy sky",
    "in light rain",
    "in heavy rain with puddles",
    "in dense fog",
    "in light mist",
    "in falling snow",
    "with fresh snow on the ground",
    "right after a rain shower",
)

# Places where snow does not fall (tropical or desert climates, mild southern-hemisphere coasts).
SNOWLESS_PLACES = frozenset(
    ("Mumbai", "Cairo", "Sao Paulo", "Sydney", "Cape Town", "Mexico City", "Bangkok", "Lagos",
     "Hanoi")
)  # fmt: skip
SNOW_WEATHERS = frozenset({"in falling snow", "with fresh snow on the ground"})
# Golden-hour light needs the low sun; these weathers hide it.
SUN_HIDING_WEATHERS = frozenset({"in heavy rain with puddles", "in dense fog", "in falling snow"})
SMALL_PLACES = frozenset({"a small European town", "an American suburb", "a Japanese village"})
BIG_CITY_SCENES = frozenset({"a multi-lane urban highway", "a boulevard with a tram line"})
BIG_CITY_OBJECTS = frozenset({"a tram on rails", "a light-rail train", "glass office towers"})

CLASS_PHRASES: dict[str, tuple[str, ...]] = {
    "road": ("lane markings on the asphalt", "a wide road", "a cracked asphalt road"),
    "sidewalk": ("a paved sidewalk", "a curb and a footpath", "a broad pavement"),
    "building": ("tall buildings", "old stone buildings", "glass office towers"),
    "wall": ("a concrete wall", "a low brick wall", "a wall covered in graffiti"),
    "fence": ("a metal fence", "a wooden fence", "a chain-link fence"),
    "pole": ("lamp posts", "utility poles with wires", "sign poles"),
    "traffic light": ("traffic lights", "a red traffic light", "a pedestrian signal"),
    "traffic sign": ("traffic signs", "a stop sign", "speed limit signs"),
    "vegetation": ("trees along the road", "hedges and bushes", "a row of tall trees"),
    "terrain": ("a grass verge", "patches of grass and soil", "a grassy median"),
    "sky": ("a wide view of the sky", "the sky above the rooftops", "open sky over the road"),
    "person": ("pedestrians on a crosswalk", "people walking", "a crowd waiting to cross"),
    "rider": ("a cyclist riding in the bike lane", "a motorcyclist", "a rider on a scooter"),
    "car": ("parked cars", "cars in traffic", "a taxi"),
    "truck": ("a delivery truck", "a pickup truck", "a semi truck"),
    "bus": ("a city bus", "a double-decker bus", "a bus at a bus stop"),
    "train": ("a tram on rails", "a train crossing the road", "a light-rail train"),
    "motorcycle": ("parked motorcycles", "a motorcycle in traffic", "scooters"),
    "bicycle": ("bicycles parked on a rack", "a bicycle leaning on a fence", "bicycles"),
}


def plausible_weather(weather: str, *, place: str, time: str) -> bool:
    """Whether ``weather`` can be seen in ``place`` at ``time``."""
    if weather in SNOW_WEATHERS and place in SNOWLESS_PLACES:
        return False
    return not (time == "at golden hour" and weather in SUN_HIDING_WEATHERS)


def plausible_scene(scene: str, *, place: str) -> bool:
    """Whether ``scene`` exists in ``place``."""
    return not (scene in BIG_CITY_SCENES and place in SMALL_PLACES)


def plausible_object(phrase: str, *, place: str) -> bool:
    """Whether the object ``phrase`` describes is found in ``place``."""
    return not (phrase in BIG_CITY_OBJECTS and place in SMALL_PLACES)


class _BalancedPicker:
    """Picks the least used options so far (among the allowed ones), breaking ties at random."""

    def __init__(self, options: Sequence[str], rng: random.Random) -> None:
        self._counts = dict.fromkeys(options, 0)
        self._rng = rng

    def pick(self, k: int = 1, allowed: Callable[[str], bool] | None = None) -> list[str]:
        options = [o for o in self._counts if allowed is None or allowed(o)]
        order = sorted(options, key=lambda o: (self._counts[o], self._rng.random()))
        chosen = order[:k]
        for option in chosen:
            self._counts[option] += 1
        return chosen


def template_prompts(num_prompts: int, *, seed: int = 0, objects_per_prompt: int = 4) -> list[str]:
    """``num_prompts`` distinct prompts from the templates, reproducible by ``seed``.

    Raises:
        ValueError: for a non-positive count or objects outside ``[1, 19]``.
    """
    if num_prompts < 1:
        raise ValueError(f"--num-prompts must be >= 1, got {num_prompts}")
    if not 1 <= objects_per_prompt <= len(CLASS_PHRASES):
        raise ValueError(
            f"objects_per_prompt must be in [1, {len(CLASS_PHRASES)}], got {objects_per_prompt}"
        )
    rng = random.Random(seed)
    views, scenes, places, times, weathers = (
        _BalancedPicker(options, rng) for options in (VIEWS, SCENES, PLACES, TIMES, WEATHERS)
    )
    classes = _BalancedPicker(list(CLASS_PHRASES), rng)
    prompts: dict[str, None] = {}
    max_tries = 100 * num_prompts
    for _ in range(max_tries):
        if len(prompts) == num_prompts:
            break
        place, time = places.pick()[0], times.pick()[0]
        (weather,) = weathers.pick(allowed=partial(plausible_weather, place=place, time=time))
        (scene,) = scenes.pick(allowed=partial(plausible_scene, place=place))
        (view,) = views.pick()
        fits = partial(plausible_object, place=place)
        objects = [
            rng.choice([phrase for phrase in CLASS_PHRASES[c] if fits(phrase)])
            for c in classes.pick(objects_per_prompt)
        ]
        listing = ", ".join(objects[:-1]) + (" and " if len(objects) > 1 else "") + objects[-1]
        prompts.setdefault(f"{view} {scene} in {place} {time} {weather}, with {listing}", None)
    return list(prompts)
