"""The azure-openai provider against a fake Azure resource, checked with openai.AzureOpenAI."""

from __future__ import annotations

import openai
import pytest
from hookgate import CallOptions, ConfigError, ProviderError

from tests.support.fake_azure_openai import FakeAzureOpenAI
from tests.support.fake_openai import Reply

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def fake_azure(server_thread):
    fake = FakeAzureOpenAI(server_thread).start()
    yield fake
    fake.stop()


@pytest.fixture
async def gw(make_gateway, fake_azure):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["azure-openai"]
        default_provider = "azure-openai"
        [plugins.azure-openai]
        base_url = "{fake_azure.url}"
        deployment_id = "gpt4o-prod"
        api_version = "2024-10-21"
        api_key = "azure-deployment-key"
        headers = {{ "x-team" = "core" }}
        [virtual_keys.azure-eu]
        provider = "azure-openai"
        api_key = "azure-vk-key"
        deployment_id = "eu-deployment"
        api_version = "2025-01-01-preview"
    """)
    async with gateway:
        yield gateway


def test_the_fake_answers_what_the_azure_sdk_sends(fake_azure):
    client = openai.AzureOpenAI(
        azure_endpoint=fake_azure.host, api_version="2024-10-21", api_key="k", max_retries=0
    )
    answer = client.chat.completions.create(model="my-deployment", messages=HELLO)
    assert answer.choices[0].message.content == "fake: hello"
    [call] = fake_azure.azure_calls()
    assert call.path == "/openai/deployments/my-deployment/chat/completions"
    assert call.headers["api-key"] == "k"


async def test_chat_goes_to_the_deployment_url_with_api_key_and_passes_through(gw, fake_azure):
    answer = await gw.chat.completions.create(model="gpt-4o", messages=HELLO, seed=3)
    assert answer.choices[0].message.content == "fake: hello"
    assert answer.system_fingerprint == "fp_fake"
    [call] = fake_azure.requests
    assert call.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert call.json == {"model": "gpt-4o", "messages": HELLO, "seed": 3}
    assert call.headers["api-key"] == "azure-deployment-key"
    assert call.headers["x-team"] == "core"
    assert "authorization" not in call.headers
    assert fake_azure.api_versions == ["2024-10-21"]


async def test_target_options_from_a_config_win(gw, fake_azure):
    config = {
        "provider": "azure-openai",
        "api_key": "target-key",
        "deploymentId": "camel-deployment",  # Portkey's camelCase works too
        "api_version": "2024-06-01",
    }
    await gw.chat.completions.create(model="gpt-4o", messages=HELLO, config=config)
    call = fake_azure.requests[0]
    assert call.path == "/openai/deployments/camel-deployment/chat/completions"
    assert call.headers["api-key"] == "target-key"
    assert fake_azure.api_versions == ["2024-06-01"]


async def test_virtual_key_fields_choose_the_deployment(gw, fake_azure):
    await gw.chat.completions.create(
        model="gpt-4o", messages=HELLO, options=CallOptions(virtual_key="azure-eu")
    )
    call = fake_azure.requests[0]
    assert call.path == "/openai/deployments/eu-deployment/chat/completions"
    assert call.headers["api-key"] == "azure-vk-key"
    assert fake_azure.api_versions == ["2025-01-01-preview"]


async def test_resource_name_builds_the_url_and_custom_host_overrides_it(make_gateway, fake_azure):
    gateway = make_gateway("""
        [gateway]
        plugins = ["azure-openai"]
        [plugins.azure-openai]
        api_key = "k"
    """)
    async with gateway:
        # Without a custom host, the URL is https://{resource_name}.openai.azure.com/openai;
        # the custom host replaces it (loopback here, so nothing leaves the machine).
        plugin = gateway.plugin("azure-openai")
        ctx = gateway.context(
            "chat.completions",
            {"model": "m", "messages": HELLO},
            config={"provider": "azure-openai", "resource_name": "contoso"},
        )
        assert plugin.base(ctx.plan.root) == "https://contoso.openai.azure.com/openai"
        await gateway.chat.completions.create(
            model="dep-from-model",
            messages=HELLO,
            config={
                "provider": "azure-openai",
                "resource_name": "contoso",
                "custom_host": fake_azure.url,
                "api_key": "caller-key",  # the plugin's own key never goes to a chosen host
            },
        )
        with pytest.raises(ConfigError, match="azure-openai needs a resource_name"):
            await gateway.chat.completions.create(
                model="m", messages=HELLO, config={"provider": "azure-openai"}
            )
    # No deployment configured: the request's model names it.
    assert fake_azure.requests[0].path == "/openai/deployments/dep-from-model/chat/completions"
    assert fake_azure.requests[0].headers["api-key"] == "caller-key"


async def test_entra_token_is_sent_as_bearer(gw, fake_azure):
    await gw.chat.completions.create(
        model="gpt-4o",
        messages=HELLO,
        config={"provider": "azure-openai", "azure_ad_token": "entra-token"},
    )
    await gw.chat.completions.create(
        model="gpt-4o",
        messages=HELLO,
        config={"provider": "azure-openai", "api_key": "tok2", "azure_auth_mode": "entra"},
    )
    first, second = fake_azure.requests
    assert first.headers["authorization"] == "Bearer entra-token"
    assert "api-key" not in first.headers
    assert second.headers["authorization"] == "Bearer tok2"


async def test_stream_passes_through(gw, fake_azure):
    stream = await gw.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "fake: hello"
    assert chunks[-1].usage.total_tokens == 3


async def test_embeddings_and_completions_use_their_paths(gw, fake_azure):
    emb = await gw.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(emb.data) == 2
    done = await gw.completions.create(model="instruct", prompt="hi")
    assert done.choices[0].text == "fake: hi"
    assert [r.path for r in fake_azure.requests] == [
        "/openai/deployments/gpt4o-prod/embeddings",
        "/openai/deployments/gpt4o-prod/completions",
    ]


async def test_errors_keep_status_body_and_retry_after(gw, fake_azure):
    fake_azure.script(
        Reply(
            status=429,
            json={"error": {"code": "429", "message": "Rate limit is exceeded."}},
            headers={"x-ms-retry-after-ms": "1500"},
        )
    )
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert err.value.http_status == 429
    assert err.value.retry_after == 1.5
    assert err.value.to_dict()["error"]["message"] == "azure-openai error: Rate limit is exceeded."
    assert err.value.to_dict()["provider"] == "azure-openai"


def test_openai_sdk_through_hookgate_serve_to_azure(make_gateway, fake_azure, serve):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["azure-openai"]
        [plugins.azure-openai]
        base_url = "{fake_azure.url}"
    """)
    with serve(gateway) as server:
        client = openai.OpenAI(
            base_url=f"{server.url}/v1",
            api_key="caller-azure-key",
            default_headers={"x-portkey-provider": "azure-openai"},
            max_retries=0,
        )
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    assert raw.parse().choices[0].message.content == "fake: hello"
    assert raw.headers["x-portkey-provider"] == "azure-openai"
    assert raw.headers["x-request-id"].startswith("req_fake_")
    assert fake_azure.requests[0].headers["api-key"] == "caller-azure-key"
    assert fake_azure.requests[0].path == "/openai/deployments/gpt-4o/chat/completions"
