"""Every hook runs in [gateway] plugins order, each implementation awaited before the next,
whether it is sync or async; wrappers work where pluggy can honour them and are refused at
load time elsewhere; the core's calls go through pluggy, so a monitor sees all of them."""

from __future__ import annotations

import gc
import warnings

import pytest
from hookgate import BadRequestError, Gateway, SettingsError

from tests.core import hook_order_plugins as plugins

MODULE = "tests.core.hook_order_plugins"
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def _fresh_calls():
    plugins.CALLS.clear()
    plugins.OnErrorWrapper.seen.clear()
    yield
    plugins.CALLS.clear()


def mixed(write_toml, extra: str = "", names: str = '"a", "b", "c", "flaky"') -> Gateway:
    return Gateway.from_toml(
        write_toml(
            f"""
            [gateway]
            plugins = [{names}]
            default_provider = "flaky"

            [plugins.a]
            use = "{MODULE}:AsyncRecorder"
            label = "a"

            [plugins.b]
            use = "{MODULE}:SyncRecorder"
            label = "b"
            decide_retry = true

            [plugins.c]
            use = "{MODULE}:AsyncRecorder"
            label = "c"

            [plugins.flaky]
            use = "{MODULE}:FlakyProvider"
            {extra}
            """
        )
    )


def calls_of(hook: str) -> list[str]:
    return [label for label, name in plugins.CALLS if name == hook]


async def test_sync_and_async_implementations_run_in_listed_order_on_every_hook(write_toml):
    gw = mixed(write_toml)
    async with gw:
        answer = await gw.chat.completions.create(model="m", messages=HELLO)
        problems = await gw.readiness()
    assert answer.choices[0].message.content == "second call"
    assert answer.hookgate.retry_attempt_count == 1
    abc = ["a", "b", "c"]
    for hook in ("startup", "pre_request", "cache_lookup", "post_response", "ready", "shutdown"):
        assert calls_of(hook) == abc, hook
    # Claiming hooks: each call walks the same order (two calls: the failure and the retry).
    assert calls_of("call_provider") == abc + abc
    # b decided (a retry), so c's on_error is not asked: firstresult, in order.
    assert calls_of("on_error") == ["a", "b"]
    assert problems == ["b: not ready on purpose"]
    # And the phases themselves are in the documented order.
    phases = [name for _, name in plugins.CALLS]
    firsts = [phases.index(h) for h in ("startup", "pre_request", "cache_lookup", "post_response")]
    assert firsts == sorted(firsts)


async def test_a_sync_pre_request_raising_leaves_no_coroutine_unawaited(write_toml):
    gw = Gateway.from_toml(
        write_toml(
            f"""
            [gateway]
            plugins = ["mock", "a", "raising", "c"]
            default_provider = "mock"

            [plugins.a]
            use = "{MODULE}:AsyncRecorder"
            label = "a"

            [plugins.raising]
            use = "{MODULE}:RaisingSync"

            [plugins.c]
            use = "{MODULE}:AsyncRecorder"
            label = "c"
            """
        )
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with gw:
            with pytest.raises(BadRequestError, match="rejected by a sync pre_request"):
                await gw.chat.completions.create(model="m", messages=HELLO)
        gc.collect()
    assert [w for w in caught if "never awaited" in str(w.message)] == []
    # a ran to its end before the raise; c was never called (so no coroutine was made).
    assert [c for c in plugins.CALLS if c[1] == "pre_request"] == [
        ("a", "pre_request"),
        ("raising", "pre_request"),
    ]
    assert calls_of("post_response") == ["a", "c"]  # observers still see the failure


def test_a_wrapper_of_an_awaited_hook_is_refused_at_load_time(write_toml):
    path = write_toml(
        f"""
        [gateway]
        plugins = ["mock", "wrapping"]

        [plugins.wrapping]
        use = "{MODULE}:PreRequestWrapper"
        """
    )
    with pytest.raises(SettingsError) as err:
        Gateway.from_toml(path)
    message = str(err.value)
    assert "plugin 'wrapping' implements pre_request as a wrapper (wrapper=True)" in message
    assert "awaits each pre_request implementation before calling the next" in message


async def test_a_wrapper_of_on_error_runs_as_pluggy_defines(write_toml):
    gw = mixed(
        write_toml,
        extra=f'\n[plugins.watch]\nuse = "{MODULE}:OnErrorWrapper"\n',
        names='"watch", "a", "b", "c", "flaky"',
    )
    async with gw:
        await gw.chat.completions.create(model="m", messages=HELLO)
    [decision] = plugins.OnErrorWrapper.seen
    assert decision.action == "retry" and decision.last


async def test_a_monitor_sees_every_hook_the_core_calls(write_toml):
    gw = mixed(write_toml)
    seen: list[tuple[str, list[str]]] = []

    def before(hook_name, impls, kwargs):
        seen.append((hook_name, [impl.plugin_name for impl in impls]))

    undo = gw.hooks.monitor(before, lambda *args: None)
    try:
        async with gw:
            await gw.chat.completions.create(model="m", messages=HELLO)
            await gw.readiness()
    finally:
        undo()
    for hook in ("startup", "pre_request", "cache_lookup", "post_response", "ready", "shutdown"):
        assert [names for name, names in seen if name == hook] == [["a"], ["b"], ["c"]], hook
    assert ("on_error", ["c", "b", "a"]) in seen  # one pluggy call, LIFO impl list
