"""Synthetic training images: Stable Diffusion generation from prompt files, and prompt writers.

Modules (heavy libraries are imported only by the modules that need them):

- ``plan``: the original's part semantics and file names, per-image seeds and prompts;
- ``prompts``: prompt files (path or project-root stem), one prompt per line;
- ``original_prompts``: ``tools/fetch_original_prompts.py`` (the paper's prompts, hash-checked);
- ``manifest``: per-part JSONL manifests and the image validity check used for resuming;
- ``pipeline``: ``StableDiffusionPipeline`` loading, schedulers by name, fast paths (diffusers);
- ``runner``: ``generate_images``, batched, resumable generation of one part;
- ``cli``: the command line of ``generate_txt_im.py``;
- ``prompt_templates`` / ``prompt_llm`` / ``make_prompts``: ``tools/make_prompts.py``.
"""

from clouds.generation.manifest import Manifest, is_valid_image, read_manifests
from clouds.generation.plan import GenerationItem, image_file_name, image_seed, plan_items
from clouds.generation.prompts import PromptFileError, load_prompts, resolve_prompt_file

__all__ = [
    "GenerationItem",
    "Manifest",
    "PromptFileError",
    "image_file_name",
    "image_seed",
    "is_valid_image",
    "load_prompts",
    "plan_items",
    "read_manifests",
    "resolve_prompt_file",
]
