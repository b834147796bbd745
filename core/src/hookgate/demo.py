"""``hookgate demo``: requests through the enabled plugins, against the mock provider.

Each scenario shows which plugins each hook reached, what came back and how long each phase
took. Scenarios that need a plugin the deployment does not enable are listed as skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .gateway import CallOptions, ChunkStream, Gateway

__all__ = ["run_demo"]

Echo = Callable[[str], None]

_FAILING_TWICE = {"fail_status": 503, "fail_times": 2, "retry_after": 0.05}


@dataclass
class Scenario:
    title: str
    question: str
    config: dict[str, Any] | None = None
    needs: tuple[str, ...] = ()
    stream: bool = False
    repeat: int = 1
    paraphrase: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


SCENARIOS = [
    Scenario("a chat completion", "What does a gateway do?"),
    Scenario("a streamed chat completion", "Stream me a short answer.", stream=True),
    Scenario(
        "retry: the upstream fails twice with 503, then answers",
        "Are retries transparent?",
        config={"retry": {"attempts": 3}, "provider": "mock", "mock": _FAILING_TWICE},
        needs=("retry",),
    ),
    Scenario(
        "fallback: the first target always fails, the second answers",
        "Who answers when the first provider is down?",
        config={
            "strategy": {"mode": "fallback"},
            "targets": [
                {"provider": "mock", "mock": {"fail_status": 503}},
                {"provider": "mock", "override_params": {"model": "mock-backup"}},
            ],
        },
        needs=("fallback",),
    ),
    Scenario(
        "cache: the same question twice",
        "What is the capital of France?",
        config={"cache": {"mode": "simple", "max_age": 60}},
        needs=("cache",),
        repeat=2,
    ),
    Scenario(
        "semantic cache: a question, then a paraphrase of it",
        "How do I reset my password?",
        paraphrase="How can I reset my password?",
        config={"cache": {"mode": "semantic", "max_age": 60}},
        needs=("semantic-cache",),
    ),
]


async def run_demo(gateway: Gateway, echo: Echo) -> None:
    if "mock" not in gateway.providers:
        echo('The demo needs the mock provider: add "mock" to [gateway] plugins.')
        return
    enabled = [p.name for p in gateway.plugins]
    echo(f"hookgate demo: plugins in hook order: {', '.join(enabled)}")
    for hook in ("pre_request", "cache_lookup", "call_provider", "on_error", "post_response"):
        echo(f"  {hook:<14} {', '.join(gateway.hooks.implementers(hook)) or '-'}")
    async with gateway:
        for number, scenario in enumerate(SCENARIOS, 1):
            missing = [name for name in scenario.needs if name not in enabled]
            echo("")
            if missing:
                echo(f"{number}. {scenario.title}: skipped ({', '.join(missing)} not enabled)")
                continue
            echo(f"{number}. {scenario.title}")
            questions = [scenario.question] * scenario.repeat
            if scenario.paraphrase:
                questions.append(scenario.paraphrase)
            for question in questions:
                await _ask(gateway, scenario, question, echo)


async def _ask(gateway: Gateway, scenario: Scenario, question: str, echo: Echo) -> None:
    answer = await gateway.chat.completions.create(
        model="mock-1",
        messages=[{"role": "user", "content": question}],
        stream=scenario.stream,
        config=scenario.config,
        options=CallOptions(provider="mock", metadata={"demo": "true"}),
    )
    if isinstance(answer, ChunkStream):
        parts = []
        async for chunk in answer:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        text = "".join(parts) + f"  ({len(parts)} chunks)"
    else:
        text = answer.choices[0].message.content or ""
    outcome = answer.hookgate
    echo(f"   ask:    {question}")
    echo(f"   answer: {text}")
    echo(
        f"   by {outcome.provider or 'cache'} at {outcome.last_used_option}; "
        f"cache {outcome.cache_status}; retries {outcome.retry_attempt_count}"
    )
    echo("   phases: " + ", ".join(f"{k} {v * 1000:.3f} ms" for k, v in outcome.timings.items()))
    for attempt in outcome.attempts:
        echo(
            f"   attempt {attempt.path} #{attempt.retry}: status {attempt.status}"
            f"{' (' + attempt.error + ')' if attempt.error else ''}, waited "
            f"{attempt.delay * 1000:.0f} ms, took {(attempt.latency or 0) * 1000:.2f} ms"
        )
