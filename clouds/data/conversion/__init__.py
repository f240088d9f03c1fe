"""Raw dataset labels -> 19-class Cityscapes train-ID PNGs (255 = ignore)."""

from clouds.data.conversion.cityscapes import CITYSCAPES_CONVERSION
from clouds.data.conversion.gta import GTA_CONVERSION
from clouds.data.conversion.mapillary import MAPILLARY_CONVERSION
from clouds.data.conversion.runner import ConversionJob, ConversionResult, LabelConverter
from clouds.data.conversion.spec import TRAIN_ID_SUFFIX, DatasetConversion, DatasetLayoutError
from clouds.data.conversion.synthia import SYNTHIA_CONVERSION

__all__ = [
    "CITYSCAPES_CONVERSION",
    "CONVERSIONS",
    "GTA_CONVERSION",
    "MAPILLARY_CONVERSION",
    "SYNTHIA_CONVERSION",
    "TRAIN_ID_SUFFIX",
    "ConversionJob",
    "ConversionResult",
    "DatasetConversion",
    "DatasetLayoutError",
    "LabelConverter",
]

# Every dataset whose raw labels need converting, by tool name.
CONVERSIONS: dict[str, DatasetConversion] = {
    "gta": GTA_CONVERSION,
    "cityscapes": CITYSCAPES_CONVERSION,
    "synthia": SYNTHIA_CONVERSION,
    "mapillary": MAPILLARY_CONVERSION,
}
