"""Checkpoints: the one place that writes ours and reads every weight-file format.

- :mod:`.state`: which entries a checkpoint holds (the trainable parts) and loading a state
  dict into a model, with keys and shapes checked first;
- :mod:`.formats`: the formats read (ours, Lightning's ``.ckpt``, the original CLOUDS'
  detectron2 ``.pth``, the original DGVFM's mmengine ``.pth``), telling them apart and reading a
  file into its format and state dict;
- :mod:`.mmengine`: the original DGVFM's files (pickled objects read only when trusted, keys
  mapped onto our VFM models);
- :mod:`.ours`: writing and loading our own checkpoints (atomic writes);
- :mod:`.model_weights`: initialising a model from MODEL.WEIGHTS, whatever its format.
"""

from clouds.modeling.checkpoint.formats import (
    CHECKPOINT_FORMATS,
    CheckpointFormat,
    PickledFile,
    detect_checkpoint_format,
    detect_pickled_format,
    read_checkpoint,
    read_checkpoint_payload,
)
from clouds.modeling.checkpoint.mmengine import (
    UntrustedCheckpointError,
    is_mmengine_checkpoint,
    load_mmengine_state,
    map_original_state_dict,
    read_mmengine_checkpoint,
)
from clouds.modeling.checkpoint.model_weights import (
    foundation_weights_context,
    load_model_weights,
    provides_foundation_weights,
)
from clouds.modeling.checkpoint.ours import load_checkpoint, save_checkpoint, write_checkpoint
from clouds.modeling.checkpoint.state import (
    CheckpointMismatchError,
    load_complete_state_dict,
    load_trainable_state_dict,
    trainable_state_dict,
    verify_state_dict,
)

__all__ = [
    "CHECKPOINT_FORMATS",
    "CheckpointFormat",
    "CheckpointMismatchError",
    "PickledFile",
    "UntrustedCheckpointError",
    "detect_checkpoint_format",
    "detect_pickled_format",
    "foundation_weights_context",
    "is_mmengine_checkpoint",
    "load_checkpoint",
    "load_complete_state_dict",
    "load_mmengine_state",
    "load_model_weights",
    "load_trainable_state_dict",
    "map_original_state_dict",
    "provides_foundation_weights",
    "read_checkpoint",
    "read_checkpoint_payload",
    "read_mmengine_checkpoint",
    "save_checkpoint",
    "trainable_state_dict",
    "verify_state_dict",
    "write_checkpoint",
]
