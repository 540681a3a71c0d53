"""What the avatars remember, in the person's hands: list, search and delete (REST).

Routes (all for the current user only; ``avatar`` picks whose view of them):
    GET    /api/memory?avatar=ID                 profile, memory cards (with the turns they
                                                 came from) and conversations
    GET    /api/memory/cards?avatar=ID&q=TEXT    cards; with ``q``, the most similar first
    DELETE /api/memory/cards/{card_id}           forget one memory
    GET    /api/memory/conversations?avatar=ID&q=TEXT
                                                 conversations; with ``q``, those whose
                                                 passages match best
    GET    /api/memory/conversations/{session_id}
                                                 every turn of one conversation
    DELETE /api/memory/conversations/{session_id}
                                                 delete it (and what was learned only from it)
    POST   /api/memory/forget                    "forget me": everything of this user, in every
                                                 table, for every avatar

Every route needs a signed-in person (``web.auth``); their account id is whose memories these
are. Nothing here takes a user id from the request itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from bots.runtime import Runtime
from memory.extract import render_profile
from memory.store import Card, MemoryStore
from web.auth import signed_in_user


def current_user(request: Request) -> str:
    """The signed-in person's account id (401 when nobody is signed in)."""
    return signed_in_user(request).id


def memory_router(
    runtime: Runtime,
    offered: Callable[[], list[str]],
    before_forget: Callable[[str], Awaitable[None]] | None = None,
) -> APIRouter:
    """The memory routes.

    Args:
        runtime: the process's runtime (its memory store).
        offered: lists the avatar ids this server has.
        before_forget: awaited with the user id before "forget me" deletes anything (ends
            that person's live calls, so they write nothing afterwards).
    """
    # Sign-in first, for every route: a stranger learns nothing, not even which avatars
    # there are (the avatar check below lists them).
    router = APIRouter(
        prefix="/api/memory", tags=["memory"], dependencies=[Depends(signed_in_user)]
    )

    def _store() -> MemoryStore:
        store = runtime.memory
        if store is None:
            raise HTTPException(404, "memory is off on this server (AVATARS_MEMORY=0)")
        return store

    def avatar_param(avatar: str | None = Query(None)) -> str:
        ids = offered()
        avatar_id = avatar or ids[0]
        if avatar_id not in ids:
            raise HTTPException(404, f"no avatar {avatar_id!r} here (offered: {ids})")
        return avatar_id

    def card_json(store: MemoryStore, user: str, card: Card) -> dict:
        sources = store.get_turns(user, card.source_turn_ids)
        return {
            **asdict(card),
            "sources": [
                {"id": t.id, "session_id": t.session_id, "role": t.role, "text": t.text,
                 "started": t.started}
                for t in sources
            ],
        }  # fmt: skip

    @router.get("")
    async def overview(
        avatar: str = Depends(avatar_param), user: str = Depends(current_user)
    ) -> dict:
        def read() -> dict:
            store = _store()
            cards = store.list_cards(user, avatar)
            return {
                "user": user,
                "avatar": avatar,
                "profile": render_profile(cards),
                "cards": [card_json(store, user, c) for c in cards],
                "conversations": [asdict(c) for c in store.conversations(user, avatar)],
            }

        return await asyncio.to_thread(read)

    @router.get("/cards")
    async def cards(
        avatar: str = Depends(avatar_param),
        user: str = Depends(current_user),
        q: str | None = Query(None, max_length=500),
        limit: int = Query(20, ge=1, le=200),
    ) -> list[dict]:
        def read() -> list[dict]:
            store = _store()
            if q and q.strip():
                found = store.search_cards(user, avatar, q, k=limit)
            else:
                found = store.list_cards(user, avatar)[:limit]
            return [card_json(store, user, c) for c in found]

        return await asyncio.to_thread(read)

    @router.delete("/cards/{card_id}")
    async def delete_card(card_id: str, user: str = Depends(current_user)) -> dict:
        if not await asyncio.to_thread(lambda: _store().delete_card(user, card_id)):
            raise HTTPException(404, "no such memory (already deleted?)")
        return {"deleted": card_id}

    @router.get("/conversations")
    async def conversations(
        avatar: str = Depends(avatar_param),
        user: str = Depends(current_user),
        q: str | None = Query(None, max_length=500),
    ) -> list[dict]:
        def read() -> list[dict]:
            store = _store()
            listed = store.conversations(user, avatar)
            if not (q and q.strip()):
                return [asdict(c) for c in listed]
            hits = store.search_chunks(user, avatar, q, k=10)
            best: dict[str, float] = {}
            for h in hits:
                best[h.session_id] = max(best.get(h.session_id, 0.0), h.score)
            ranked = [c for c in listed if c.session_id in best]
            ranked.sort(key=lambda c: best[c.session_id], reverse=True)
            return [{**asdict(c), "score": best[c.session_id]} for c in ranked]

        return await asyncio.to_thread(read)

    @router.get("/conversations/{session_id}")
    async def conversation(session_id: str, user: str = Depends(current_user)) -> dict:
        turns = await asyncio.to_thread(lambda: _store().conversation(user, session_id))
        if not turns:
            raise HTTPException(404, "no such conversation")
        return {"session_id": session_id, "turns": [asdict(t) for t in turns]}

    @router.delete("/conversations/{session_id}")
    async def delete_conversation(session_id: str, user: str = Depends(current_user)) -> dict:
        deleted = await asyncio.to_thread(lambda: _store().delete_conversation(user, session_id))
        if not deleted["turns"]:
            raise HTTPException(404, "no such conversation")
        return {"deleted": session_id, **deleted}

    @router.post("/forget")
    async def forget_me(user: str = Depends(current_user)) -> dict:
        if before_forget is not None:
            await before_forget(user)

        def forget() -> dict:
            store = _store()
            before = store.count(user)
            store.forget_user(user)
            return {"forgotten": before, "left": store.count(user)}

        return await asyncio.to_thread(forget)

    return router
