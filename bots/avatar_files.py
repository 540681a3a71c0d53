"""Writing avatar files: what the browser's avatar editor saves is an ordinary avatar TOML.

The files land in the catalog's user folder (:class:`bots.config.AvatarCatalog`), which is
searched before the built-ins, so ``python -m bots <id>`` launches an avatar made in the
browser exactly like a hand-written one.

Files are written with ``tomlkit`` rather than a plain TOML writer because people also edit
these files by hand: changing an avatar in the browser keeps the file's comments, key order
and layout, and touches only the values that changed. A setting left at its default is not
added to a file that did not have it, so files stay short. Every write is validated first and
then made atomic (temporary file + rename): a half-written avatar never exists.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomlkit

from bots.config import (
    AvatarCatalog,
    AvatarConfig,
    AvatarConfigError,
    FaceConfig,
    LLMConfig,
    TurnTakingConfig,
    VoiceConfig,
    validate_avatar,
)

# What a setting is when a file does not mention it (sections as dicts).
_DEFAULTS: dict[str, Any] = {
    "blurb": "",
    "greeting": "",
    "greeting_returning": AvatarConfig.model_fields["greeting_returning"].default,
    "style_rules": [],
    "voice": VoiceConfig().model_dump(),
    "llm": LLMConfig().model_dump(),
    "turn_taking": TurnTakingConfig().model_dump(),
    "face": FaceConfig().model_dump(),
}


def avatar_toml(avatar: AvatarConfig, previous: str = "") -> str:
    """The TOML text for ``avatar``, as an edit of ``previous`` (an existing file's text)."""
    doc = tomlkit.parse(previous) if previous else tomlkit.document()
    if not previous:
        doc.add(tomlkit.comment(f"{avatar.name}: made in the avatar editor."))
    data = avatar.model_dump(exclude={"id"})
    doc.pop("id", None)  # the file name is the id
    _merge(doc, data, _DEFAULTS)
    return tomlkit.dumps(doc)


def _merge(table: Any, values: dict[str, Any], defaults: dict[str, Any]) -> None:
    for key, value in values.items():
        default = defaults.get(key)
        if isinstance(value, dict):
            if key not in table:
                if value == default:
                    continue
                table[key] = tomlkit.table()
            _merge(table[key], value, default or {})
        elif table.get(key) != value and (key in table or key not in defaults or value != default):
            table[key] = _item(value)  # unchanged values keep their original spelling


def _item(value: Any) -> Any:
    if isinstance(value, str) and "\n" in value:
        # Prose reads best as a multi-line string, as the hand-written avatars have it.
        return tomlkit.string(value, multiline=True)
    if isinstance(value, list) and value:
        array = tomlkit.array()
        array.extend(value)
        array.multiline(True)
        return array
    return value


def _user_dir(catalog: AvatarCatalog) -> Path:
    if catalog.user_dir is None:
        raise AvatarConfigError("this server has no folder for people's own avatars")
    return catalog.user_dir


def save_avatar(catalog: AvatarCatalog, avatar: AvatarConfig) -> Path:
    """Write ``avatar`` to the catalog's user avatars folder and return the file.

    An avatar already in that folder is edited in place (keeping its comments); a built-in
    of the same id is shadowed, never changed.

    Raises:
        AvatarConfigError: if the written file does not read back as ``avatar``.
    """
    folder = _user_dir(catalog)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{avatar.id}.toml"
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    text = avatar_toml(avatar, previous)
    data = {**tomllib.loads(text), "id": avatar.id}
    if validate_avatar(data, str(path)) != avatar:
        # Should never happen; if it does, say so rather than launch a different avatar.
        raise AvatarConfigError(f"{path}: the file would not read back as written")
    # ".tmp", never ".toml": a crash between write and rename leaves no file the catalog
    # would take for an avatar.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{avatar.id}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def delete_avatar_file(catalog: AvatarCatalog, avatar_id: str) -> bool:
    """Delete a user avatar's file and its VRM model; whether there was one.

    The model is ``<id>.vrm`` beside the file (``web.vrm_api``). Built-ins are never deleted.
    """
    path = _user_dir(catalog) / f"{avatar_id}.toml"
    if catalog.path(avatar_id) != path:
        return False
    path.unlink()
    path.with_suffix(".vrm").unlink(missing_ok=True)
    return True
