"""What a driver needs to know to run an exported graph, stored in the ONNX file's metadata.

An exported graph takes a float32 (1, 3, H, W) RGB image on the 0-255 scale whose H and W are
multiples of ``size_divisibility``; the driver pads the image to that size with the per-channel
``pixel_mean`` (which the graph normalises to exactly 0, the model's zero padding) and crops the
output back. ``output`` says what the graph returns:

- "scores": (1, K, H, W) per-class scores of the CLOUDS mask classification (query class
  probabilities times sigmoid masks, summed over the queries); resized bilinearly to the
  requested size by the driver.
- "logits": (1, K, H / 4, W / 4) light-head logits of a VFM segmentor; the driver resizes them
  as the model does (TEST.MODE strategy, then bilinear to the requested size) and applies the
  softmax. Its refinement head, when present, is a second graph (``refine_graph``, a file next
  to the first) taking the window image and the window's coarse logits ("context").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["METADATA_KEY", "OUTPUT_KINDS", "ExportMetadata"]

METADATA_KEY = "clouds.export"
OUTPUT_KINDS = ("scores", "logits")


@dataclass(frozen=True)
class ExportMetadata:
    """Description of one exported model (the main graph; ``refine_graph`` names the second).

    Attributes:
        architecture: MODEL.META_ARCHITECTURE of the exported model.
        class_names: the K classes of the output channels, in order.
        pixel_mean: per-channel mean (0-255 RGB) the graph subtracts; the padding value.
        size_divisibility: H and W of the graph's input must be multiples of it.
        output: "scores" or "logits" (see the module docstring).
        input_format: INPUT.FORMAT of the config ("RGB" or "BGR"): the channel order the
            predictor feeds, as the PyTorch predictor.
        inference: the VFM test-time strategy (:class:`InferenceSettings` fields); empty for
            CLOUDS, which always predicts the whole image.
        refine_graph: file name (same folder) of the refinement-head graph, or "".
    """

    architecture: str
    class_names: list[str]
    pixel_mean: list[float]
    size_divisibility: int
    output: str
    input_format: str = "RGB"
    inference: dict[str, Any] = field(default_factory=dict)
    refine_graph: str = ""

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_KINDS:
            raise ValueError(f"output must be one of {OUTPUT_KINDS}, got {self.output!r}")
        if self.size_divisibility < 1:
            raise ValueError(f"size_divisibility must be >= 1, got {self.size_divisibility}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, source: str = "the ONNX file") -> ExportMetadata:
        """Parse the stored JSON; a ValueError names ``source`` when it is not ours."""
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: unreadable '{METADATA_KEY}' metadata ({e})") from e
