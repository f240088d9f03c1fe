"""onnxruntime backend: exported graphs behind the model interface and the predictor interface.

:class:`OnnxSegmenter` takes the model's input dicts ("image" uint8 (3, H, W), optional "height",
"width") and returns ``[{"sem_seg": (K, height, width)}]`` as the PyTorch model does, so the
evaluation loop and the predictor run it unchanged. The driver work around the graphs:

- pad the image to the size divisibility with the pixel mean (normalised to the model's zero
  padding inside the graph) and crop the output back;
- CLOUDS ("scores"): resize the scores bilinearly to the requested size;
- VFM segmentors ("logits"): run the config's TEST.MODE strategy
  (:func:`clouds.modeling.inference.infer_logits`: whole, sliding windows, coarse-to-fine) with
  the light-head graph as the predictor of images / windows and the refinement-head graph as the
  window refiner, resize as ``VFMSegmentor`` does, then the softmax.

Resizing and slicing the 0-255 image before the graph normalises it equals doing so after (the
normalisation is per-channel affine), so the strategies run on the raw image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clouds.cli_errors import UserFileError
from clouds.config import CfgNode
from clouds.data.catalog import MetadataCatalog, dataset_class_names
from clouds.data.mappers import SemSegTestMapper
from clouds.export.metadata import METADATA_KEY, ExportMetadata
from clouds.modeling.acceleration import AccelerationSettings
from clouds.modeling.inference import InferenceSettings, infer_logits
from clouds.modeling.meta_arch.base import output_size
from clouds.predictor import Predictor, default_dataset

__all__ = ["OnnxPredictor", "OnnxSegmenter", "load_session"]


def load_session(path: Path, *, threads: int = 0) -> Any:
    """An onnxruntime InferenceSession of ``path`` on the available providers (CPU at least).

    Args:
        threads: intra-op threads; 0 lets onnxruntime choose.
    """
    import onnxruntime

    if not path.is_file():
        raise UserFileError(f"ONNX model not found: {path} (write it with tools/export_onnx.py)")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(
        str(path), options, providers=onnxruntime.get_available_providers()
    )


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) to ``size`` (as the models' own resizing)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class OnnxSegmenter(nn.Module):
    """An exported model run by onnxruntime, with the segmenters' ``forward`` interface."""

    def __init__(self, path: str | Path, *, threads: int = 0) -> None:
        """
        Args:
            path: the main graph written by :func:`clouds.export.export_onnx`; its refinement
                graph, if any, is read from the same folder.
            threads: onnxruntime intra-op threads (0: its default).

        Raises:
            UserFileError: a graph file is missing.
            ValueError: the file holds no CLOUDS export metadata.
        """
        super().__init__()
        self.path = Path(path)
        self.session = load_session(self.path, threads=threads)
        stored = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if stored is None:
            raise ValueError(
                f"{self.path} has no '{METADATA_KEY}' metadata: export it with tools/export_onnx.py"
            )
        self.info = ExportMetadata.from_json(stored, source=str(self.path))
        self.refine_session = None
        if self.info.refine_graph:
            self.refine_session = load_session(
                self.path.with_name(self.info.refine_graph), threads=threads
            )
        self.inference_settings = InferenceSettings(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in self.info.inference.items()}
        )
        self.pixel_mean = torch.tensor(self.info.pixel_mean, dtype=torch.float32).view(-1, 1, 1)

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    def _pad(self, image: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) -> (1, 3, Hp, Wp) multiples of the size divisibility, filled with the
        pixel mean."""
        div = self.info.size_divisibility
        h, w = image.shape[-2:]
        # two blocks at least: the smallest size the graph accepts
        hp, wp = max(-(-h // div), 2) * div, max(-(-w // div), 2) * div
        if (hp, wp) == (h, w):
            return image
        padded = self.pixel_mean.expand(1, 3, hp, wp).clone()
        padded[..., :h, :w] = image
        return padded

    @staticmethod
    def _run(session: Any, **inputs: torch.Tensor) -> torch.Tensor:
        feeds = {name: t.float().contiguous().numpy() for name, t in inputs.items()}
        return torch.from_numpy(session.run(None, feeds)[0])

    def light_logits(self, image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """(1, 3, h, w) 0-255 -> light-head logits (1, K, *size), resized as
        ``VFMSegmentor.light_logits``."""
        h, w = image.shape[-2:]
        padded = self._pad(image)
        logits = self._run(self.session, image=padded)
        if padded.shape[-2:] != (h, w):
            logits = _resize(logits, padded.shape[-2:])[..., :h, :w]
        return _resize(logits, size)

    def refined_logits(self, image: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Window (1, 3, h, w) 0-255 + its coarse logits -> refined logits (1, K, h, w), resized
        as ``VFMSegmentor.refined_logits``."""
        h, w = image.shape[-2:]
        padded = self._pad(image)
        logits = self._run(self.refine_session, image=padded, context=context)
        if padded.shape[-2:] != (h, w):
            logits = _resize(logits, padded.shape[-2:])[..., :h, :w]
        return _resize(logits, (h, w))

    def _check_classes(self, x: Mapping[str, Any]) -> None:
        asked = x.get("class_names")
        if asked is not None and list(asked) != self.class_names:
            raise ValueError(
                f"{self.path} predicts the classes it was exported for ({self.class_names}); "
                f"re-export with --dataset for another class list"
            )

    @torch.no_grad()
    def forward(self, batched_inputs: list[dict[str, Any]]) -> list[dict[str, torch.Tensor]]:
        """Per-image {"sem_seg": (K, height, width)} float32 for the model's input dicts."""
        return [self._inference_one(x) for x in batched_inputs]

    def _inference_one(self, x: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        self._check_classes(x)
        image = x["image"].cpu().float()[None]
        h, w = image.shape[-2:]
        out_size = output_size(x, h, w)
        if self.info.output == "scores":
            scores = self._run(self.session, image=self._pad(image))[..., :h, :w]
            return {"sem_seg": _resize(scores, out_size)[0]}
        logits = infer_logits(
            self.inference_settings,
            image,
            logits_fn=self.light_logits,
            refine_fn=self.refined_logits if self.refine_session is not None else None,
        )
        return {"sem_seg": _resize(logits, out_size)[0].softmax(dim=0)}


class OnnxPredictor(Predictor):
    """:class:`clouds.predictor.Predictor` (same attributes and ``__call__``) running an
    exported model with onnxruntime: the image is resized like the test mapper and the scores
    come back at its original size."""

    def __init__(
        self,
        cfg: CfgNode,
        onnx_model: str | Path,
        *,
        dataset_name: str | None = None,
        threads: int = 0,
    ) -> None:
        """
        Args:
            cfg: the config the model was exported from (INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST,
                INPUT.FORMAT, DATASETS); MODEL.WEIGHTS is not read.
            onnx_model: the main graph written by tools/export_onnx.py.
            dataset_name: dataset whose metadata (colours) to use; its class list must be the
                graph's.

        Raises:
            ValueError: the dataset's classes are not those the graph was exported for.
        """
        self.cfg = cfg.clone()
        self.dataset_name = dataset_name or default_dataset(cfg)
        self.metadata = MetadataCatalog.get(self.dataset_name)
        self.model = OnnxSegmenter(onnx_model, threads=threads)
        self.class_names = dataset_class_names(self.dataset_name)
        if self.class_names != self.model.class_names:
            raise ValueError(
                f"{onnx_model} was exported for the classes {self.model.class_names}, not those "
                f"of {self.dataset_name} ({self.class_names}); re-export with --dataset "
                f"{self.dataset_name}"
            )
        self.device = torch.device("cpu")
        self.acceleration = AccelerationSettings()
        self.resizer = SemSegTestMapper.from_config(cfg)
        self.input_format = cfg.INPUT.FORMAT
