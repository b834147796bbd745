"""An app's own plugin: a guard that rejects banned words, and an observer that counts answers.

Enable it without packaging, by path, in plugins.toml::

    [gateway]
    plugins = ["mock", "guard"]

    [plugins.guard]
    use = "examples.banned_words:BannedWords"
    words = ["password", "secret"]
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from hookgate import BadRequestError, RequestContext, hookimpl
from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    words: list[str] = Field(min_length=1)
    """Reject a request whose messages contain any of these words (case-insensitive)."""


class BannedWords:
    Settings = Settings

    def __init__(self, settings: Settings) -> None:
        self.pattern = re.compile(
            r"\b(" + "|".join(re.escape(word) for word in settings.words) + r")\b", re.IGNORECASE
        )
        self.answers: Counter[str] = Counter()

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        for message in ctx.body.get("messages") or []:
            content = message.get("content")
            text = content if isinstance(content, str) else str(content)
            if found := self.pattern.search(text):
                raise BadRequestError(
                    f"the request contains the banned word {found.group(1).lower()!r}",
                    code="content_blocked",
                )

    @hookimpl
    async def post_response(self, ctx: RequestContext, response: Any) -> None:
        self.answers[str(ctx.status)] += 1
