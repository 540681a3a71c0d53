"""Checking an uploaded VRM model before it is stored: is it one, and can its face move?

A VRM is a glTF binary (``.glb``): a 12-byte header (``glTF``, version 2, total length), a
JSON chunk, and usually a BIN chunk. VRM 1.0 puts its settings in the ``VRMC_vrm``
extension, VRM 0.x in ``VRM``. The talk page moves the mouth with the five vowel
expressions and closes the eyes with ``blink``, so a model without them is refused; the
emotions (happy, sad, ...) are optional and reported.

Only the header and the JSON are read; meshes and textures are left to three-vrm in the
browser. Names are VRM 1.0's throughout: a 0.x model's presets are mapped as three-vrm maps
them (``a`` -> ``aa``, ``joy`` -> ``happy``, ``sorrow`` -> ``sad``, ``fun`` -> ``relaxed``),
and a custom expression counts by its lower-case name (a 0.x "Surprised" group is
``surprised``).
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bots.config import AvatarCatalog

MB = 1024 * 1024
MAX_VRM_BYTES = 30 * MB
"""The largest model accepted. VRoid exports are 5-20 MB; this one file is sent to every
person who opens a call with the avatar."""

MOUTH = ("aa", "ih", "ou", "ee", "oh")
REQUIRED = (*MOUTH, "blink")
EMOTIONS = ("happy", "sad", "angry", "surprised", "relaxed", "neutral")

GLB_MAGIC = b"glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942

V0_PRESETS = {
    "a": "aa",
    "i": "ih",
    "u": "ou",
    "e": "ee",
    "o": "oh",
    "blink": "blink",
    "joy": "happy",
    "angry": "angry",
    "sorrow": "sad",
    "fun": "relaxed",
    "neutral": "neutral",
    "lookup": "lookUp",
    "lookdown": "lookDown",
    "lookleft": "lookLeft",
    "lookright": "lookRight",
    "blink_l": "blinkLeft",
    "blink_r": "blinkRight",
}
"""VRM 0.x blendShapeMaster presets as VRM 1.0 names (three-vrm's ``v0v1PresetNameMap``)."""


class VrmError(Exception):
    """Why a file is not a model the talk page can use, and the HTTP status that says so."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class VrmInfo:
    """What a valid model is."""

    version: str
    """``"1.0"`` (``VRMC_vrm``) or ``"0.x"`` (``VRM``)."""
    expressions: list[str] = field(default_factory=list)
    """Every expression it has, VRM 1.0 names for the presets, sorted."""
    title: str | None = None
    author: str | None = None
    size: int = 0

    @property
    def emotions(self) -> list[str]:
        """The emotions it can show (of happy sad angry surprised relaxed neutral)."""
        return [e for e in EMOTIONS if e in self.expressions]


def megabytes(size: int) -> str:
    """``size`` in MB for a person: "41 MB", "30.2 MB" (rounded up: over 30 is never "30")."""
    text = f"{math.ceil(size * 10 / MB) / 10:.1f}".removesuffix(".0")
    return f"{text} MB"


def too_large(size: int) -> str:
    """The message for a model over the limit."""
    return (
        f"The model is {megabytes(size)}; the limit is {megabytes(MAX_VRM_BYTES)}. "
        "Reduce its texture sizes (e.g. in VRoid's export settings) and try again."
    )


def check_vrm(data: bytes) -> VrmInfo:
    """Check ``data`` is a VRM model the talk page can animate, and say what it is.

    Raises:
        VrmError: 415 not a glTF binary; 413 over ``MAX_VRM_BYTES``; 422 a broken file,
            not a VRM, or without the mouth and blink expressions (named).
    """
    if len(data) < 12 or data[:4] != GLB_MAGIC:
        raise VrmError(
            "This is not a glTF binary (.vrm/.glb) file. Export the model as VRM "
            "(e.g. from VRoid Studio) and upload the .vrm file.",
            415,
        )
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2:
        raise VrmError(
            f"This is a glTF {version} binary; only glTF 2 (every VRM) can be used.", 415
        )
    if len(data) > MAX_VRM_BYTES:
        raise VrmError(too_large(len(data)), 413)
    gltf = _json_chunk(data, length)
    return _describe(gltf, len(data))


def _broken(why: str) -> VrmError:
    return VrmError(f"The file is damaged or incomplete: {why}. Export it again.", 422)


def _json_chunk(data: bytes, length: int) -> dict[str, Any]:
    if length != len(data):
        raise _broken(f"its header says {length} bytes but it has {len(data)}")
    offset = 12
    gltf: dict[str, Any] | None = None
    while offset < length:
        if offset + 8 > length:
            raise _broken(f"a chunk header at byte {offset} is cut off")
        size, kind = struct.unpack_from("<II", data, offset)
        start = offset + 8
        if start + size > length:
            raise _broken(f"a chunk at byte {offset} says {size} bytes but the file ends first")
        if gltf is None:
            if kind != CHUNK_JSON:
                raise _broken("the first chunk is not the JSON one")
            try:
                parsed = json.loads(data[start : start + size].decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise _broken(f"its JSON does not parse ({e})") from None
            if not isinstance(parsed, dict):
                raise _broken("its JSON is not an object")
            gltf = parsed
        offset = start + size
    if gltf is None:
        raise _broken("it has no JSON chunk")
    return gltf


def _describe(gltf: dict[str, Any], size: int) -> VrmInfo:
    extensions = gltf.get("extensions")
    extensions = extensions if isinstance(extensions, dict) else {}
    v1, v0 = extensions.get("VRMC_vrm"), extensions.get("VRM")
    if isinstance(v1, dict):
        version, names = "1.0", _v1_expressions(v1)
        meta = _table(v1, "meta")
        title = meta.get("name")
        authors = meta.get("authors")
        author = ", ".join(map(str, authors)) if isinstance(authors, list) and authors else None
    elif isinstance(v0, dict):
        version, names = "0.x", _v0_expressions(v0)
        meta = _table(v0, "meta")
        title, author = meta.get("title"), meta.get("author")
    else:
        raise VrmError(
            "This glTF model is not a VRM: no VRMC_vrm or VRM extension. Export it as VRM "
            "(e.g. with VRoid Studio, or UniVRM / the Blender VRM add-on).",
            422,
        )
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise VrmError(
            f"This VRM {version} model lacks the expressions the talk page moves its face "
            f"with: {', '.join(missing)} (needed: {', '.join(REQUIRED)}). Add them as "
            "expressions (blend shape presets in VRM 0.x) and export it again.",
            422,
        )
    return VrmInfo(
        version=version,
        expressions=sorted(names),
        title=title if isinstance(title, str) and title else None,
        author=author if isinstance(author, str) and author else None,
        size=size,
    )


def _table(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _v1_expressions(ext: dict[str, Any]) -> set[str]:
    expressions = ext.get("expressions")
    if not isinstance(expressions, dict):
        return set()
    names: set[str] = set()
    for group in ("preset", "custom"):
        table = expressions.get(group)
        if isinstance(table, dict):
            names |= {
                str(k) if group == "preset" else str(k).lower() for k, v in table.items() if v
            }
    return names


def _v0_expressions(ext: dict[str, Any]) -> set[str]:
    master = ext.get("blendShapeMaster")
    groups = master.get("blendShapeGroups") if isinstance(master, dict) else None
    names: set[str] = set()
    for g in groups if isinstance(groups, list) else []:
        if not isinstance(g, dict):
            continue
        preset = str(g.get("presetName") or "").lower()
        if preset in V0_PRESETS:
            names.add(V0_PRESETS[preset])
        elif isinstance(g.get("name"), str) and g["name"]:
            names.add(g["name"].lower())  # "unknown": a custom expression, by its name
    return names


def vrm_file(catalog: AvatarCatalog, avatar_id: str) -> Path | None:
    """Where an avatar's model is (or would be): ``<id>.vrm`` beside its TOML file.

    None when there is no avatar file (nothing to put a model beside).
    """
    toml = catalog.path(avatar_id)
    return toml.with_suffix(".vrm") if toml is not None else None


def has_vrm(catalog: AvatarCatalog, avatar_id: str) -> bool:
    """Whether the avatar has a model file."""
    path = vrm_file(catalog, avatar_id)
    return path is not None and path.is_file()


def save_vrm(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary ``.tmp`` file, then rename).

    A half-written model never exists, and one being downloaded while a new one is
    uploaded is the old one whole.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
