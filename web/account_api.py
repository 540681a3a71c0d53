"""Your account: change the password, sign out everywhere, delete the account.

Routes (all need a signed-in person; each state change also passes ``web.guards``):
    POST /api/account/password               ``{current, new}``: every other sign-in ends
    POST /api/account/sign-out-everywhere    every sign-in of yours ends, this one too
    POST /api/account/delete                 ``{password}``: forget-me, your avatars, the account

Deleting asks for the password again: a cookie left on a shared computer must not be enough
to wipe someone's memories. It runs in the order that loses nothing half-way: calls end
first (so nothing is written after), then everything the avatars remember of you (every
version of it, ``MemoryStore.purge_history``), then the avatars you made (refused while
someone else is in a call with one, as deleting that avatar alone is), then the account.
Calls signed in elsewhere end within ``AVATARS_LOGIN_CHECK_SECS`` once their sign-in is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field

from bots.avatar_files import delete_avatar_file
from bots.runtime import Runtime
from web.accounts import AccountError, AccountStore
from web.auth import COOKIE, SignedIn
from web.calls import Calls


class PasswordChange(BaseModel):
    """The current password, and the new one."""

    current: str = Field(min_length=1, max_length=1024)
    new: str = Field(min_length=1, max_length=1024)


class Confirmation(BaseModel):
    """The password, asked again before something that cannot be undone."""

    password: str = Field(min_length=1, max_length=1024)


def account_router(
    runtime: Runtime,
    accounts: AccountStore,
    calls: Calls,
    sign_in_cookie: Callable[[Response, str], None],
) -> APIRouter:
    """The account routes.

    Args:
        runtime: for the memory store and the avatar catalog.
        accounts: where users and sign-ins live.
        calls: to end the person's calls before their data goes.
        sign_in_cookie: sets the sign-in cookie on a response (``web.auth``'s).
    """
    router = APIRouter(prefix="/api/account")

    @router.post("/password")
    async def change_password(form: PasswordChange, me: SignedIn, response: Response) -> dict:
        try:
            changed = await asyncio.to_thread(accounts.change_password, me, form.current, form.new)
        except AccountError as e:
            raise HTTPException(400, str(e)) from None
        if not changed:
            raise HTTPException(403, "That is not your current password.")
        calls.end_calls("Your password was changed, so this call ended.", user_id=me.id)
        sign_in_cookie(response, accounts.sign_in(me))  # this device stays signed in
        return {"ok": True}

    @router.post("/sign-out-everywhere")
    async def sign_out_everywhere(me: SignedIn, response: Response) -> dict:
        ended = accounts.sign_out_everywhere(me.id)
        calls.end_calls("You signed out everywhere, so the call ended.", user_id=me.id)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return {"signed_out": ended}

    @router.post("/delete")
    async def delete_account(form: Confirmation, me: SignedIn) -> Response:
        confirmed = await asyncio.to_thread(accounts.authenticate, me.username, form.password)
        if confirmed != me:
            raise HTTPException(403, "That is not your password; nothing was deleted.")
        mine = accounts.owned_avatars(me.id)
        busy = [a for a in mine if calls.calls_with(a)]
        if busy:
            raise HTTPException(
                409, f"Your avatar {busy[0]!r} is in a call right now; try when it has ended."
            )
        await calls.forget(me.id)  # ends this person's calls and drops their pending writes
        store = await asyncio.to_thread(lambda: runtime.memory)
        if store is not None:
            await asyncio.to_thread(store.forget_user, me.id)
        for avatar_id in mine:
            await asyncio.to_thread(delete_avatar_file, runtime.avatars, avatar_id)
            if store is not None:
                await asyncio.to_thread(store.forget_avatar, avatar_id)
            accounts.release_avatar(avatar_id)
        accounts.delete_user(me.id)
        response = Response(status_code=204)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return router
