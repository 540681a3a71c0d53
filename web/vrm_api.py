"""Bring your own VRM: an avatar's 3D model, uploaded by its owner, shown on the talk page.

Routes (all need a signed-in person):
    PUT    /api/avatars/{id}/vrm   upload (or replace) the model of an avatar you own: the
                                   .vrm file as the raw body (Content-Type model/gltf-binary
                                   or application/octet-stream), at most 30 MB
    GET    /api/avatars/{id}/vrm   the model (model/gltf-binary); 404 when it has none
    DELETE /api/avatars/{id}/vrm   remove the model of an avatar you own

The file is ``<id>.vrm`` beside the avatar's TOML in the user avatars folder, written
atomically. Deleting the avatar deletes it too (``bots.avatar_files.delete_avatar_file``).
Whether the page shows it is the avatar's ``face.vrm`` setting; ``/api/avatars`` says which
avatars have one (``"vrm": true``).

Who may change what is as for the avatar itself (``web.avatars_api``): only its owner; the
room's avatars are read-only (403). Anyone signed in may download the model of any avatar
the room offers: everyone in a call with it sees it.

Answers: 200; 403 not yours; 404 no such avatar (or no model, for GET); 413 over 30 MB
(from ``web.guards.BodyLimit`` before the body is read, naming the size and the limit);
415 not a glTF binary, or sent as a form instead of the file; 422 a broken file, not a VRM,
or a model without the mouth (aa ih ou ee oh) and blink expressions (named).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from bots.config import AvatarConfigError
from bots.runtime import Runtime
from web.accounts import AccountStore, User
from web.auth import SignedIn
from web.guards import without_paths
from web.vrm import MAX_VRM_BYTES, VrmError, check_vrm, megabytes, save_vrm, vrm_file

MEDIA_TYPE = "model/gltf-binary"
ACCEPTED_TYPES = (MEDIA_TYPE, "application/octet-stream")

_BINARY = {"schema": {"type": "string", "format": "binary"}}
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"The .vrm file itself (at most {megabytes(MAX_VRM_BYTES)}).",
        "content": {t: _BINARY for t in ACCEPTED_TYPES},
    }
}


class VrmUploaded(BaseModel):
    """What the uploaded model is."""

    version: str
    """``"1.0"`` or ``"0.x"``."""
    expressions: list[str]
    """Its expressions (VRM 1.0 names): the mouth and blink, and the emotions it has."""
    emotions: list[str]
    """Of happy sad angry surprised relaxed neutral, those it can show."""
    size: int
    title: str | None = None
    author: str | None = None


class VrmRemoved(BaseModel):
    """Whether there was a model to remove."""

    removed: bool


def vrm_router(
    runtime: Runtime, offered: Callable[[], list[str]], accounts: AccountStore
) -> APIRouter:
    """The VRM model routes.

    Args:
        runtime: the process's runtime (its avatar catalog).
        offered: the avatar ids this server offers.
        accounts: who owns which editor-made avatar.
    """
    router = APIRouter(prefix="/api/avatars", tags=["avatars"])
    catalog = runtime.avatars

    def offered_avatar(avatar_id: str) -> None:
        if avatar_id not in offered():
            raise HTTPException(404, f"There is no avatar {avatar_id!r} here.")

    def own(avatar_id: str, me: User) -> str:
        """The avatar's name, if ``me`` may change its model (404 / 403 saying why not)."""
        offered_avatar(avatar_id)
        owner = accounts.avatar_owners().get(avatar_id)
        name = catalog.load(avatar_id).name
        if owner is None:
            raise HTTPException(
                403,
                f"{name} is one of the room's avatars, so its model can't be changed here. "
                "Make a copy and give that your model.",
            )
        if owner.id != me.id:
            raise HTTPException(
                403,
                f"{name} belongs to {owner.username}, so only they can change its model. "
                "Make a copy and give that your model.",
            )
        return name

    def where(avatar_id: str):
        path = vrm_file(catalog, avatar_id)
        if path is None:  # offered, so it has a file; gone since (deleted meanwhile)
            raise HTTPException(404, f"There is no avatar {avatar_id!r} here.")
        return path

    @router.put("/{avatar_id}/vrm", openapi_extra=UPLOAD_BODY)
    async def upload(avatar_id: str, me: SignedIn, request: Request) -> VrmUploaded:
        own(avatar_id, me)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind and kind not in ACCEPTED_TYPES:
            raise HTTPException(
                415,
                f"Send the .vrm file itself as the request body (Content-Type {MEDIA_TYPE} "
                f"or application/octet-stream), not as {kind}.",
            )
        try:
            data = await request.body()  # web.guards.BodyLimit stops it at MAX_VRM_BYTES
        except ClientDisconnect:  # gone, or over the limit (BodyLimit has answered 413)
            raise HTTPException(400, "The upload was cut off; try again.") from None
        try:
            info = await asyncio.to_thread(check_vrm, data)
        except VrmError as e:
            raise HTTPException(e.status, e.message) from None
        path = where(avatar_id)
        try:
            await asyncio.to_thread(save_vrm, path, data)
        except OSError as e:  # a full disk, a read-only folder
            raise HTTPException(500, f"Could not save the model: {without_paths(str(e))}") from None
        return VrmUploaded(
            version=info.version,
            expressions=info.expressions,
            emotions=info.emotions,
            size=info.size,
            title=info.title,
            author=info.author,
        )

    @router.get(
        "/{avatar_id}/vrm",
        response_class=FileResponse,
        responses={200: {"content": {MEDIA_TYPE: _BINARY}, "description": "The .vrm file."}},
    )
    async def download(avatar_id: str, _me: SignedIn) -> FileResponse:
        offered_avatar(avatar_id)
        path = where(avatar_id)
        if not await asyncio.to_thread(path.is_file):
            try:
                name = catalog.load(avatar_id).name
            except AvatarConfigError:
                name = avatar_id
            raise HTTPException(404, f"{name} has no 3D model; its owner can upload one.")
        # no-cache: the browser asks again (a 304 while unchanged), so a new model shows.
        return FileResponse(
            path,
            media_type=MEDIA_TYPE,
            filename=f"{avatar_id}.vrm",
            headers={"Cache-Control": "private, no-cache"},
        )

    @router.delete("/{avatar_id}/vrm")
    async def remove(avatar_id: str, me: SignedIn) -> VrmRemoved:
        own(avatar_id, me)
        path = where(avatar_id)
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return VrmRemoved(removed=False)
        return VrmRemoved(removed=True)

    return router
