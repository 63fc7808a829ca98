"""The registry server (``promptlane serve``): the registry over HTTP for applications, CI and people."""

from __future__ import annotations

from .._extras import needs

with needs("the registry server"):
    from .app import create_app

__all__ = ["create_app"]
