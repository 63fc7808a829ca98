"""SQLite files across ``fork()`` (gunicorn ``--preload``, a multiprocessing pool).

SQLite keeps a file's locks per process. A forked child inherits the parent's record of the locks it holds, but
not the locks: a connection the child opens to a file its parent had open at the fork believes it holds them,
writes without taking them, and loses what it wrote when the parent checkpoints (a worker's pushes vanished when
the master closed its registry). So before every fork each store closes its idle connections to SQLite files (the
next read opens a new one), and in a child whose parent still had one open at the fork (another thread in a read,
a fork inside ``atomic()``) every use of that file is refused, saying why, instead of losing what it writes.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol

from ..errors import RegistryUnavailableError

__all__ = ["ForkAware", "refuse_if_forked", "refuse_if_inherited", "watch"]


class ForkAware(Protocol):
    """A store holding connections to a SQLite file."""

    display_url: str
    sqlite_file: str
    """The file's real path."""

    def before_fork(self) -> None:
        """In the parent, before a fork: close the idle connections."""

    def after_fork_in_parent(self) -> None:
        """In the parent, after the fork."""

    def after_fork_in_child(self) -> bool:
        """In the child: whether a connection was still open when the parent forked (it must not be used)."""
        ...


_STORES: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_FORKING: list[ForkAware] = []
"""The stores of the fork under way, from before it to after it."""
_ONE_FORK = threading.Lock()
"""Held from before a fork to after it: two threads forking at once take turns (each fork holds the stores'
locks from its before to its after)."""
_INHERITED_OPEN: dict[str, str] = {}
"""In a forked child: the SQLite files (real paths) its parent had a connection open to at the fork, and the
registry each was opened as."""


def watch(store: ForkAware) -> None:
    """Close ``store``'s idle connections before every fork, and refuse its file in a child whose parent still
    had a connection of it open at the fork."""
    _STORES.add(store)


def refuse_if_inherited(sqlite_file: str) -> None:
    """Raise if this process was forked while its parent had a connection open to ``sqlite_file`` (a real path).

    Raises:
        RegistryUnavailableError: naming the registry and what to do instead.
    """
    if _INHERITED_OPEN and sqlite_file in _INHERITED_OPEN:
        raise RegistryUnavailableError(
            f"registry {_INHERITED_OPEN[sqlite_file]} is unavailable in this process: it was forked while its"
            " parent was using the SQLite file (a read in another thread, or a fork inside atomic()), and SQLite"
            " cannot share an open file across fork() without losing writes; open the Registry in each worker"
            " (gunicorn post_fork, a pool initializer), or fork while the parent is not using it"
        )


def refuse_if_forked(since: int, display_url: str) -> None:
    """Raise if this process is not process ``since``: a child forked inside a transaction (``atomic()``), whose
    connection is its parent's. Used on SQLite and PostgreSQL alike: a child must neither write through the
    parent's connection nor commit or roll back the parent's transaction.

    Raises:
        RegistryUnavailableError: naming the registry.
    """
    if os.getpid() != since:
        raise RegistryUnavailableError(
            f"registry {display_url} is unavailable in this process: it was forked inside a transaction of its"
            " parent (atomic()), whose connection is the parent's; nothing of that transaction is stored from here"
        )


def _before() -> None:
    _ONE_FORK.acquire()
    _FORKING.clear()
    # Until none is new: a store's before_fork may wait for a thread that is opening another store meanwhile.
    while new := [store for store in list(_STORES) if not any(store is seen for seen in _FORKING)]:
        for store in new:
            store.before_fork()
            _FORKING.append(store)


def _after_in_parent() -> None:
    for store in _FORKING:
        store.after_fork_in_parent()
    _FORKING.clear()
    _ONE_FORK.release()


def _after_in_child() -> None:
    for store in _FORKING:
        if store.after_fork_in_child():
            _INHERITED_OPEN[store.sqlite_file] = store.display_url
    _FORKING.clear()
    _ONE_FORK.release()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork()
    os.register_at_fork(before=_before, after_in_parent=_after_in_parent, after_in_child=_after_in_child)
