"""Avatar files: every shipped avatar validates, and mistakes get readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.config import BUILTIN_AVATARS, AvatarCatalog, AvatarConfigError, parse_avatar


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(body)
    return path


def test_shipped_avatars_are_valid_and_distinct():
    ids = BUILTIN_AVATARS.ids()
    assert {"lumina", "captain"} <= set(ids)
    lumina, captain = BUILTIN_AVATARS.load("lumina"), BUILTIN_AVATARS.load("captain")
    assert lumina.name != captain.name and lumina.persona != captain.persona
    assert lumina.voice != captain.voice, "the two avatars must sound different"
    assert "Lumina" in lumina.system_prompt()


def test_a_bad_value_names_the_field_and_the_file(tmp_path):
    path = write(tmp_path, "bob", 'name = "Bob"\npersona = "A pal."\n[voice]\nspeed = 7\n')
    with pytest.raises(AvatarConfigError) as err:
        parse_avatar(path)
    message = str(err.value)
    assert str(path) in message and "voice.speed" in message and "2" in message
    assert "Traceback" not in message


def test_missing_and_misspelled_fields_are_reported_together(tmp_path):
    path = write(tmp_path, "bob", 'name = "Bob"\n[llm]\ntemprature = 0.5\n')
    message = str(pytest.raises(AvatarConfigError, parse_avatar, path).value)
    assert "persona: is required" in message
    assert "llm.temprature: is not a setting avatars have (a typo?)" in message


def test_broken_toml_says_where(tmp_path):
    path = write(tmp_path, "bob", 'name = "Bob\n')
    message = str(pytest.raises(AvatarConfigError, parse_avatar, path).value)
    assert "not valid TOML" in message and "line 1" in message


def test_unknown_avatar_lists_the_available_ones():
    message = str(pytest.raises(AvatarConfigError, BUILTIN_AVATARS.load, "nobody").value)
    assert "lumina" in message and "captain" in message


def test_avatars_dir_adds_user_avatars(tmp_path, monkeypatch):
    from bots.settings import load_settings

    write(tmp_path, "bob", 'name = "Bob"\npersona = "A pal."\n')
    monkeypatch.setenv("AVATARS_DIR", str(tmp_path))
    catalog = AvatarCatalog(load_settings().user_avatars_dir)
    assert "bob" in catalog.ids() and "lumina" in catalog.ids()
    assert catalog.load("bob").name == "Bob"


def test_launch_command_reports_a_bad_avatar_without_a_traceback(capsys):
    from bots.__main__ import main

    assert main(["nobody"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no avatar called 'nobody'") and "Traceback" not in err
