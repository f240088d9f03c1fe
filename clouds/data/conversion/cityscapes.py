"""Cityscapes: ``*_gtFine_labelIds.png`` -> ``*_gtFine_labelTrainIds.png`` (same folder).

Layout: ``cityscapes/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png`` and
``cityscapes/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png``.
"""

from __future__ import annotations

from pathlib import Path

from clouds.data.conversion.runner import ConversionJob, LabelConverter
from clouds.data.conversion.spec import DatasetConversion
from clouds.data.datasets.cityscapes_meta import label_id_to_train_id_lut

__all__ = ["CITYSCAPES_CONVERSION", "find_cityscapes_jobs"]

_LABEL_IDS = "_gtFine_labelIds.png"
_TRAIN_IDS = "_gtFine_labelTrainIds.png"


def find_cityscapes_jobs(root: Path) -> list[ConversionJob]:
    """One job per ``gtFine/*/*/*_gtFine_labelIds.png``."""
    jobs = []
    for label in sorted((root / "gtFine").glob(f"*/*/*{_LABEL_IDS}")):
        base = label.name[: -len(_LABEL_IDS)]
        split, city = label.parent.parent.name, label.parent.name
        jobs.append(
            ConversionJob(
                label=label,
                output=label.with_name(base + _TRAIN_IDS),
                image=root / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png",
            )
        )
    return jobs


CITYSCAPES_CONVERSION = DatasetConversion(
    name="cityscapes",
    dirname="cityscapes",
    required=("leftImg8bit", "gtFine"),
    find_jobs=find_cityscapes_jobs,
    converter=LabelConverter(lut=label_id_to_train_id_lut()),
)
