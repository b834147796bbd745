"""A fake Azure OpenAI resource: the fake OpenAI's answers on Azure's deployment URLs.

Azure serves OpenAI's bodies under
``/openai/deployments/{deployment}/{chat/completions,completions,embeddings}?api-version=...``
(and ``/openai/models``, and the Responses API at ``/openai/responses``), authenticated by an ``api-key`` header or an Entra ID
``Authorization: Bearer`` token. Requests without ``api-version`` get Azure's 404, without a
credential Azure's 401. Everything else (scripting, ``Reply``, streams, drops) is
:class:`~tests.support.fake_openai.FakeOpenAI`'s.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .openai import FakeOpenAI, Received

__all__ = ["FakeAzureOpenAI", "azure_error"]


def azure_error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class FakeAzureOpenAI(FakeOpenAI):
    """The fake; ``fake.url`` is what a ``custom_host`` or ``base_url`` points at."""

    api_versions: list[str]
    """The ``api-version`` of every request that had one, in order."""

    @property
    def url(self) -> str:
        return f"{self.host}/openai"

    def azure_calls(self, endpoint: str = "chat/completions") -> list[Received]:
        return [r for r in self.requests if r.path.endswith("/" + endpoint)]

    def start(self) -> FakeAzureOpenAI:
        self.api_versions = []
        app = web.Application()
        base = "/openai/deployments/{deployment}"
        app.router.add_post(base + "/chat/completions", self._azure(self._chat))
        app.router.add_post(base + "/completions", self._azure(self._completions))
        app.router.add_post(base + "/embeddings", self._azure(self._embeddings))
        app.router.add_get("/openai/models", self._azure(self._models))
        # The Responses API is per resource (the model names the deployment), preview versions.
        app.router.add_post("/openai/responses", self._azure(self._responses))
        app.router.add_get("/openai/responses/{response_id}", self._azure(self._stored_response))
        app.router.add_delete("/openai/responses/{response_id}", self._azure(self._stored_response))
        self.serve(app)
        return self

    def _azure(self, handler: Any) -> Any:
        async def check(request: web.Request) -> web.StreamResponse:
            if "api-version" not in request.query:
                return web.json_response(azure_error(404, "404", "Resource not found"), status=404)
            self.api_versions.append(request.query["api-version"])
            if "api-key" not in request.headers and "authorization" not in request.headers:
                return web.json_response(
                    azure_error(
                        401,
                        "401",
                        "Access denied due to missing subscription key.",
                    ),
                    status=401,
                )
            return await handler(request)

        return check
