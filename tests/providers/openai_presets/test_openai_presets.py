"""OpenAI-compatible presets on the openai provider, against loopback fakes only."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from aiohttp import web
from hookgate import CallOptions, ProviderError, SettingsError
from hookgate.errors import UpstreamConnectionError
from hookgate_openai import PRESETS, Plugin

from tests.support.fake_openai import Reply, chat_completion
from tests.support.servers import free_port

HELLO = [{"role": "user", "content": "hello"}]

EXPECTED = {
    "openai": "https://api.openai.com/v1",
    "lingyi": "https://api.lingyiwanwu.com/v1",
    "deepseek": "https://api.deepseek.com",
    "groq": "https://api.groq.com/openai/v1",
    "mistral-ai": "https://api.mistral.ai/v1",
    "together-ai": "https://api.together.xyz/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "ollama": "http://localhost:11434/v1",
    "vllm": "http://localhost:8000/v1",
}
ALIASES = {"01-ai": "lingyi", "yi": "lingyi"}
KEYLESS = {"ollama", "vllm"}


class AnyPath:
    """A fake OpenAI-compatible server answering chat completions under any path prefix."""

    def __init__(self, thread) -> None:
        self.thread = thread
        self.port = free_port()
        self.seen: list[tuple[str, dict[str, str]]] = []

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AnyPath:
        async def answer(request: web.Request) -> web.Response:
            self.seen.append((request.path, {k.lower(): v for k, v in request.headers.items()}))
            return web.json_response(chat_completion(await request.json()))

        app = web.Application()
        app.router.add_post("/{prefix:.*}", answer)

        async def begin() -> None:
            self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        self.thread.run(begin())
        return self

    def stop(self) -> None:
        self.thread.run(self.runner.cleanup())


@pytest.fixture
def any_path(server_thread):
    fake = AnyPath(server_thread).start()
    yield fake
    fake.stop()


@pytest.fixture
async def gw(make_gateway, fake_openai, monkeypatch):
    monkeypatch.setenv("TEST_LINGYI_KEY", "yi-key-from-env")
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["openai"]
        [plugins.openai]
        base_url = "{fake_openai.url}"
        api_key = "sk-openai-only"
        [plugins.openai.upstreams.lingyi]
        base_url = "{fake_openai.url}"
        api_key = "${{TEST_LINGYI_KEY}}"
        [plugins.openai.upstreams.deepseek]
        base_url = "{fake_openai.url}"
        [plugins.openai.upstreams.gpu-box]
        base_url = "{fake_openai.url}"
        auth = "none"
        aliases = ["Box"]
        headers = {{ "x-box" = "1" }}
    """)
    async with gateway:
        yield gateway


def test_the_preset_table_and_aliases():
    assert dict(Plugin.presets) == EXPECTED
    assert dict(Plugin.aliases) == ALIASES
    assert set(Plugin.providers) == set(EXPECTED) | set(ALIASES)
    assert {name for name, preset in PRESETS.items() if preset.auth == "none"} == KEYLESS


@pytest.mark.parametrize("name", [*EXPECTED, *ALIASES])
async def test_each_preset_and_alias_sends_its_auth_to_a_custom_host(
    make_gateway, fake_openai, name
):
    gateway = make_gateway("""
        [gateway]
        plugins = ["openai"]
    """)
    async with gateway:
        answer = await gateway.chat.completions.create(
            model="m",
            messages=HELLO,
            config={"provider": name, "api_key": f"key-{name}", "custom_host": fake_openai.url},
        )
    assert answer.choices[0].message.content == "fake: hello"
    assert answer.hookgate.provider == ALIASES.get(name, name)  # aliases report the slug
    [call] = fake_openai.calls()
    if ALIASES.get(name, name) in KEYLESS:
        assert "authorization" not in call.headers  # a local server: the key stays home
    else:
        assert call.headers["authorization"] == f"Bearer key-{name}"


@pytest.mark.parametrize("name", list(EXPECTED))
async def test_each_preset_keeps_its_base_path(make_gateway, any_path, name):
    path = urlsplit(EXPECTED[name]).path
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["openai"]
        [plugins.openai.upstreams.{name}]
        base_url = "{any_path.host}{path}"
        api_key = "k"
    """)
    async with gateway:
        await gateway.chat.completions.create(model="m", messages=HELLO, config={"provider": name})
    [(seen_path, headers)] = any_path.seen
    assert seen_path == f"{path}/chat/completions"
    assert headers["authorization"] == "Bearer k"


async def test_a_presets_key_comes_from_its_own_table(gw, fake_openai):
    await gw.chat.completions.create(model="yi-large", messages=HELLO, config={"provider": "yi"})
    await gw.chat.completions.create(model="m", messages=HELLO, config={"provider": "openai"})
    await gw.chat.completions.create(model="m", messages=HELLO, config={"provider": "deepseek"})
    yi, oa, deepseek = fake_openai.calls()
    assert yi.headers["authorization"] == "Bearer yi-key-from-env"
    assert oa.headers["authorization"] == "Bearer sk-openai-only"
    # openai's key is never sent to another vendor: deepseek has none configured.
    assert "authorization" not in deepseek.headers


async def test_the_callers_key_goes_to_the_preset_it_named(gw, fake_openai):
    await gw.chat.completions.create(
        model="m", messages=HELLO, options=CallOptions(provider="LINGYI", api_key="caller-key")
    )
    assert fake_openai.calls()[0].headers["authorization"] == "Bearer caller-key"


async def test_a_deployment_declares_its_own_upstream(gw, fake_openai):
    assert {"gpu-box", "box"} <= gw.providers
    answer = await gw.chat.completions.create(
        model="m",
        messages=HELLO,
        options=CallOptions(provider="box", api_key="placeholder"),
    )
    assert answer.choices[0].message.content == "fake: hello"
    [call] = fake_openai.calls()
    assert call.headers["x-box"] == "1"
    assert "authorization" not in call.headers  # auth = "none"


async def test_errors_name_the_preset(gw, fake_openai):
    fake_openai.script(Reply(status=429, headers={"retry-after": "1"}))
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO, config={"provider": "deepseek"})
    assert err.value.http_status == 429 and err.value.retry_after == 1.0
    body = err.value.to_dict()
    assert body["provider"] == "deepseek"
    assert body["error"]["message"] == "deepseek error: fake upstream error 429"


async def test_a_stream_cut_midway_names_the_preset(gw, fake_openai):
    fake_openai.script(Reply(drop_after=2))
    stream = await gw.chat.completions.create(
        model="m", messages=HELLO, stream=True, config={"provider": "lingyi"}
    )
    with pytest.raises(UpstreamConnectionError) as err:
        async for _ in stream:
            pass
    assert err.value.to_dict()["provider"] == "lingyi"


async def test_a_preset_stream_passes_through(gw, fake_openai):
    stream = await gw.chat.completions.create(
        model="m",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        config={"provider": "01-ai"},
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "fake: hello"
    assert chunks[-1].usage.total_tokens == 3


def test_an_unknown_upstream_needs_a_base_url_and_bad_keys_are_named(make_gateway):
    with pytest.raises(SettingsError, match=r"upstreams.my-llm\] is not a preset"):
        make_gateway("""
            [gateway]
            plugins = ["openai"]
            [plugins.openai.upstreams.my-llm]
            api_key = "k"
        """)
    with pytest.raises(SettingsError, match=r"upstreams.groq.apikey: Extra inputs"):
        make_gateway("""
            [gateway]
            plugins = ["openai"]
            [plugins.openai.upstreams.groq]
            apikey = "k"
        """)


def test_openai_sdk_through_hookgate_serve_to_a_preset(make_gateway, fake_openai, serve):
    import openai

    gateway = make_gateway("""
        [gateway]
        plugins = ["openai"]
    """)
    with serve(gateway) as server:
        client = openai.OpenAI(
            base_url=f"{server.url}/v1",
            api_key="yi-caller-key",
            default_headers={"x-portkey-provider": "yi", "x-portkey-custom-host": fake_openai.url},
            max_retries=0,
        )
        raw = client.chat.completions.with_raw_response.create(model="yi-lightning", messages=HELLO)
        fake_openai.script(Reply(status=503))
        with pytest.raises(openai.InternalServerError) as err:
            client.chat.completions.create(model="yi-lightning", messages=HELLO)
    assert raw.parse().choices[0].message.content == "fake: hello"
    assert raw.headers["x-portkey-provider"] == "lingyi"  # the alias resolves to the slug
    assert fake_openai.calls()[0].headers["authorization"] == "Bearer yi-caller-key"
    assert err.value.status_code == 503
    assert err.value.body["message"] == "lingyi error: fake upstream error 503"
