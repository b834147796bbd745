"""The cache key: a stable hash of everything that can change an answer, and nothing else.

Covered: the endpoint; the routing plan as ``Plan.describe()`` gives it (providers, custom
hosts, override params, provider options; never keys, weights or a load-balance pick); the
request body with every parameter, unknown ones included (``stream: false`` and a missing
``stream`` are the same request); the values of headers the plan's targets forward upstream;
the namespace. Not covered: secrets, the trace id, ``x-portkey-metadata`` and the body fields
named in ``ignore_params``.

Tenant isolation: the API keys of the plan's targets are hashed into a partition that prefixes
the key, so callers with different keys never share entries; the keys themselves are never
stored. The partition is an HMAC under the deployment secret (``hookgate.secrets``), so whoever
can read the backend cannot confirm a guessed key offline. With isolation off every caller
shares the partition ``shared``.
"""

from __future__ import annotations

from collections.abc import Collection
from hashlib import blake2b
from typing import Any

import orjson
from hookgate import RequestContext
from hookgate.secrets import keyed_digest

__all__ = ["Unkeyable", "cache_key"]

# Bump when the key material or the entry format changes: old entries then simply miss.
_VERSION = b"hookgate-cache/2\0"
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


class Unkeyable(Exception):
    """The request holds something that has no stable JSON form: it is not cached."""


def cache_key(
    ctx: RequestContext,
    *,
    ignore_params: Collection[str],
    isolate_tenants: bool,
    secret: bytes,
) -> str:
    """``<partition>:<digest>`` for ``ctx``; raises :class:`Unkeyable` when it cannot be keyed."""
    body: dict[str, Any] = ctx.body
    if "stream" in body or (ignore_params and not body.keys().isdisjoint(ignore_params)):
        body = {k: v for k, v in body.items() if k != "stream" and k not in ignore_params}
    forwarded: dict[str, str] | None = None
    keys: set[str] | None = set() if isolate_tenants else None
    for target in ctx.plan.leaves():
        if keys is not None:
            keys.add(target.api_key or "")
        if target.forward_headers:
            forwarded = {**(forwarded or {}), **ctx.forwarded_headers(target)} or None
    try:
        material = orjson.dumps(
            (
                ctx.endpoint,
                ctx.stream,
                ctx.cache_namespace,
                ctx.plan.describe(),
                forwarded,
                body,
            ),
            option=_SORTED,
        )
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise Unkeyable(str(exc)) from exc
    digest = blake2b(_VERSION, digest_size=20)
    digest.update(material)
    return f"{_partition(keys, secret)}:{digest.hexdigest()}"


def _partition(keys: set[str] | None, secret: bytes) -> str:
    if keys is None:
        return "shared"
    return keyed_digest(secret, "hookgate-cache/tenant", *sorted(keys))
