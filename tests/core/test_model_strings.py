"""Model strings that route: ``@<virtual key>/<model>`` and ``<provider>/<model>``."""

from __future__ import annotations

import openai
import pytest

from tests.support.fake_openai import Reply

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def server(make_gateway, serve, fake_openai):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["mock", "openai"]
        default_provider = "mock"
        [plugins.openai]
        base_url = "{fake_openai.url}"
        [plugins.openai.upstreams.together-ai]
        base_url = "{fake_openai.url}"
        [virtual_keys.openai-prod]
        provider = "openai"
        api_key = "sk-held-by-the-operator"
    """)
    with serve(gateway) as running:
        yield running


def client(server, **headers):
    return openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="sk-caller", max_retries=0, default_headers=headers
    )


def test_provider_slash_model_picks_the_provider_with_the_callers_key(server, fake_openai):
    raw = client(server).chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=HELLO
    )
    assert raw.headers["x-portkey-provider"] == "openai"
    sent = fake_openai.calls()[-1]
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.headers["authorization"] == "Bearer sk-caller"


def test_alias_slash_model_routes_too(server, fake_openai):
    raw = client(server).chat.completions.with_raw_response.create(
        model="Together-AI/meta-llama/Llama-3-8b", messages=HELLO
    )
    assert raw.headers["x-portkey-provider"] == "together-ai"
    assert fake_openai.calls()[-1].json["model"] == "meta-llama/Llama-3-8b"


def test_at_virtual_key_slash_model_uses_the_virtual_key(server, fake_openai):
    raw = client(server).chat.completions.with_raw_response.create(
        model="@openai-prod/gpt-4o", messages=HELLO
    )
    assert raw.headers["x-portkey-provider"] == "openai"
    sent = fake_openai.calls()[-1]
    assert sent.json["model"] == "gpt-4o"
    assert sent.headers["authorization"] == "Bearer sk-held-by-the-operator"


def test_unknown_at_slug_is_a_400(server):
    with pytest.raises(openai.BadRequestError, match="nope"):
        client(server).chat.completions.create(model="@nope/gpt-4o", messages=HELLO)


def test_other_slashed_models_go_through_unchanged(server, fake_openai):
    answer = client(server).chat.completions.create(model="meta-llama/Llama-3-8b", messages=HELLO)
    assert answer.model == "meta-llama/Llama-3-8b"  # the mock (default provider) answered
    assert fake_openai.calls() == []


def test_a_named_provider_keeps_the_model_string(server, fake_openai):
    # With OpenRouter-style ids, "openai/gpt-4o" is a model name of the provider named.
    fake_openai.script(Reply())
    client(server, **{"x-portkey-provider": "together-ai"}).chat.completions.create(
        model="openai/gpt-4o", messages=HELLO
    )
    assert fake_openai.calls()[-1].json["model"] == "openai/gpt-4o"


def test_a_config_naming_a_target_wins(server, fake_openai):
    answer = client(server, **{"x-portkey-config": '{"provider": "mock"}'}).chat.completions.create(
        model="openai/gpt-4o", messages=HELLO
    )
    assert answer.model == "openai/gpt-4o"
    assert fake_openai.calls() == []


def test_a_config_without_targets_lets_the_model_route(server, fake_openai):
    raw = client(
        server, **{"x-portkey-config": '{"retry": {"attempts": 1}}'}
    ).chat.completions.with_raw_response.create(model="openai/gpt-4o", messages=HELLO)
    assert raw.headers["x-portkey-provider"] == "openai"


def test_providers_command_shows_the_rule(tmp_path):
    from click.testing import CliRunner
    from hookgate.cli import cli

    toml = tmp_path / "plugins.toml"
    toml.write_text('[gateway]\nplugins = ["mock"]\n')
    result = CliRunner().invoke(cli, ["providers", "--config", str(toml)])
    assert result.exit_code == 0, result.output
    assert "@<virtual key>/<model>" in result.output
