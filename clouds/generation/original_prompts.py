"""Download the original CLOUDS prompt file, check its SHA-256 and install it in the project root.

The paper's generated set was made from ``prompt_llama70b.txt`` of the original repository
(yasserben/CLOUDS at commit bac4305, 100 prompts). This project cannot ship that text, so
``tools/fetch_original_prompts.py`` fetches it on the user's machine from the commit's raw URL,
refuses any file whose SHA-256 differs from the original's, and writes it atomically to
``<project root>/prompt_llama70b.txt``, where ``generate_txt_im.py --input prompt_llama70b``
reads it::

    python tools/fetch_original_prompts.py
    python tools/fetch_original_prompts.py --from-file ~/Downloads/prompt_llama70b.txt  # offline
"""

from __future__ import annotations

import argparse
import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from clouds.generation.options import (
    ORIGINAL_PROMPTS_STEM,
    PROJECT_PROMPTS_STEM,
    ValueDefaultsHelpFormatter,
)
from clouds.generation.prompts import PROJECT_ROOT
from clouds.utils.io import atomic_path

__all__ = [
    "ORIGINAL_COMMIT",
    "ORIGINAL_PROMPTS_SHA256",
    "ORIGINAL_PROMPTS_URL",
    "OriginalPromptsError",
    "build_parser",
    "fetch_original_prompts",
    "install_original_prompts",
    "main",
]

ORIGINAL_COMMIT = "bac4305c31c64f68bd4b40048378aa358bae67e7"
ORIGINAL_PROMPTS_URL = (
    f"https://raw.githubusercontent.com/yasserben/CLOUDS/{ORIGINAL_COMMIT}/"
    f"{ORIGINAL_PROMPTS_STEM}.txt"
)
ORIGINAL_PROMPTS_SHA256 = "5e7faacc704376337d935edad94eb03a41d5d4d2d87b9445c246c8aef19f6a41"
DEFAULT_OUTPUT = PROJECT_ROOT / f"{ORIGINAL_PROMPTS_STEM}.txt"
# The original file has 5,831 bytes; a larger answer is not it (and is not read whole).
_MAX_BYTES = 1 << 20

Opener = Callable[..., IO[bytes]]


class OriginalPromptsError(RuntimeError):
    """The original prompt file could not be obtained, or is not the original's."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def install_original_prompts(
    data: bytes, output: Path, *, source: str, sha256: str = ORIGINAL_PROMPTS_SHA256
) -> Path:
    """Write ``data`` atomically to ``output`` if its SHA-256 is ``sha256``.

    Raises:
        OriginalPromptsError: naming ``source`` and both hashes on a mismatch (nothing written).
    """
    actual = _sha256(data)
    if actual != sha256:
        raise OriginalPromptsError(
            f"{source} is not the original CLOUDS prompt file: its SHA-256 is {actual}, expected "
            f"{sha256} ({ORIGINAL_PROMPTS_STEM}.txt at commit {ORIGINAL_COMMIT}). Nothing was "
            f"written to {output}."
        )
    with atomic_path(output) as tmp:
        Path(tmp).write_bytes(data)
    return output


def fetch_original_prompts(
    output: Path = DEFAULT_OUTPUT,
    *,
    url: str = ORIGINAL_PROMPTS_URL,
    sha256: str = ORIGINAL_PROMPTS_SHA256,
    timeout: float = 30.0,
    opener: Opener = urllib.request.urlopen,
) -> Path:
    """Download ``url``, check its SHA-256 and write it atomically to ``output``.

    Raises:
        OriginalPromptsError: when the download fails (no network, HTTP error, too large) or
            the hash differs; the message says how to install the file by hand.
    """
    by_hand = (
        f"Download {ORIGINAL_PROMPTS_URL} on a machine with network access and install it with "
        f"`python tools/fetch_original_prompts.py --from-file <downloaded file>`, or generate "
        f"from this project's own prompts with `--input {PROJECT_PROMPTS_STEM}`."
    )
    try:
        with opener(url, timeout=timeout) as response:
            data = response.read(_MAX_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise OriginalPromptsError(f"Cannot download {url}: {reason}. {by_hand}") from e
    if len(data) > _MAX_BYTES:
        raise OriginalPromptsError(
            f"{url} answered more than {_MAX_BYTES} bytes: not the original prompt file. {by_hand}"
        )
    return install_original_prompts(data, output, source=url, sha256=sha256)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fetch_original_prompts.py",
        description="Download the original CLOUDS prompt file (prompt_llama70b.txt, the prompts "
        "of the paper's generated set) from the original repository at commit bac4305, check "
        "its SHA-256 and install it where generate_txt_im.py --input prompt_llama70b reads it.",
        formatter_class=ValueDefaultsHelpFormatter,
    )
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the file")
    p.add_argument("--url", default=ORIGINAL_PROMPTS_URL, help="where to download it from")
    p.add_argument(
        "--from-file",
        type=Path,
        default=None,
        help="install a copy downloaded by hand instead of downloading (hash still checked)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="download timeout in seconds")
    return p


def main(argv: Sequence[str] | None = None, *, opener: Opener = urllib.request.urlopen) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    output: Path = args.output
    if output.is_file() and _sha256(output.read_bytes()) == ORIGINAL_PROMPTS_SHA256:
        print(f"{output} already holds the original CLOUDS prompts (SHA-256 checked)")
        return 0
    try:
        if args.from_file is not None:
            try:
                data = args.from_file.read_bytes()
            except OSError as e:
                raise OriginalPromptsError(f"Cannot read --from-file {args.from_file}: {e}") from e
            install_original_prompts(data, output, source=str(args.from_file))
        else:
            fetch_original_prompts(output, url=args.url, timeout=args.timeout, opener=opener)
    except OriginalPromptsError as e:
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    print(
        f"Installed the original CLOUDS prompts (SHA-256 {ORIGINAL_PROMPTS_SHA256}) at {output}; "
        f"generate with `python generate_txt_im.py --input {ORIGINAL_PROMPTS_STEM} ...`"
    )
    return 0
