"""Names the generation command line offers, without importing diffusers (fast ``--help``).

:mod:`clouds.generation.pipeline` maps each name to its dtype or scheduler class.
"""

from __future__ import annotations

import argparse

__all__ = [
    "DTYPE_NAMES",
    "ORIGINAL_PROMPTS_STEM",
    "PROJECT_PROMPTS_STEM",
    "SCHEDULER_NAMES",
    "SD2_MODEL_ID",
    "ValueDefaultsHelpFormatter",
]

DTYPE_NAMES = ("fp16", "bf16", "fp32")
SCHEDULER_NAMES = (
    "euler",
    "euler-ancestral",
    "heun",
    "lms",
    "dpm-solver",
    "dpm-solver++",
    "unipc",
    "ddim",
    "ddpm",
    "pndm",
)
SD2_MODEL_ID = "stabilityai/stable-diffusion-2"  # the model of the CLOUDS paper (768x768)
# The original CLOUDS prompt file (not shipped: tools/fetch_original_prompts.py downloads it) and
# this project's own prompts, both in the project root.
ORIGINAL_PROMPTS_STEM = "prompt_llama70b"
PROJECT_PROMPTS_STEM = "prompts_clouds_project_written"


class ValueDefaultsHelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to the help of options that take a value and have a default; flags
    (their default is "off"), required options and help that states its default get none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        no_default = action.required or action.default in (None, argparse.SUPPRESS)
        if no_default or action.nargs == 0 or "(default" in text:
            return text
        return f"{text} (default: %(default)s)"
