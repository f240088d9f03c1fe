from pathlib import Path

import pytest

from clouds.generation.prompts import (
    PROJECT_ROOT,
    PromptFileError,
    load_prompts,
    resolve_prompt_file,
)


def test_resolve_path_and_stem(tmp_path: Path) -> None:
    path = tmp_path / "city.txt"
    path.write_text("a street\n", encoding="utf-8")
    assert resolve_prompt_file(path) == path
    assert resolve_prompt_file(tmp_path / "city") == path
    assert resolve_prompt_file("city", root=tmp_path) == tmp_path / "city.txt"


def test_project_prompt_file_resolves_by_stem() -> None:
    path = resolve_prompt_file("prompts_clouds_project_written")
    assert path.resolve() == (PROJECT_ROOT / "prompts_clouds_project_written.txt").resolve()
    prompts = load_prompts(path)
    assert len(prompts) == 100
    assert len(set(prompts)) == 100


def test_missing_original_prompts_say_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a fetched ./prompt_llama70b.txt must not be found
    with pytest.raises(PromptFileError, match="prompt_llama70b") as info:
        resolve_prompt_file("prompt_llama70b", root=tmp_path)
    message = str(info.value)
    assert "python tools/fetch_original_prompts.py" in message
    assert "--input prompts_clouds_project_written" in message


def test_missing_prompt_file_names_the_places_looked_at(tmp_path: Path) -> None:
    with pytest.raises(PromptFileError, match="nowhere.*looked at") as info:
        resolve_prompt_file("nowhere", root=tmp_path)
    assert str(tmp_path / "nowhere.txt") in str(info.value)


def test_blank_lines_and_comments_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("# header\n\n  a wet road at dusk  \n\nsnow on parked cars\n", encoding="utf-8")
    assert load_prompts(path) == ["a wet road at dusk", "snow on parked cars"]


def test_empty_prompt_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("\n  \n# only a comment\n", encoding="utf-8")
    with pytest.raises(PromptFileError, match=r"empty\.txt holds no prompt"):
        load_prompts(path)
