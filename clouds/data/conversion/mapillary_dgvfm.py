"""Mapillary Vistas -> Cityscapes train IDs as the original DGVFM converts it
(``tools/convert_datasets/mapillary2cityscape.py``), for the ``dg_mapillary_*`` datasets.

The class table is derived from the release's ``config_<version>.json`` by class *readable*
names (lower case, spaces and hyphens removed): the 19 Cityscapes names match themselves; then,
in this order, traffic signs (any name holding "trafficsign", "front" or "back", so sign backs and
frames), on-rails vehicles -> train, cyclists and riders -> rider, poles and street lights ->
pole, curbs, curb cuts and pedestrian areas -> sidewalk, plain crosswalks, parking, bike and
service lanes and lane markings -> road; everything else (manholes included) -> 255.

Layout: raw labels ``<root>/{training,validation}/<version>/labels/<key>.png``; converted labels
``<save_dir>/{train,val}/label/<key>.png`` (8-bit grey, same file names); without ``--train_id`` the original writes Cityscapes label IDs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clouds.data.conversion.runner import (
    ConversionJob,
    ConversionResult,
    LabelConverter,
    run_conversion,
)
from clouds.data.conversion.spec import DatasetLayoutError
from clouds.data.datasets.cityscapes_meta import (
    CITYSCAPES_CLASSES,
    IGNORE_LABEL,
    train_id_to_label_id_lut,
)
from clouds.utils.io import is_temp_file

__all__ = [
    "dgvfm_mapillary_lut",
    "dgvfm_mapillary_train_id",
    "find_dgvfm_mapillary_jobs",
    "convert_mapillary_dgvfm",
]

_SPLITS = (("training", "train"), ("validation", "val"))
# (substrings, Cityscapes class) tried in order when a name is not a Cityscapes class itself
_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("trafficsign", "front", "back"), "traffic sign"),
    (("onrail",), "train"),
    (("cyclist", "rider"), "rider"),
    (("pole", "streetlight"), "pole"),
    (("curb", "pedestrianarea"), "sidewalk"),
    (("crosswalkplain", "parking", "bikelane", "servicelane", "lanemarking"), "road"),
)


def _squeeze(name: str) -> str:
    return name.lower().replace(" ", "").replace("-", "")


def dgvfm_mapillary_train_id(readable: str) -> int:
    """The Cityscapes train ID of a Mapillary class (by its readable name), or 255."""
    name = _squeeze(readable)
    exact = {_squeeze(c): i for i, c in enumerate(CITYSCAPES_CLASSES)}
    if name in exact:
        return exact[name]
    for substrings, target in _RULES:
        if any(s in name for s in substrings):
            return CITYSCAPES_CLASSES.index(target)
    return IGNORE_LABEL


def dgvfm_mapillary_lut(config_json: Path) -> np.ndarray:
    """(N,) uint8 table over the ``labels`` of ``config_<version>.json``.

    Raises:
        DatasetLayoutError: naming the file when it is missing or has no ``labels``.
    """
    if not config_json.is_file():
        raise DatasetLayoutError(
            f"{config_json} not found: it comes with the Mapillary Vistas release (it lists the "
            f"classes in label order)"
        )
    labels = json.loads(config_json.read_text()).get("labels")
    if not labels:
        raise DatasetLayoutError(f"{config_json} has no 'labels' list")
    return np.array([dgvfm_mapillary_train_id(label["readable"]) for label in labels], np.uint8)


def find_dgvfm_mapillary_jobs(root: Path, save_dir: Path, version: str) -> list[ConversionJob]:
    """One job per ``<root>/<split>/<version>/labels/<key>.png``."""
    jobs = []
    for folder, split in _SPLITS:
        label_dir = root / folder / version / "labels"
        if not label_dir.is_dir():
            raise DatasetLayoutError(
                f"No Mapillary labels folder {label_dir}: extract Mapillary Vistas {version} to "
                f"{root} (see GETTING_STARTED.md)"
            )
        jobs += [
            ConversionJob(
                label=label,
                output=save_dir / split / "label" / label.name,
                image=root / folder / "images" / f"{label.stem}.jpg",
            )
            for label in sorted(label_dir.glob("*.png"))
            if not is_temp_file(label)
        ]
    return jobs


def convert_mapillary_dgvfm(
    root: str | Path,
    save_dir: str | Path,
    *,
    version: str = "v1.2",
    train_id: bool = True,
    nproc: int = 1,
    force: bool = False,
) -> ConversionResult:
    """Convert every Mapillary label under ``root`` into ``save_dir`` (see the module doc), as
    train IDs, or as Cityscapes label IDs when not ``train_id`` (the original without
    ``--train_id``; ignored pixels stay 255).

    Raises:
        DatasetLayoutError: when ``root`` lacks the release's config file or label folders.
    """
    root, save_dir = Path(root), Path(save_dir)
    lut = dgvfm_mapillary_lut(root / f"config_{version}.json")
    if not train_id:
        lut = np.where(lut == IGNORE_LABEL, IGNORE_LABEL, train_id_to_label_id_lut()[lut])
    jobs = find_dgvfm_mapillary_jobs(root, save_dir, version)
    for folder in {job.output.parent for job in jobs} | {
        save_dir / s / "label" for _, s in _SPLITS
    }:
        folder.mkdir(parents=True, exist_ok=True)
    return run_conversion(
        jobs, LabelConverter(lut=lut), nproc=nproc, force=force, desc="mapillary labels"
    )
