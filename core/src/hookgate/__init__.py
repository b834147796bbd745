"""hookgate: an OpenAI-compatible AI gateway built from pluggy plugins.

The public API, for apps that embed the gateway and for plugins:

- :class:`Gateway`, :class:`SyncGateway`, :class:`CallOptions`: the embedded API;
- :data:`hookimpl`: the marker for hook implementations (see :mod:`hookgate.hookspecs`);
- :class:`RequestContext`, :class:`Decision`, :class:`Attempt`, :class:`Target`: what hooks get
  and return; :class:`Response`, :class:`StreamResponse`, :class:`SSEEvent`: answers;
- :class:`HTTPProvider`, :class:`HTTPProviderSettings`: the base of HTTP provider plugins;
  :class:`UpstreamClient` (``hookgate.http``): the pooled client they share;
- :mod:`hookgate.errors`: every error, rendered OpenAI-shaped.

Names are imported on first use (PEP 562), so ``import hookgate`` stays cheap for a CLI or an
app that only needs part of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Attempt": "context",
    "Decision": "context",
    "RequestContext": "context",
    "BadRequestError": "errors",
    "ConfigError": "errors",
    "GatewayError": "errors",
    "HookgateError": "errors",
    "ProviderError": "errors",
    "RateLimitError": "errors",
    "SettingsError": "errors",
    "Gauge": "observe",
    "Usage": "observe",
    "CallOptions": "gateway",
    "ChunkStream": "gateway",
    "Gateway": "gateway",
    "SyncGateway": "gateway",
    "hookimpl": "hookspecs",
    "HTTPProvider": "provider",
    "HTTPProviderSettings": "provider",
    "Response": "responses",
    "SSEEvent": "responses",
    "StreamResponse": "responses",
    "Service": "services",
    "Group": "routing",
    "Plan": "routing",
    "Target": "routing",
}

__all__ = [
    "Attempt",
    "BadRequestError",
    "CallOptions",
    "ChunkStream",
    "ConfigError",
    "Decision",
    "Gateway",
    "GatewayError",
    "Gauge",
    "Group",
    "HTTPProvider",
    "HTTPProviderSettings",
    "HookgateError",
    "Plan",
    "ProviderError",
    "RateLimitError",
    "RequestContext",
    "Response",
    "SSEEvent",
    "Service",
    "SettingsError",
    "StreamResponse",
    "SyncGateway",
    "Target",
    "Usage",
    "hookimpl",
]

if TYPE_CHECKING:
    from .context import Attempt, Decision, RequestContext
    from .errors import (
        BadRequestError,
        ConfigError,
        GatewayError,
        HookgateError,
        ProviderError,
        RateLimitError,
        SettingsError,
    )
    from .gateway import CallOptions, ChunkStream, Gateway, SyncGateway
    from .hookspecs import hookimpl
    from .observe import Gauge, Usage
    from .provider import HTTPProvider, HTTPProviderSettings
    from .responses import Response, SSEEvent, StreamResponse
    from .routing import Group, Plan, Target
    from .services import Service


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hookgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
