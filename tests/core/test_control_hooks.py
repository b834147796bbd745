"""The hooks that let a plugin hold gateway keys, configs and virtual keys beside plugins.toml:
``authenticate``, ``resolve_config``, ``resolve_virtual_key``, driven by a test plugin."""

from __future__ import annotations

import httpx
import pytest
from hookgate import Gateway, RequestContext, hookimpl
from hookgate.auth import Principal
from hookgate.config import StoredConfig, parse_config
from hookgate.errors import AuthenticationError, ConfigError, SettingsError
from hookgate.settings import VirtualKey

HELLO = [{"role": "user", "content": "hello"}]
BODY = {"model": "m", "messages": HELLO}


class Store:
    """Keys, configs and virtual keys held in memory, as the control plane's snapshot is."""

    def __init__(self) -> None:
        self.versions = {
            "pc-stored": {
                "v1": parse_config({"provider": "mock", "override_params": {"model": "one"}}),
                "v2": parse_config({"provider": "mock", "override_params": {"model": "two"}}),
            },
            "pc-vk": {"v1": parse_config({"virtual_key": "vk-stored"})},
        }
        self.current = {"pc-stored": "v2", "pc-vk": "v1"}
        self.seen: list[RequestContext] = []
        self.asked: list[tuple[str, str | None, str | None]] = []

    @hookimpl
    def authenticate(self, token, headers):
        if token == "hg-member":
            return Principal(key_id="k1", name="app", workspace="team-a", role="member")
        if token is None or not token.startswith("hg-"):
            raise AuthenticationError("unknown gateway key")
        return None

    @hookimpl
    def resolve_config(self, config_id, version, principal):
        self.asked.append((config_id, version, principal.workspace if principal else None))
        versions = self.versions.get(config_id)
        if versions is None:
            return None
        version = version or self.current[config_id]
        if version not in versions:
            raise ConfigError(f"config {config_id!r} has no version {version!r}")
        return StoredConfig(config_id, version, versions[version], workspace="team-a")

    @hookimpl
    def resolve_virtual_key(self, slug, principal):
        if slug == "vk-stored":
            return VirtualKey(provider="mock", api_key="sk-stored", custom_host=None)
        return None

    @hookimpl
    def pre_request(self, ctx):
        self.seen.append(ctx)


@pytest.fixture
async def gw():
    store = Store()
    settings = {
        "gateway": {"plugins": ["mock"], "default_provider": "mock"},
        "configs": {"pc-toml": {"provider": "mock", "override_params": {"model": "toml"}}},
    }
    async with Gateway(settings) as gateway:
        gateway.register(store, "store")
        yield gateway, store


async def test_a_stored_config_and_a_pinned_version(gw):
    gateway, store = gw
    answer = await gateway.chat.completions.create(model="m", messages=HELLO, config="pc-stored")
    assert answer.model == "two"
    assert store.seen[-1].plan.config_id == "pc-stored"
    assert store.seen[-1].plan.config_version == "v2"
    answer = await gateway.chat.completions.create(model="m", messages=HELLO, config="pc-stored@v1")
    assert answer.model == "one"
    assert store.seen[-1].plan.config_version == "v1"
    # The plan of a version is reused, but the store is asked on every request: a new
    # current version is live at once.
    store.current["pc-stored"] = "v1"
    answer = await gateway.chat.completions.create(model="m", messages=HELLO, config="pc-stored")
    assert answer.model == "one"
    assert len(store.asked) == 3


async def test_plugins_toml_configs_win_and_keep_no_versions(gw):
    gateway, store = gw
    answer = await gateway.chat.completions.create(model="m", messages=HELLO, config="pc-toml")
    assert answer.model == "toml"
    assert store.asked == []
    assert store.seen[-1].plan.config_version is None
    with pytest.raises(ConfigError, match=r"declared in plugins\.toml, which keeps no versions"):
        await gateway.chat.completions.create(model="m", messages=HELLO, config="pc-toml@1")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("pc-nope", "unknown config id 'pc-nope'"),
        ("pc-stored@v9", "has no version 'v9'"),
        ("pc-stored@", "malformed"),
    ],
)
async def test_bad_ids_are_400(gw, config, message):
    gateway, _ = gw
    with pytest.raises(ConfigError, match=message) as err:
        await gateway.chat.completions.create(model="m", messages=HELLO, config=config)
    assert err.value.http_status == 400


async def test_a_stored_virtual_key(gw):
    gateway, store = gw
    await gateway.chat.completions.create(model="m", messages=HELLO, config="pc-vk")
    target = next(store.seen[-1].plan.leaves())
    assert (target.provider, target.api_key, target.virtual_key) == (
        "mock",
        "sk-stored",
        "vk-stored",
    )
    await gateway.chat.completions.create(
        model="m", messages=HELLO, options={"virtual_key": "vk-stored"}
    )
    assert next(store.seen[-1].plan.leaves()).api_key == "sk-stored"


def test_async_resolvers_are_refused():
    class Async:
        @hookimpl
        async def resolve_config(self, config_id, version, principal):
            return None

    gateway = Gateway({"gateway": {"plugins": ["mock"]}})
    with pytest.raises(SettingsError, match="resolve_config with 'async def'"):
        gateway.register(Async(), "async")


def test_the_principal_reaches_the_context_over_http(make_gateway, serve):
    gateway = make_gateway("""
        [gateway]
        plugins = ["mock"]
        default_provider = "mock"
        [server]
        api_keys = ["operator-key"]
    """)
    store = Store()
    gateway.register(store, "store")
    with serve(gateway) as server:
        url = f"{server.url}/v1/chat/completions"
        ok = httpx.post(url, json=BODY, headers={"x-portkey-api-key": "hg-member"})
        assert ok.status_code == 200
        principal = store.seen[-1].principal
        assert (principal.key_id, principal.workspace, principal.role) == ("k1", "team-a", "member")

        operator = httpx.post(url, json=BODY, headers={"x-portkey-api-key": "operator-key"})
        assert operator.status_code == 200
        assert store.seen[-1].principal.role == "admin"
        assert store.seen[-1].principal.source == "plugins.toml"

        for headers in ({}, {"x-portkey-api-key": "wrong"}):
            refused = httpx.post(url, json=BODY, headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["type"] == "authentication_error"
        # A key the plugin does not claim (None) falls back to [server] api_keys: a 401.
        assert httpx.post(url, json=BODY, headers={"x-portkey-api-key": "hg-x"}).status_code == 401
