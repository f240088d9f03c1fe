"""Export a configured model to ONNX: ``model.onnx`` (and ``model.refine.onnx`` for a VFM
segmentor with a refinement head), each with its :class:`ExportMetadata` stored inside.

The graphs go through ``torch.export`` (the dynamo-based ``torch.onnx.export``), whose symbolic
shapes keep the image size dynamic: H and W are any multiples of the model's size divisibility
of at least two of them (the driver pads other sizes), and a shape computation that would only
hold at the traced size stops the export instead of being frozen into the graph.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.data import datasets
from clouds.export.graphs import CloudsScoresGraph, VFMLightGraph, VFMRefineGraph
from clouds.export.metadata import METADATA_KEY, ExportMetadata
from clouds.modeling import build_model
from clouds.modeling.checkpoint import foundation_weights_context, load_model_weights
from clouds.modeling.meta_arch.clouds import CLOUDS
from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor

__all__ = ["DEFAULT_OPSET", "GraphSpec", "build_export_model", "export_onnx", "refine_path"]

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 18  # grid_sample needs 16+; the dynamo exporter writes 18+
MAX_SIDE = 8192  # largest image side the dynamic axes allow
# protobuf's 2 GB limit: larger models keep their weights in "<file>.data" next to the graph
_EXTERNAL_DATA_BYTES = 1_800_000_000


@dataclass
class GraphSpec:
    """One graph to export: the module, example inputs, and which input axes are multiples of
    the size divisibility (dynamic)."""

    module: nn.Module
    input_names: list[str]
    output_name: str
    examples: tuple[torch.Tensor, ...]
    suffix: str = ""  # "" for the main graph, ".refine" for the refinement head


def refine_path(output: Path) -> Path:
    """``model.onnx`` -> ``model.refine.onnx``."""
    return output.with_name(output.stem + ".refine" + output.suffix)


def build_export_model(cfg: CfgNode) -> nn.Module:
    """The model of ``cfg`` in eval mode with MODEL.WEIGHTS loaded and no fast paths (the
    graph must hold the plain PyTorch ops, e.g. the grid_sample deformable attention)."""
    with foundation_weights_context(cfg.MODEL.WEIGHTS):
        model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        load_model_weights(model, cfg.MODEL.WEIGHTS, trust_pickle=cfg.MODEL.WEIGHTS_TRUST_PICKLE)
    else:
        logger.warning("MODEL.WEIGHTS is empty: exporting an untrained model")
    return model.cpu().float().eval()


def _example_image(divisibility: int) -> torch.Tensor:
    """(1, 3, 3 d, 4 d) random 0-255 image: different H and W, neither at the minimum."""
    return torch.rand(1, 3, 3 * divisibility, 4 * divisibility) * 255


def _clouds_specs(model: CLOUDS, class_names: Sequence[str]) -> list[GraphSpec]:
    graph = CloudsScoresGraph(model, class_names)
    example = _example_image(model.size_divisibility)
    return [GraphSpec(graph, ["image"], "scores", (example,))]


def _vfm_specs(model: VFMSegmentor, class_names: Sequence[str]) -> list[GraphSpec]:
    if model.decode_head.has_own_losses or type(model) is not VFMSegmentor:
        raise ConfigError(
            f"{type(model).__name__} with {type(model.decode_head).__name__} has no ONNX export: "
            f"the exporter covers VFMSegmentor with a dense decode head (MODEL.VFM_HEAD.TYPE "
            f"'light', 'ms' or 'ms_masked'); mask-classification heads ('mask_former', "
            f"'mask2former') and the multi-scale / HRDA segmentors are not exported"
        )
    example = _example_image(model.size_divisibility)
    specs = [GraphSpec(VFMLightGraph(model), ["image"], "logits", (example,))]
    if model.aux_decoder is not None:
        num_classes = specs[0].module(example).shape[1]
        context = torch.randn(1, num_classes, *example.shape[-2:])
        specs.append(
            GraphSpec(
                VFMRefineGraph(model), ["image", "context"], "logits", (example, context), ".refine"
            )
        )
    return specs


_SPECS: dict[type, Callable[[Any, Sequence[str]], list[GraphSpec]]] = {
    CLOUDS: _clouds_specs,
    VFMSegmentor: _vfm_specs,
}


def _dynamic_shapes(spec: GraphSpec, divisibility: int) -> dict[str, dict[int, Any]]:
    """Image axes: ``divisibility`` x a block count in [2, MAX_SIDE / divisibility]; the
    refinement context: any size in [2, MAX_SIDE]."""
    blocks = MAX_SIDE // divisibility
    shapes: dict[str, dict[int, Any]] = {
        "image": {
            2: divisibility * torch.export.Dim("height_blocks", min=2, max=blocks),
            3: divisibility * torch.export.Dim("width_blocks", min=2, max=blocks),
        }
    }
    if "context" in spec.input_names:
        shapes["context"] = {
            2: torch.export.Dim("context_height", min=2, max=MAX_SIDE),
            3: torch.export.Dim("context_width", min=2, max=MAX_SIDE),
        }
    return shapes


def _export_graph(
    spec: GraphSpec, path: Path, metadata: ExportMetadata, divisibility: int, opset: int
) -> None:
    spec.module.eval()
    with torch.no_grad():
        program = torch.onnx.export(
            spec.module,
            spec.examples,
            input_names=spec.input_names,
            output_names=[spec.output_name],
            dynamic_shapes=_dynamic_shapes(spec, divisibility),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    fixed = [
        (value.name, tuple(value.shape))
        for value in program.model.graph.inputs
        if any(isinstance(dim, int) for dim in tuple(value.shape)[2:])
    ]
    if fixed:  # torch.onnx falls back to a traced size when a shape cannot stay symbolic
        raise RuntimeError(
            f"The export froze the image size of {fixed}: a shape computation in the model "
            f"holds only at the traced size (run with TORCH_LOGS=+dynamic to find it)"
        )
    program.model.metadata_props[METADATA_KEY] = metadata.to_json()
    size = sum(p.numel() * p.element_size() for p in spec.module.parameters())
    program.save(str(path), external_data=size > _EXTERNAL_DATA_BYTES)


def _class_names(cfg: CfgNode, model: nn.Module, dataset_name: str | None) -> list[str]:
    """Classes of ``dataset_name`` (default DATASETS.TEST[0]); a CLOUDS model must know them."""
    if dataset_name is None:
        if not cfg.DATASETS.TEST:
            raise ConfigError("DATASETS.TEST is empty: name the classes' dataset with --dataset")
        dataset_name = cfg.DATASETS.TEST[0]
    if isinstance(model, CLOUDS) and dataset_name in model.class_names:
        return list(model.class_names[dataset_name])
    return list(datasets.class_names(dataset_name))


def export_onnx(
    cfg: CfgNode,
    output: str | Path,
    *,
    dataset_name: str | None = None,
    opset: int = DEFAULT_OPSET,
    model: nn.Module | None = None,
) -> list[Path]:
    """Export the model of ``cfg`` (or ``model``, built from it) to ``output``.

    Args:
        cfg: full config (MODEL.*, INPUT.FORMAT, TEST.MODE for VFM segmentors).
        output: path of the main graph; a refinement head goes to ``<stem>.refine.onnx``.
        dataset_name: registered dataset whose class list the graph predicts (CLOUDS'
            text-classifier head embeds it; default DATASETS.TEST[0]).
        opset: ONNX opset (at least 18).
        model: an already built eval-mode model of ``cfg`` (default: build it, load weights).

    Returns:
        The files written, main graph first.

    Raises:
        ConfigError: an architecture or option the exporter does not support.
    """
    if opset < DEFAULT_OPSET:
        raise ConfigError(f"--opset {opset}: the exporter writes opset {DEFAULT_OPSET} or newer")
    output = Path(output)
    model = build_export_model(cfg) if model is None else model.eval()
    builder = next((b for cls, b in _SPECS.items() if isinstance(model, cls)), None)
    if builder is None:
        raise ConfigError(
            f"MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE!r} has no ONNX export "
            f"(supported: {', '.join(cls.__name__ for cls in _SPECS)})"
        )
    class_names = _class_names(cfg, model, dataset_name)
    specs = builder(model, class_names)
    num_classes = specs[0].module(*specs[0].examples).shape[1]
    if num_classes != len(class_names):
        raise ConfigError(
            f"The model predicts {num_classes} classes but the dataset's list has "
            f"{len(class_names)}: {class_names}"
        )
    divisibility = int(model.size_divisibility)
    has_refine = any(spec.suffix == ".refine" for spec in specs)
    inference = {}
    if isinstance(model, VFMSegmentor):
        inference = asdict(model.inference_settings)
    metadata = ExportMetadata(
        architecture=type(model).__name__,
        class_names=class_names,
        pixel_mean=model.pixel_mean.flatten().tolist(),
        size_divisibility=divisibility,
        output=specs[0].output_name,
        input_format=cfg.INPUT.FORMAT,
        inference=inference,
        refine_graph=refine_path(output).name if has_refine else "",
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in specs:
        path = refine_path(output) if spec.suffix else output
        _export_graph(spec, path, metadata, divisibility, opset)
        written.append(path)
    return written
