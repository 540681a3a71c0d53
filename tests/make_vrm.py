"""Make a small, valid VRM model from nothing: a test avatar with a face that moves.

A VRM is a glTF binary (``.glb``) with a VRM extension: ``VRMC_vrm`` (VRM 1.0) or ``VRM``
(VRM 0.x). What this writes is deliberately tiny (~40 KB) and has no textures:

* a humanoid skeleton of plain nodes with every bone three-vrm requires (hips, spine, chest,
  neck, head, both arms to the hands, both legs to the feet);
* a head (a low-poly sphere) with eyes and a mouth, one mesh of three primitives, whose
  morph targets open and shape the mouth, close the eyes and make faces;
* a box of a torso, so the head sits on something;
* expressions bound to the morph targets: ``aa ih ou ee oh blink happy sad angry surprised
  relaxed`` (VRM 1.0 presets), or in VRM 0.x the ``blendShapeMaster`` presets ``a i u e o
  blink joy sorrow angry fun`` and a custom ``Surprised`` group (0.x has no such preset).

Usage::

    python tests/make_vrm.py out.vrm            # VRM 1.0
    python tests/make_vrm.py --v0 out.vrm       # VRM 0.x

or ``make_vrm()`` / ``make_vrm0()`` for the bytes. ``make_glb(gltf_json, bin)`` packs any
glTF JSON and binary buffer, for tests that need a broken file.
"""

from __future__ import annotations

import argparse
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

GLB_MAGIC = b"glTF"
CHUNK_JSON = 0x4E4F534A  # "JSON"
CHUNK_BIN = 0x004E4942  # "BIN\0"

# Morph targets, in order; every primitive of the face has all of them.
MORPHS = ("aa", "ih", "ou", "ee", "oh", "blink", "happy", "sad", "angry", "surprised", "relaxed")
# VRM 0.x: the blendShapeMaster group for each morph (presetName, group name).
V0_GROUPS = {
    "aa": ("a", "A"),
    "ih": ("i", "I"),
    "ou": ("u", "U"),
    "ee": ("e", "E"),
    "oh": ("o", "O"),
    "blink": ("blink", "Blink"),
    "happy": ("joy", "Joy"),
    "sad": ("sorrow", "Sorrow"),
    "angry": ("angry", "Angry"),
    "relaxed": ("fun", "Fun"),
    "surprised": ("unknown", "Surprised"),
}

# (bone, parent, translation from the parent in metres); the model faces +Z, its left is +X.
BONES: tuple[tuple[str, str | None, tuple[float, float, float]], ...] = (
    ("hips", None, (0.0, 0.9, 0.0)),
    ("spine", "hips", (0.0, 0.1, 0.0)),
    ("chest", "spine", (0.0, 0.15, 0.0)),
    ("neck", "chest", (0.0, 0.2, 0.0)),
    ("head", "neck", (0.0, 0.08, 0.0)),
    ("leftUpperLeg", "hips", (0.09, -0.05, 0.0)),
    ("leftLowerLeg", "leftUpperLeg", (0.0, -0.4, 0.0)),
    ("leftFoot", "leftLowerLeg", (0.0, -0.4, 0.0)),
    ("rightUpperLeg", "hips", (-0.09, -0.05, 0.0)),
    ("rightLowerLeg", "rightUpperLeg", (0.0, -0.4, 0.0)),
    ("rightFoot", "rightLowerLeg", (0.0, -0.4, 0.0)),
    ("leftUpperArm", "chest", (0.17, 0.16, 0.0)),
    ("leftLowerArm", "leftUpperArm", (0.25, 0.0, 0.0)),
    ("leftHand", "leftLowerArm", (0.23, 0.0, 0.0)),
    ("rightUpperArm", "chest", (-0.17, 0.16, 0.0)),
    ("rightLowerArm", "rightUpperArm", (-0.25, 0.0, 0.0)),
    ("rightHand", "rightLowerArm", (-0.23, 0.0, 0.0)),
)
HEAD_CENTRE = (0.0, 0.11, 0.0)  # the face mesh's node, from the head bone


def png(pixels: np.ndarray) -> bytes:
    """An RGB PNG of ``pixels`` (h x w x 3 uint8), with only the standard library."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\0" + pixels[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def skin_texture() -> bytes:
    """The head's texture: skin with rosy cheeks (16 x 16); a real VRM's are images too."""
    u, v = np.meshgrid(np.linspace(0, 1, 16), np.linspace(0, 1, 16))
    # Cheeks: at the front (u near 0 or 1, where the sphere's seam is), a little below the middle.
    front = np.minimum(u, 1 - u)
    rosy = np.clip(1 - (np.hypot((front - 0.09) / 0.06, (v - 0.58) / 0.07)), 0, 1)
    base = np.array([250, 204, 172], np.float32)
    cheek = np.array([240, 150, 140], np.float32)
    img = base * (1 - rosy[..., None]) + cheek * rosy[..., None]
    return png(img.astype(np.uint8))


def sphere(rings: int = 10, segments: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A unit UV sphere: (vertices n x 3, triangle indices m x 3)."""
    verts = []
    for r in range(rings + 1):
        phi = np.pi * r / rings
        for s in range(segments + 1):
            theta = 2 * np.pi * s / segments
            verts.append((np.sin(phi) * np.sin(theta), np.cos(phi), np.sin(phi) * np.cos(theta)))
    tris = []
    for r in range(rings):
        for s in range(segments):
            a = r * (segments + 1) + s
            b = a + segments + 1
            if r:
                tris.append((a, b, a + 1))
            if r < rings - 1:
                tris.append((a + 1, b, b + 1))
    return np.array(verts, np.float32), np.array(tris, np.uint16)


def sphere_uv(rings: int = 10, segments: int = 16) -> np.ndarray:
    """The texture coordinates of ``sphere``'s vertices."""
    return np.array(
        [(s / segments, r / rings) for r in range(rings + 1) for s in range(segments + 1)],
        np.float32,
    )


def box(size: tuple[float, float, float], centre: tuple[float, float, float]):
    """A box: (positions, normals, indices), flat-shaded (4 vertices a side)."""
    half = np.array(size, np.float32) / 2
    pos, nrm, idx = [], [], []
    for axis in range(3):
        for sign in (1.0, -1.0):
            n = np.zeros(3, np.float32)
            n[axis] = sign
            u, v = [a for a in range(3) if a != axis]
            corners = []
            for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                c = n * half
                c[u] = du * half[u]
                c[v] = dv * half[v]
                corners.append(c + np.array(centre, np.float32))
            base = len(pos)
            pos.extend(corners)
            nrm.extend([n] * 4)
            # Counter-clockwise seen from outside.
            if np.dot(np.cross(corners[1] - corners[0], corners[2] - corners[0]), n) > 0:
                idx.extend([(base, base + 1, base + 2), (base, base + 2, base + 3)])
            else:
                idx.extend([(base, base + 2, base + 1), (base, base + 3, base + 2)])
    return np.array(pos, np.float32), np.array(nrm, np.float32), np.array(idx, np.uint16)


def _face_parts() -> list[dict[str, Any]]:
    """The head's three primitives: positions, normals, indices, colour, morph deltas."""
    unit, tris = sphere()
    parts = []

    # The head: a slightly tall sphere. Its morph targets move nothing (all primitives of a
    # mesh must have the same targets).
    head = unit * np.array([0.1, 0.115, 0.1], np.float32)
    parts.append(
        {
            "name": "skin",
            "positions": head,
            "normals": unit,
            "indices": tris,
            "color": [1.0, 1.0, 1.0, 1.0],
            "texture": True,
            "uv": sphere_uv(),
            "morphs": {m: np.zeros_like(head) for m in MORPHS},
        }
    )

    # The mouth: a flat ellipsoid on the front of the face; shapes scale it.
    small, small_tris = sphere(6, 12)
    mouth_half = np.array([0.028, 0.006, 0.008], np.float32)
    mouth_at = np.array([0.0, -0.045, 0.088], np.float32)
    mouth = small * mouth_half + mouth_at

    def scaled(sx: float, sy: float, sz: float = 1.0, smile: float = 0.0) -> np.ndarray:
        local = small * mouth_half
        moved = local * np.array([sx, sy, sz], np.float32)
        # Corners up (smile > 0) or down: y moves with the square of x.
        moved[:, 1] += smile * (local[:, 0] / mouth_half[0]) ** 2 * 0.012
        return moved - local

    parts.append(
        {
            "name": "mouth",
            "positions": mouth,
            "normals": small,
            "indices": small_tris,
            "color": [0.55, 0.12, 0.15, 1.0],
            "morphs": {
                "aa": scaled(1.1, 4.5),
                "ih": scaled(1.3, 2.0),
                "ou": scaled(0.55, 2.5, 1.6),
                "ee": scaled(1.45, 1.6),
                "oh": scaled(0.8, 3.5, 1.3),
                "blink": scaled(1, 1),
                "happy": scaled(1.2, 1.2, smile=1.0),
                "sad": scaled(0.9, 1.0, smile=-0.8),
                "angry": scaled(0.9, 0.8, smile=-0.5),
                "surprised": scaled(0.7, 3.0, 1.3),
                "relaxed": scaled(1.05, 1.0, smile=0.4),
            },
        }
    )

    # The eyes: two dark ellipsoids; blinking flattens them.
    eye_half = np.array([0.011, 0.015, 0.006], np.float32)
    eyes, eye_tris, eye_nrm, eye_local = [], [], [], []
    for i, x in enumerate((0.035, -0.035)):
        eyes.append(small * eye_half + np.array([x, 0.02, 0.092], np.float32))
        eye_local.append(small * eye_half)
        eye_tris.append(small_tris + i * len(small))
        eye_nrm.append(small)
    local = np.concatenate(eye_local)

    def squash(sy: float, sx: float = 1.0) -> np.ndarray:
        return local * np.array([sx, sy, 1.0], np.float32) - local

    parts.append(
        {
            "name": "eyes",
            "positions": np.concatenate(eyes),
            "normals": np.concatenate(eye_nrm),
            "indices": np.concatenate(eye_tris).astype(np.uint16),
            "color": [0.12, 0.10, 0.16, 1.0],
            "morphs": {
                **{m: np.zeros_like(local) for m in ("aa", "ih", "ou", "ee", "oh")},
                "blink": squash(0.08),
                "happy": squash(0.45),
                "sad": squash(0.8),
                "angry": squash(0.6, 1.1),
                "surprised": squash(1.35, 1.2),
                "relaxed": squash(0.55),
            },
        }
    )
    return parts


class _Builder:
    """Collects buffer views and accessors into one binary buffer."""

    def __init__(self) -> None:
        self.bin = bytearray()
        self.views: list[dict[str, Any]] = []
        self.accessors: list[dict[str, Any]] = []

    def add(self, array: np.ndarray, kind: str, target: int | None, minmax: bool = False) -> int:
        """Append ``array`` (float32 VEC3/VEC2 or uint16 SCALAR); the accessor's index."""
        while len(self.bin) % 4:
            self.bin.append(0)
        data = np.ascontiguousarray(array)
        view: dict[str, Any] = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": data.nbytes}
        if target is not None:
            view["target"] = target
        self.bin += data.tobytes()
        self.views.append(view)
        accessor: dict[str, Any] = {
            "bufferView": len(self.views) - 1,
            "componentType": 5126 if data.dtype == np.float32 else 5123,
            "count": len(data) if kind.startswith("VEC") else data.size,
            "type": kind,
        }
        if minmax:
            accessor["min"] = [float(v) for v in data.reshape(-1, 3).min(axis=0)]
            accessor["max"] = [float(v) for v in data.reshape(-1, 3).max(axis=0)]
        self.accessors.append(accessor)
        return len(self.accessors) - 1

    def add_bytes(self, data: bytes) -> int:
        """Append raw bytes (an image) as a buffer view; the view's index."""
        while len(self.bin) % 4:
            self.bin.append(0)
        self.views.append({"buffer": 0, "byteOffset": len(self.bin), "byteLength": len(data)})
        self.bin += data
        return len(self.views) - 1


def _model(v0: bool) -> tuple[dict[str, Any], bytes, dict[str, int]]:
    """The glTF JSON (without the VRM extension), its binary buffer, and node indices."""
    # VRM 0.x models face -Z: turn everything half round the Y axis.
    turn = np.array([-1.0, 1.0, -1.0], np.float32) if v0 else np.ones(3, np.float32)
    b = _Builder()
    nodes: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for name, parent, offset in BONES:
        index[name] = len(nodes)
        nodes.append({"name": name, "translation": [float(v) for v in np.array(offset) * turn]})
        if parent is not None:
            nodes[index[parent]].setdefault("children", []).append(index[name])

    materials: list[dict[str, Any]] = []
    primitives = []
    images: list[dict[str, Any]] = []
    for part in _face_parts():
        pbr: dict[str, Any] = {
            "baseColorFactor": part["color"],
            "metallicFactor": 0.0,
            "roughnessFactor": 0.7,
        }
        if part.get("texture"):
            images.append({"bufferView": b.add_bytes(skin_texture()), "mimeType": "image/png"})
            pbr["baseColorTexture"] = {"index": len(images) - 1}
        materials.append({"name": part["name"], "pbrMetallicRoughness": pbr})
        targets = [
            {"POSITION": b.add(part["morphs"][m] * turn, "VEC3", 34962, minmax=True)}
            for m in MORPHS
        ]
        attributes = {
            "POSITION": b.add(part["positions"] * turn, "VEC3", 34962, minmax=True),
            "NORMAL": b.add(part["normals"] * turn, "VEC3", 34962),
        }
        if "uv" in part:
            attributes["TEXCOORD_0"] = b.add(part["uv"], "VEC2", 34962)
        primitives.append(
            {
                "attributes": attributes,
                "indices": b.add(part["indices"].reshape(-1), "SCALAR", 34963),
                "material": len(materials) - 1,
                "targets": targets,
            }
        )
    meshes: list[dict[str, Any]] = [
        {"name": "Face", "primitives": primitives, "extras": {"targetNames": list(MORPHS)}}
    ]

    pos, nrm, idx = box((0.34, 0.44, 0.16), (0.0, 0.21, 0.0))
    materials.append(
        {
            "name": "shirt",
            "pbrMetallicRoughness": {
                "baseColorFactor": [0.25, 0.42, 0.75, 1.0],
                "metallicFactor": 0.0,
                "roughnessFactor": 0.8,
            },
        }
    )
    meshes.append(
        {
            "name": "Torso",
            "primitives": [
                {
                    "attributes": {
                        "POSITION": b.add(pos * turn, "VEC3", 34962, minmax=True),
                        "NORMAL": b.add(nrm * turn, "VEC3", 34962),
                    },
                    "indices": b.add(idx.reshape(-1), "SCALAR", 34963),
                    "material": len(materials) - 1,
                }
            ],
        }
    )

    index["face"] = len(nodes)
    nodes.append({"name": "Face", "mesh": 0, "translation": list(map(float, HEAD_CENTRE))})
    nodes[index["head"]].setdefault("children", []).append(index["face"])
    index["torso"] = len(nodes)
    nodes.append({"name": "Torso", "mesh": 1})
    nodes[index["spine"]].setdefault("children", []).append(index["torso"])

    while len(b.bin) % 4:
        b.bin.append(0)
    gltf = {
        "asset": {"version": "2.0", "generator": "tests/make_vrm.py"},
        "scene": 0,
        "scenes": [{"nodes": [index["hips"]]}],
        "nodes": nodes,
        "meshes": meshes,
        "materials": materials,
        "images": images,
        "textures": [{"source": i, "sampler": 0} for i in range(len(images))],
        "samplers": [{"magFilter": 9729, "minFilter": 9729}],
        "accessors": b.accessors,
        "bufferViews": b.views,
        "buffers": [{"byteLength": len(b.bin)}],
    }
    return gltf, bytes(b.bin), index


def make_glb(gltf: dict[str, Any], binary: bytes = b"") -> bytes:
    """A glTF binary: header, JSON chunk (space-padded), BIN chunk (zero-padded) if any."""
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), CHUNK_JSON) + text
    if binary:
        binary += b"\0" * (-len(binary) % 4)
        chunks += struct.pack("<II", len(binary), CHUNK_BIN) + binary
    return GLB_MAGIC + struct.pack("<II", 2, 12 + len(chunks)) + chunks


def vrm1_json(
    expressions: tuple[str, ...] = MORPHS, title: str = "Test Head", author: str = "make_vrm"
) -> tuple[dict[str, Any], bytes]:
    """A VRM 1.0 model's glTF JSON and buffer, with only ``expressions`` bound."""
    gltf, binary, index = _model(v0=False)
    preset = {
        name: {
            "morphTargetBinds": [{"node": index["face"], "index": MORPHS.index(name), "weight": 1}],
            "isBinary": False,
            "overrideBlink": "block" if name == "surprised" else "none",
            "overrideLookAt": "none",
            "overrideMouth": "none",
        }
        for name in expressions
    }
    gltf["extensionsUsed"] = ["VRMC_vrm"]
    gltf["extensions"] = {
        "VRMC_vrm": {
            "specVersion": "1.0",
            "meta": {
                "name": title,
                "version": "1",
                "authors": [author],
                "licenseUrl": "https://vrm.dev/licenses/1.0/",
                "avatarPermission": "everyone",
                "commercialUsage": "personalNonProfit",
                "creditNotation": "unnecessary",
                "allowRedistribution": True,
                "modification": "allowModification",
                "allowExcessivelyViolentUsage": False,
                "allowExcessivelySexualUsage": False,
                "allowPoliticalOrReligiousUsage": False,
                "allowAntisocialOrHateUsage": False,
            },
            "humanoid": {"humanBones": {name: {"node": index[name]} for name, _, _ in BONES}},
            "lookAt": {"type": "expression", "offsetFromHeadBone": [0.0, 0.13, 0.08]},
            "expressions": {"preset": preset},
        }
    }
    return gltf, binary


def vrm0_json(
    expressions: tuple[str, ...] = MORPHS, title: str = "Test Head 0", author: str = "make_vrm"
) -> tuple[dict[str, Any], bytes]:
    """A VRM 0.x model's glTF JSON and buffer (``expressions`` in VRM 1.0 names)."""
    gltf, binary, index = _model(v0=True)
    groups = []
    for name in expressions:
        preset, group = V0_GROUPS[name]
        groups.append(
            {
                "name": group,
                "presetName": preset,
                "binds": [{"mesh": 0, "index": MORPHS.index(name), "weight": 100}],
                "materialValues": [],
                "isBinary": False,
            }
        )
    gltf["extensionsUsed"] = ["VRM"]
    gltf["extensions"] = {
        "VRM": {
            "exporterVersion": "tests/make_vrm.py",
            "specVersion": "0.0",
            "meta": {
                "title": title,
                "version": "1",
                "author": author,
                "allowedUserName": "Everyone",
                "violentUssageName": "Disallow",
                "sexualUssageName": "Disallow",
                "commercialUssageName": "Disallow",
                "licenseName": "CC0",
            },
            "humanoid": {
                "humanBones": [
                    {"bone": name, "node": index[name], "useDefaultValues": True}
                    for name, _, _ in BONES
                ]
            },
            "firstPerson": {
                "firstPersonBone": index["head"],
                "firstPersonBoneOffset": {"x": 0, "y": 0.13, "z": -0.08},
                "meshAnnotations": [],
                "lookAtTypeName": "BlendShape",
                **{
                    f"lookAt{which}": {"curve": [0, 0, 0, 1, 1, 1, 1, 0], "xRange": 90, "yRange": 1}
                    for which in (
                        "HorizontalInner",
                        "HorizontalOuter",
                        "VerticalDown",
                        "VerticalUp",
                    )
                },
            },
            "blendShapeMaster": {"blendShapeGroups": groups},
            "secondaryAnimation": {"boneGroups": [], "colliderGroups": []},
            "materialProperties": [],
        }
    }
    return gltf, binary


def make_vrm(**kwargs: Any) -> bytes:
    """A VRM 1.0 model (.vrm bytes); ``vrm1_json``'s arguments."""
    return make_glb(*vrm1_json(**kwargs))


def make_vrm0(**kwargs: Any) -> bytes:
    """A VRM 0.x model (.vrm bytes); ``vrm0_json``'s arguments."""
    return make_glb(*vrm0_json(**kwargs))


def main(argv: list[str] | None = None) -> None:
    """Write a test VRM to the path given."""
    parser = argparse.ArgumentParser(description="Make a small, valid VRM model.")
    parser.add_argument("out", type=Path, help="the .vrm file to write")
    parser.add_argument("--v0", action="store_true", help="VRM 0.x instead of 1.0")
    args = parser.parse_args(argv)
    data = make_vrm0() if args.v0 else make_vrm()
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes, VRM {'0.x' if args.v0 else '1.0'})")


if __name__ == "__main__":
    main()
