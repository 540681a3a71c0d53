"""Room accounts and sign-in sessions, kept in SQLite.

Why SQLite and not LanceDB (where memories live): sign-up needs a unique user name and sign-in
needs a read-check-write that cannot interleave with a concurrent logout; SQLite gives both
(a UNIQUE constraint, transactions, WAL so readers never block the writer, a busy timeout for
the rare concurrent writer). LanceDB has neither unique constraints nor multi-statement
transactions, so two people signing up as "sam" at once could both succeed.

Passwords are hashed with scrypt (``hashlib.scrypt``, in the standard library: no native
dependency to build) at n=2^14, r=8, p=1 (~16 MiB, ~50 ms), each with its own salt, and checked
in constant time. The parameters are stored with each hash so they can be raised later.

Avatars made in the browser editor belong to whoever made them (``avatar_owners``): only they
may change or delete them. The avatar itself is an ordinary TOML file (``bots.avatar_files``);
an avatar with no owner row (shipped, or written by hand) is the room's and read-only here.

A sign-in is a random 256-bit token in an HTTP-only cookie; only its SHA-256 is stored, so a
copy of the database does not let anyone sign in. Tokens expire ``ttl`` seconds after sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,31}$")
MIN_PASSWORD = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS logins (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS logins_user ON logins(user_id);
CREATE TABLE IF NOT EXISTS avatar_owners (
    avatar_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created REAL NOT NULL
);
"""


class AccountError(ValueError):
    """A sign-up or sign-in was refused; the message is safe to show the person."""


@dataclass(frozen=True)
class User:
    """A room account."""

    id: str
    username: str


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64), for storage."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=64 << 20, **_SCRYPT)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a :func:`hash_password` string (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 << 20,
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccountStore:
    """Users and their sign-ins in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path, *, ttl: float = 7 * 24 * 3600):
        """Open (creating if needed) the database.

        Args:
            path: the SQLite file.
            ttl: how long a sign-in lasts, in seconds.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        self.ttl = ttl
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        # One connection, one writer at a time within this process; SQLite's own locking
        # covers other processes sharing the file.
        self._lock = threading.Lock()
        # A real hash to check against when the user does not exist, so a failed sign-in
        # takes as long whether or not the name is taken.
        self._dummy_hash = hash_password(secrets.token_hex(8))

    def sign_up(self, username: str, password: str) -> User:
        """Create an account.

        Raises:
            AccountError: bad name or password, or the name is taken.
        """
        username = username.strip()
        if not USERNAME_RE.match(username):
            raise AccountError(
                "Pick a user name of 2-32 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit."
            )
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"Use a password of at least {MIN_PASSWORD} characters.")
        user = User(id=f"u-{uuid.uuid4().hex}", username=username)
        hashed = hash_password(password)
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                    (user.id, username, username.casefold(), hashed, time.time()),
                )
        except sqlite3.IntegrityError:
            raise AccountError(f"The name {username!r} is taken; pick another.") from None
        return user

    def authenticate(self, username: str, password: str) -> User | None:
        """The user whose name and password these are, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, username, password_hash FROM users WHERE username_key = ?",
                (username.strip().casefold(),),
            ).fetchone()
        if row is None:
            check_password(password, self._dummy_hash)
            return None
        return User(row[0], row[1]) if check_password(password, row[2]) else None

    def sign_in(self, user: User) -> str:
        """Start a sign-in for ``user``; returns the token for the cookie."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO logins VALUES (?, ?, ?, ?)",
                (_token_hash(token), user.id, now, now + self.ttl),
            )
            # Housekeeping: expired sign-ins are of no use to anyone.
            self._db.execute("DELETE FROM logins WHERE expires < ?", (now,))
        return token

    def user_for(self, token: str | None) -> User | None:
        """The user signed in with ``token``, or None if unknown, signed out or expired."""
        if not token:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT users.id, users.username FROM logins JOIN users ON users.id = user_id "
                "WHERE token_hash = ? AND expires > ?",
                (_token_hash(token), time.time()),
            ).fetchone()
        return User(row[0], row[1]) if row else None

    def sign_out(self, token: str) -> None:
        """End one sign-in."""
        with self._lock:
            self._db.execute("DELETE FROM logins WHERE token_hash = ?", (_token_hash(token),))

    def expire(self, token: str, in_seconds: float = 0.0) -> None:
        """Move a sign-in's expiry to ``in_seconds`` from now (for admins and tests)."""
        with self._lock:
            self._db.execute(
                "UPDATE logins SET expires = ? WHERE token_hash = ?",
                (time.time() + in_seconds, _token_hash(token)),
            )

    def change_password(self, user: User, current: str, new: str) -> bool:
        """Set a new password if ``current`` is right, ending every sign-in of ``user``.

        The caller signs the person in again on the device they changed it from; every other
        device (maybe the reason for the change) is signed out.

        Raises:
            AccountError: the new password is too short.
        """
        if len(new) < MIN_PASSWORD:
            raise AccountError(f"Use a password of at least {MIN_PASSWORD} characters.")
        if self.authenticate(user.username, current) != user:
            return False
        hashed = hash_password(new)
        with self._lock:
            self._db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (hashed, user.id))
            self._db.execute("DELETE FROM logins WHERE user_id = ?", (user.id,))
        return True

    def sign_out_everywhere(self, user_id: str) -> int:
        """End every sign-in of ``user_id``; how many there were."""
        with self._lock:
            return self._db.execute("DELETE FROM logins WHERE user_id = ?", (user_id,)).rowcount

    def owned_avatars(self, user_id: str) -> list[str]:
        """The avatars ``user_id`` made in the editor."""
        with self._lock:
            rows = self._db.execute(
                "SELECT avatar_id FROM avatar_owners WHERE user_id = ?", (user_id,)
            ).fetchall()
        return sorted(r[0] for r in rows)

    def delete_user(self, user_id: str) -> None:
        """Delete an account and all its sign-ins."""
        with self._lock:
            self._db.execute("DELETE FROM users WHERE id = ?", (user_id,))

    def claim_avatar(self, avatar_id: str, user: User, *, stale_secs: float = 60.0) -> bool:
        """Record ``user`` as the owner of a new avatar; False if someone already has it.

        One atomic step, so of two people creating the same id at once exactly one wins. Call
        it only for an id with no file: a claim older than ``stale_secs`` is then a leftover
        (a file deleted by hand, a save that failed) and is taken over; a younger one is
        someone else's creation still being saved.
        """
        now = time.time()
        with self._lock:  # one process owns the account database
            try:
                self._db.execute(
                    "INSERT INTO avatar_owners VALUES (?, ?, ?)", (avatar_id, user.id, now)
                )
                return True
            except sqlite3.IntegrityError:
                pass
            taken = self._db.execute(
                "UPDATE avatar_owners SET user_id = ?, created = ? "
                "WHERE avatar_id = ? AND created < ?",
                (user.id, now, avatar_id, now - stale_secs),
            )
            return taken.rowcount == 1

    def avatar_owners(self) -> dict[str, User]:
        """Who made each editor-made avatar: avatar id -> owner."""
        with self._lock:
            rows = self._db.execute(
                "SELECT avatar_id, users.id, users.username FROM avatar_owners "
                "JOIN users ON users.id = user_id"
            ).fetchall()
        return {avatar_id: User(uid, name) for avatar_id, uid, name in rows}

    def release_avatar(self, avatar_id: str) -> None:
        """Forget who owned a (deleted) avatar."""
        with self._lock:
            self._db.execute("DELETE FROM avatar_owners WHERE avatar_id = ?", (avatar_id,))

    def close(self) -> None:
        """Close the database."""
        self._db.close()
