"""GTA5: palette label PNGs of Cityscapes label IDs -> train IDs.

Layout: ``gta/images/00001.png`` and ``gta/labels/00001.png``; the converted label is
written beside the raw one as ``gta/labels/00001_labelTrainIds.png``.
"""

from __future__ import annotations

from pathlib import Path

from clouds.data.conversion.runner import ConversionJob, LabelConverter
from clouds.data.conversion.spec import DatasetConversion, find_jobs_beside
from clouds.data.datasets.cityscapes_meta import label_id_to_train_id_lut

__all__ = ["GTA_CONVERSION", "find_gta_jobs"]


def find_gta_jobs(root: Path) -> list[ConversionJob]:
    """One job per ``labels/<stem>.png`` (outputs of earlier runs excluded)."""
    return find_jobs_beside(root / "labels", root / "images")


GTA_CONVERSION = DatasetConversion(
    name="gta",
    dirname="gta",
    required=("images", "labels"),
    find_jobs=find_gta_jobs,
    converter=LabelConverter(lut=label_id_to_train_id_lut()),
)
