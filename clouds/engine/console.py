"""Third-party messages a user of a run cannot act on, kept off the console and ``log.txt``.

Each entry says why it is noise here; everything else from the libraries still shows.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["ThirdPartyNoiseFilter", "ignore_third_party_warnings"]

# Python warnings (matched from the start of the message), with the reason they are noise.
IGNORED_WARNINGS: tuple[tuple[str, str], ...] = (
    (
        r"Checkpoint directory .* exists and is not empty",
        "OUTPUT_DIR holds config.yaml and log.txt from the start; mixing runs is refused by "
        "clouds.engine.run_lock instead",
    ),
    (
        r"Found \d+ module\(s\) in eval mode at the start of training",
        "frozen foundation models stay in eval mode by design",
    ),
    (
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        "raised inside Lightning by newer torch versions",
    ),
)
# Log messages of Lightning (substrings), with the reason they are noise.
IGNORED_LOG_MESSAGES: tuple[tuple[str, str], ...] = (
    ("💡 Tip:", "advertisement for a logging service"),
    ("was configured so 100% of the batches will be used", "restates the default"),
)


def ignore_third_party_warnings() -> None:
    """Install the :data:`IGNORED_WARNINGS` filters (idempotent)."""
    for pattern, _why in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


class ThirdPartyNoiseFilter(logging.Filter):
    """Drops log records whose message holds one of :data:`IGNORED_LOG_MESSAGES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text, _why in IGNORED_LOG_MESSAGES)
