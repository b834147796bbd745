"""A kit for testing hookgate plugins: fake upstreams and embedded gateways.

Installing ``hookgate[testing]`` makes this a pytest plugin (entry point ``pytest11``), so a
plugin's tests get these fixtures without a conftest:

``hookgate_gateway``
    A factory: ``hookgate_gateway(toml_text)`` writes the (dedented) text as
    ``plugins.toml`` in the test's ``tmp_path`` and returns a :class:`~hookgate.Gateway`
    built from it (use it as ``async with``). Local plugins named with ``use =
    "module:object"`` resolve relative to that folder, as in a deployment.
``fake_openai``, ``fake_anthropic``, ``fake_gemini``
    Fake upstreams speaking each provider's wire format (JSON and SSE) on a free loopback
    port: ``.url`` for ``base_url``, ``.script(503, Reply(...), ...)`` to make the next calls
    fail, drop, stall or answer as told, ``.calls()`` for what they received.
``serve_gateway``
    ``with serve_gateway(gw) as server:`` runs ``hookgate serve``'s HTTP app for ``gw`` on
    a free loopback port (``server.url``); needs the ``server`` extra.
``server_thread``
    The background event loop (one per session) the servers above run in.

Everything is also importable for use outside pytest: :class:`FakeOpenAI`,
:class:`FakeAnthropic`, :class:`FakeGemini`, :class:`ServerThread`, :func:`gateway_from_toml`.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from .servers import FakeServer, ServerThread, UvicornServer, free_port, serving

if TYPE_CHECKING:
    from ..gateway import Gateway

__all__ = [
    "FakeServer",
    "ServerThread",
    "UvicornServer",
    "free_port",
    "gateway_from_toml",
    "serving",
]


def gateway_from_toml(text: str, folder: str | os.PathLike[str]) -> Gateway:
    """Write ``text`` (dedented) as ``folder/plugins.toml`` and build a Gateway from it."""
    from ..gateway import Gateway

    path = Path(folder) / "plugins.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return Gateway.from_toml(path)


def __getattr__(name: str) -> object:
    # The fakes import their provider SDKs (request validation) only when asked for.
    fakes = {
        "FakeOpenAI": "openai",
        "Reply": "openai",
        "FakeAnthropic": "anthropic",
        "FakeGemini": "gemini",
        "GeminiReply": "gemini",
        "FakeAzureOpenAI": "azure_openai",
    }
    if name in fakes:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{fakes[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
