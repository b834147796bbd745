"""A local plugin for the process tests: ``GET /_worker`` answers the worker's pid, so a test
can hold one connection to each worker of ``hookgate serve``."""

from __future__ import annotations

import os
from typing import Any

from hookgate import hookimpl
from hookgate.server.gate import open_route
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class WorkerId:
    @hookimpl
    def register_routes(self, gateway: Any) -> list[Route]:
        async def worker(request: Request) -> JSONResponse:
            return JSONResponse({"pid": os.getpid()})

        # Open at the gateway-key gate: a pid is no secret, and tests pin workers before keys.
        return [open_route(Route("/_worker", worker, methods=["GET"]))]
