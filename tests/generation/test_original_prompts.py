"""tools/fetch_original_prompts.py without network: a loopback HTTP server stands for GitHub.

The original prompt text cannot be in this project, so the served files are stand-ins: a
download is installed only when its SHA-256 is the expected one (the original's by default).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from clouds.generation.original_prompts import (
    DEFAULT_OUTPUT,
    ORIGINAL_COMMIT,
    ORIGINAL_PROMPTS_SHA256,
    ORIGINAL_PROMPTS_URL,
    OriginalPromptsError,
    fetch_original_prompts,
    main,
)
from clouds.generation.prompts import PROJECT_ROOT

REPO = Path(__file__).resolve().parents[2]
STAND_IN = b"".join(f"stand-in prompt {i}\n".encode() for i in range(100))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """Base URL of a loopback HTTP server serving ``tmp_path/www``."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "prompt_llama70b.txt").write_bytes(STAND_IN)
    handler = functools.partial(_QuietHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/prompt_llama70b.txt"


def test_points_at_the_original_file_and_installs_in_the_project_root() -> None:
    assert ORIGINAL_PROMPTS_URL == (
        "https://raw.githubusercontent.com/yasserben/CLOUDS/"
        "bac4305c31c64f68bd4b40048378aa358bae67e7/prompt_llama70b.txt"
    )
    assert ORIGINAL_COMMIT.startswith("bac4305")
    assert ORIGINAL_PROMPTS_SHA256 == (
        "5e7faacc704376337d935edad94eb03a41d5d4d2d87b9445c246c8aef19f6a41"
    )
    assert DEFAULT_OUTPUT == PROJECT_ROOT / "prompt_llama70b.txt"


def test_download_with_the_expected_hash_is_installed_atomically(
    served: str, tmp_path: Path
) -> None:
    output = tmp_path / "root" / "prompt_llama70b.txt"
    sha = hashlib.sha256(STAND_IN).hexdigest()
    assert fetch_original_prompts(output, url=f"{served}/prompt_llama70b.txt", sha256=sha) == output
    assert output.read_bytes() == STAND_IN
    assert [p.name for p in output.parent.iterdir()] == ["prompt_llama70b.txt"]


def test_hash_mismatch_is_refused_and_nothing_written(served: str, tmp_path: Path) -> None:
    output = tmp_path / "prompt_llama70b.txt"
    with pytest.raises(OriginalPromptsError, match="not the original CLOUDS prompt file") as info:
        fetch_original_prompts(output, url=f"{served}/prompt_llama70b.txt")
    assert hashlib.sha256(STAND_IN).hexdigest() in str(info.value)
    assert ORIGINAL_PROMPTS_SHA256 in str(info.value)
    assert not output.exists() and not list(tmp_path.glob(".*tmp*"))


def test_cli_refuses_a_wrong_file_and_no_network(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "prompt_llama70b.txt"
    cases = [
        (["--url", f"{served}/prompt_llama70b.txt"], "SHA-256 is"),
        (["--url", f"{served}/absent.txt"], "Cannot download"),
        (["--url", _closed_port_url(), "--timeout", "5"], "Cannot download"),
        (["--from-file", str(tmp_path / "www" / "prompt_llama70b.txt")], "SHA-256 is"),
        (["--from-file", str(tmp_path / "nowhere.txt")], "Cannot read --from-file"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as info:
            main([*argv, "--output", str(output)])
        assert info.value.code == 1
        err = capsys.readouterr().err
        assert message in err
        if "Cannot download" in message:
            assert "--from-file" in err and "--input prompts_clouds_project_written" in err
        assert not output.exists()


def test_cli_keeps_an_installed_original_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "prompt_llama70b.txt"
    output.write_bytes(STAND_IN)
    monkeypatch.setattr(
        "clouds.generation.original_prompts.ORIGINAL_PROMPTS_SHA256",
        hashlib.sha256(STAND_IN).hexdigest(),
    )

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("downloaded although the file is installed")

    assert main(["--output", str(output)], opener=no_network) == 0
    assert "already holds" in capsys.readouterr().out


def test_tool_script_runs(served: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "fetch_original_prompts.py"),
            "--url",
            f"{served}/prompt_llama70b.txt",
            "--output",
            str(tmp_path / "p.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "is not the original CLOUDS prompt file" in result.stderr
