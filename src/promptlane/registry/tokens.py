"""API tokens for a registry server: their scopes, their secrets, and creating and checking them over a store.

A token is a name, the scopes it was granted and the sha256 of its secret. The secret itself exists only in
the value :func:`create_token` returns: the registry keeps the hash, so a copy of the database authenticates
nobody.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from ..errors import TokenError

if TYPE_CHECKING:
    from .store import Store, TokenRecord

__all__ = [
    "SCOPES",
    "SECRET_PREFIX",
    "allows",
    "authenticate",
    "check_secret_hash",
    "check_token_name",
    "create_token",
    "format_scopes",
    "hash_secret",
    "new_secret",
    "parse_scopes",
]

SCOPES = ("read", "write", "promote", "admin")
"""What a token may do. ``read``: resolve and list; ``write``: push versions, record runs; ``promote``: move
labels through the gate; ``admin``: manage tokens and force moves past the gate. See :func:`allows`."""
SECRET_PREFIX = "plt_"
"""How every secret starts, so a leaked one is recognisable (secret scanners, logs)."""

# What each scope allows besides itself. write and promote are separate powers: pushing a version does not
# let it reach production, and promoting does not let anyone push what gets promoted.
_IMPLIES = {
    "read": frozenset({"read"}),
    "write": frozenset({"write", "read"}),
    "promote": frozenset({"promote", "read"}),
    "admin": frozenset(SCOPES),
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_VALID = ", ".join(SCOPES)


def check_token_name(name: str) -> str:
    """``name`` if a token may be called that; TokenError saying what is wrong otherwise."""
    if not name:
        raise TokenError("a token needs a name")
    if len(name) > 63:
        raise TokenError(f"invalid token name {name[:20] + '...'!r}: at most 63 characters, got {len(name)}")
    if not _NAME.fullmatch(name):
        if _NAME.fullmatch(name.lower()):
            raise TokenError(f"invalid token name {name!r}: token names are lowercase, like {name.lower()!r}")
        raise TokenError(
            f"invalid token name {name!r}: use lowercase letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    return name


def parse_scopes(values: Iterable[str]) -> frozenset[str]:
    """The scopes in ``values``, each a scope or a comma-separated list (``["read,write", "promote"]``).

    Raises:
        TokenError: a scope is unknown, or none is given; the message lists the valid ones.
    """
    if isinstance(values, str):
        values = [values]
    scopes: set[str] = set()
    for value in values:
        for part in value.split(","):
            scope = part.strip()
            if not scope:
                continue
            if scope not in _IMPLIES:
                raise TokenError(f"unknown scope {scope!r}: the scopes are {_VALID}")
            scopes.add(scope)
    if not scopes:
        raise TokenError(f"a token needs at least one scope: {_VALID}")
    return frozenset(scopes)


def allows(scopes: Collection[str], needed: str) -> bool:
    """Whether a token granted ``scopes`` may do what needs ``needed``.

    ``admin`` allows everything; ``write`` and ``promote`` each allow ``read`` too, but not each other.
    Scopes this version does not know (from a newer registry) allow nothing.
    """
    if needed not in _IMPLIES:
        raise TokenError(f"unknown scope {needed!r}: the scopes are {_VALID}")
    return any(needed in _IMPLIES.get(scope, ()) for scope in scopes)


def format_scopes(scopes: Collection[str]) -> str:
    """``read, write``: the scopes in the order of :data:`SCOPES` (unknown ones last, sorted)."""
    order = {scope: index for index, scope in enumerate(SCOPES)}
    return ", ".join(sorted(scopes, key=lambda scope: (order.get(scope, len(SCOPES)), scope)))


def new_secret() -> str:
    """A fresh secret: ``plt_`` and 256 random bits, URL-safe."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The sha256 of ``secret``, hex: what the registry stores and looks tokens up by."""
    # No salt and no slow KDF: those protect low-entropy passwords from guessing. A secret is 256 random bits,
    # so its plain hash cannot be reversed, and an unsalted hash lets the registry find a token by it.
    return hashlib.sha256(secret.encode()).hexdigest()


def check_secret_hash(secret_hash: str) -> str:
    """``secret_hash`` if it is a sha256 hex digest (lowercase); TokenError otherwise."""
    if not isinstance(secret_hash, str) or not _HASH.fullmatch(secret_hash):
        raise TokenError("a token's secret hash must be the 64 lowercase hex digits of a sha256 digest")
    return secret_hash


def create_token(store: Store, name: str, scopes: Iterable[str], *, created_by: str | None) -> tuple[TokenRecord, str]:
    """Create a token in ``store``: (its record, its secret). The secret exists only in this return value.

    Raises:
        TokenError: a bad name or scope, or a name already used (by an active or a revoked token).
    """
    check_token_name(name)
    granted = parse_scopes(scopes)
    secret = new_secret()
    record = store.create_token(name, granted, hash_secret(secret), created_by=created_by)
    return record, secret


def authenticate(store: Store, secret: str) -> TokenRecord | None:
    """The active token whose secret is ``secret``; None for an unknown or revoked one.

    The lookup is by hash, so comparing in constant time is not needed. Never log ``secret``.
    """
    if not secret:
        return None
    record = store.token_by_hash(hash_secret(secret))
    return record if record is not None and record.active else None
