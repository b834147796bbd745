"""The deployment files agree with the code and with deploy/shared/plugins.toml: the
environment names, paths, ports and probe routes they use exist where they point."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hookgate.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SHARED = DEPLOY / "shared" / "plugins.toml"
SHARED_BACKENDS = {"REDIS_URL", "DATABASE_URL", "HOOKGATE_CHROMA_URL"}


def shared() -> dict[str, Any]:
    return tomllib.loads(SHARED.read_text())


def required_env() -> set[str]:
    """Variables the shared file reads without a default (hookgate refuses to start without)."""
    return set(re.findall(r"\$\{([A-Z0-9_]+)\}", SHARED.read_text()))


def optional_env() -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+):-", SHARED.read_text()))


def server_settings() -> Any:
    return Settings.model_validate({"server": shared()["server"]}).server


def app_routes() -> set[str]:
    from hookgate import Gateway
    from hookgate.server.app import create_app

    app = create_app(Gateway({"gateway": {"plugins": ["mock"]}}))
    return {route.path for route in app.routes}


def workspace_distributions() -> dict[str, Path]:
    found = {}
    for pyproject in [ROOT / "core" / "pyproject.toml", *ROOT.glob("*/*/pyproject.toml")]:
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if "name" in project:
            found[project["name"]] = pyproject
    return found


def entry_point_names() -> dict[str, str]:
    """plugins.toml name -> the distribution that provides it."""
    names = {}
    for dist, pyproject in workspace_distributions().items():
        project = tomllib.loads(pyproject.read_text())["project"]
        for name in project.get("entry-points", {}).get("hookgate", {}):
            names[name] = dist
    return names


# ---- the shared file ------------------------------------------------------------------


def test_the_shared_file_reads_exactly_the_three_backends_and_enables_what_the_reference_does():
    assert required_env() == SHARED_BACKENDS
    reference = tomllib.loads((ROOT / "plugins.toml").read_text())["gateway"]["plugins"]
    assert shared()["gateway"]["plugins"] == reference


# ---- Dockerfile -------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_dockerfile_is_multi_stage_non_root_compiled_and_checks_health():
    lines = dockerfile()
    stages = [rest for word, rest in lines if word == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS build")
    users = [rest for word, rest in lines if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert "UV_COMPILE_BYTECODE=1" in text and "--compile-bytecode" in text
    health = next(rest for word, rest in lines if word == "HEALTHCHECK")
    port = server_settings().port
    assert f"http://127.0.0.1:{port}/health" in health
    assert "/health" in app_routes()
    cmd = next(rest for word, rest in reversed(lines) if word == "CMD")
    argv = yaml.safe_load(cmd)  # a JSON array
    assert argv[:2] == ["hookgate", "serve"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert int(argv[argv.index("--port") + 1]) == port
    expose = [rest for word, rest in lines if word == "EXPOSE"]
    assert expose == [str(port)]


def test_the_dockerfile_installs_workspace_plugins_covering_the_shared_file():
    lines = dockerfile()
    args = {
        key: value.strip('"')
        for key, value in (
            rest.split("=", 1) for word, rest in lines if word == "ARG" and "=" in rest
        )
    }
    chosen = {re.sub(r"\[.*\]$", "", d) for d in shlex.split(args["PLUGINS"])}
    dists = workspace_distributions()
    assert chosen <= set(dists), chosen - set(dists)
    names = entry_point_names()
    needed = {names[p] for p in shared()["gateway"]["plugins"]}
    assert needed <= chosen, needed - chosen
    assert "hookgate-logging[postgres]" in shlex.split(args["PLUGINS"])  # the shared log store
    for word, rest in lines:  # every COPY from the build context exists
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                if source.startswith("${"):
                    source = args[source[2:-1]]
                assert (ROOT / source).exists(), source
    assert args["CONFIG"] == "deploy/shared/plugins.toml"
    env = next(rest for word, rest in lines if word == "ENV" and "HOOKGATE_CONFIG" in rest)
    assert "HOOKGATE_CONFIG=/etc/hookgate/plugins.toml" in env


# ---- compose ----------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_runs_two_gateways_behind_nginx_with_every_backend():
    services = compose()["services"]
    assert {"gateway-1", "gateway-2", "nginx", "redis", "postgres", "chroma"} <= set(services)
    for name in ("gateway-1", "gateway-2"):
        gateway = services[name]
        env = gateway["environment"]
        assert set(env) >= SHARED_BACKENDS
        assert set(env) - {"REDIS_URL", "DATABASE_URL", "HOOKGATE_CHROMA_URL"} <= optional_env() | {
            "HOOKGATE_MASTER_KEY",
            "HOOKGATE_SECRET",
        }
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["HOOKGATE_CHROMA_URL"] == "http://chroma:8000"
        assert re.match(r"postgresql://hookgate:.+@postgres:5432/hookgate$", env["DATABASE_URL"])
        context = (DEPLOY / gateway["build"]["context"]).resolve()
        assert context == ROOT and (context / gateway["build"]["dockerfile"]).is_file()
        [mount] = gateway["volumes"]
        source, target, _ = mount.split(":")
        assert (DEPLOY / source).resolve() == SHARED
        assert target == "/etc/hookgate/plugins.toml"
        grace = int(gateway["stop_grace_period"].rstrip("s"))
        assert grace > server_settings().graceful_shutdown_s
    postgres = services["postgres"]["environment"]
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("hookgate", "hookgate")
    volumes = compose()["volumes"]
    for name in ("redis", "postgres", "chroma"):
        for mount in services[name]["volumes"]:
            assert mount.split(":")[0] in volumes  # what must persist is on a named volume


def test_the_nginx_config_in_the_repo_balances_the_compose_gateways():
    services = compose()["services"]
    [mount] = services["nginx"]["volumes"]
    source, target, _ = mount.split(":")
    conf = (DEPLOY / source).resolve()
    assert conf == DEPLOY / "nginx" / "hookgate.conf"
    assert target.startswith("/etc/nginx/conf.d/")
    text = conf.read_text()
    upstreams = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", text, re.M)
    port = server_settings().port
    assert sorted(upstreams) == [("gateway-1", str(port)), ("gateway-2", str(port))]
    listen = re.search(r"listen\s+(\d+);", text)
    assert listen is not None
    published = services["nginx"]["ports"][0]
    assert published.endswith(f":{listen.group(1)}")
    assert "proxy_buffering off" in text  # streams pass through


# ---- Kubernetes -------------------------------------------------------------------------


def k8s() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def test_the_kubernetes_files_name_what_exists():
    docs = k8s()
    deployment = docs["Deployment/hookgate"]
    spec = deployment["spec"]["template"]["spec"]
    [container] = spec["containers"]
    routes = app_routes()
    port = server_settings().port
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready" and "/ready" in routes
    assert container["livenessProbe"]["httpGet"]["path"] == "/health" and "/health" in routes
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port}
    assert container["args"][container["args"].index("--port") + 1] == str(port)
    # graceful termination: the preStop pause plus graceful_shutdown_s fit in the grace period
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert spec["terminationGracePeriodSeconds"] >= pause + server_settings().graceful_shutdown_s
    assert spec["securityContext"]["runAsNonRoot"] is True

    env = {e["name"]: e for e in container["env"]}
    assert set(env) >= SHARED_BACKENDS
    assert set(env) - {"HOOKGATE_CONFIG"} <= SHARED_BACKENDS | optional_env() | {
        "HOOKGATE_MASTER_KEY",
        "HOOKGATE_SECRET",
    }
    for name, entry in env.items():
        source = entry.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            assert ref["key"] in docs[f"Secret/{ref['name']}"]["stringData"], name
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            assert ref["key"] in docs[f"ConfigMap/{ref['name']}"]["data"], name
    assert "DATABASE_URL" in docs["Secret/hookgate-secrets"]["stringData"]  # it holds a password

    mount = container["volumeMounts"][0]
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    config = docs[f"ConfigMap/{volume['configMap']['name']}"]
    assert config["data"]["plugins.toml"] == SHARED.read_text()  # make-configmap.sh is current
    path = f"{mount['mountPath']}/{volume['configMap']['items'][0]['path']}"
    assert env["HOOKGATE_CONFIG"]["value"] == path

    labels = deployment["spec"]["selector"]["matchLabels"]
    assert docs["Service/hookgate"]["spec"]["selector"] == labels
    assert docs["Service/hookgate"]["spec"]["ports"][0]["targetPort"] in ("http", port)
    assert docs["PodDisruptionBudget/hookgate"]["spec"]["selector"]["matchLabels"] == labels
    target = docs["HorizontalPodAutoscaler/hookgate"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "hookgate")
    assert docs["HorizontalPodAutoscaler/hookgate"]["spec"]["minReplicas"] >= 2


@pytest.mark.parametrize("doc", ["Deployment/hookgate", "Service/hookgate"])
def test_kubernetes_objects_carry_the_app_label(doc):
    assert k8s()[doc]["metadata"]["labels"] == {"app.kubernetes.io/name": "hookgate"}


def test_hookgate_check_validates_the_shared_file_with_only_the_three_variables():
    import os
    import subprocess
    import sys

    hookgate = str(Path(sys.executable).with_name("hookgate"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("HOOKGATE_")}
    base = {k: v for k, v in base.items() if k not in SHARED_BACKENDS}
    backends = {
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "DATABASE_URL": "postgresql://hookgate@127.0.0.1:1/hookgate",
        "HOOKGATE_CHROMA_URL": "http://127.0.0.1:1",
    }

    def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [hookgate, "check", "--config", str(SHARED)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = check({**base, **backends})
    assert ok.returncode == 0, ok.stderr
    assert "limits, cache, semantic-cache, logging" in ok.stdout
    for name in backends:
        missing = check({**base, **{k: v for k, v in backends.items() if k != name}})
        assert missing.returncode != 0
        assert name in missing.stderr and "Traceback" not in missing.stderr
    wrong = check({**base, **backends, "DATABASE_URL": "mysql://hookgate@127.0.0.1/hookgate"})
    assert wrong.returncode != 0
    assert "[plugins.control] store.url" in wrong.stderr and "postgresql://" in wrong.stderr
