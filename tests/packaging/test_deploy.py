"""deploy/: the Kubernetes manifests against the Kubernetes API schemas
(kubernetes-validate, offline: it ships the schemas), and against each
other, capsock's own CLI and the Containerfile.

The schema check says each object is a valid Deployment/Service/ConfigMap;
the cross-checks say they fit together: the probe hits the `--metrics`
port, the Service the `--tcplisten` port, the policy file is mounted
where `--policy` reads it, the memory limit covers what `--max-memory`
lets the instances take, and the app the Deployment runs is one the image
compiles.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as k8s

from capsock.cli import build_parser
from capsock.policy.config import parse_policy_text

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
MIB = 1 << 20
#: Measured (docs/operations.md, "Resources"): the serve parent's RSS and
#: one instance's host RSS besides its guest memory, in MiB.
PARENT_MIB, INSTANCE_MIB = 35, 60


def objects() -> list[dict[str, Any]]:
    found = []
    for path in MANIFESTS:
        if path.name == "kustomization.yaml":
            continue
        found.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return found


def one(kind: str) -> dict[str, Any]:
    [found] = [o for o in objects() if o["kind"] == kind]
    return found


@pytest.mark.parametrize("version", ["1.31.0", k8s.latest_version()])
def test_manifests_match_the_kubernetes_schemas(version: str) -> None:
    kinds = []
    for obj in objects():
        k8s.validate(obj, version, strict=True)  # raises ValidationError
        kinds.append(obj["kind"])
    assert sorted(kinds) == ["ConfigMap", "Deployment", "Service"]


def test_a_broken_manifest_is_caught() -> None:
    """The check can fail: a port given as text where a number belongs."""
    broken = one("Service")
    broken["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(k8s.ValidationError):
        k8s.validate(broken, "1.31.0", strict=True)


def container() -> dict[str, Any]:
    [found] = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return found


def serve_args() -> Any:
    """The container's args as `capsock serve` parses them (all known)."""
    args = container()["args"]
    namespace = build_parser(args).parse_args(args)
    return namespace, str(namespace.policy)


def port_named(name: str) -> int:
    [port] = [p["containerPort"] for p in container()["ports"] if p["name"] == name]
    return int(port)


def test_probes_and_service_hit_the_ports_capsock_opens() -> None:
    args, _ = serve_args()
    assert args.command == "serve"
    metrics_port = int(args.metrics.rsplit(":", 1)[1])
    [listen] = args.tcplisten
    assert port_named("metrics") == metrics_port
    assert port_named("http") == int(listen.rsplit(":", 1)[1])
    probe = container()["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/metrics", "metrics")
    service = one("Service")["spec"]
    names = {p["name"] for p in container()["ports"]}
    assert {p["targetPort"] for p in service["ports"]} <= names
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()


def test_the_policy_file_is_mounted_where_policy_reads_it() -> None:
    _, policy = serve_args()
    assert policy is not None
    directory, name = policy.rsplit("/", 1)
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    [volume] = [n for n, path in mounts.items() if path == directory]
    config = one("ConfigMap")
    assert volumes[volume]["configMap"]["name"] == config["metadata"]["name"]
    # capsock's own parser (what `capsock policy check` runs): errors name
    # the line and rule; the shipped policy denies private and metadata.
    parsed = parse_policy_text(config["data"][name], "policy.toml")
    denied = [rule.value for rule in parsed.rules["deny-outbound"]]
    assert "tcp://private:*" in denied and "tcp://metadata:*" in denied


def _quantity_mib(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", text).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


def test_resources_cover_the_max_flags() -> None:
    args, _ = serve_args()
    limit = _quantity_mib(container()["resources"]["limits"]["memory"])
    needed = PARENT_MIB + args.instances * (INSTANCE_MIB + args.limit_max_memory // MIB)
    assert needed <= limit < needed * 1.25  # covers it, without a blank cheque
    request = _quantity_mib(container()["resources"]["requests"]["memory"])
    assert PARENT_MIB + args.instances * INSTANCE_MIB <= request <= limit
    assert args.instances * args.limit_max_sockets < 1 << 20  # RLIMIT_NOFILE


def test_the_image_compiles_the_app_the_deployment_runs() -> None:
    args, _ = serve_args()
    text = (DEPLOY / "Containerfile").read_text()
    [apps] = re.findall(r'^ARG APPS="([^"]+)"', text, re.MULTILINE)
    app = Path(args.component)
    assert app.parent == Path("/opt/capsock/apps") and app.stem in apps.split()
    for name in apps.split():
        assert (ROOT / "guest" / "apps" / name / "app.py").is_file()
    assert "capsock compile /opt/capsock/apps/*.wasm" in text
    assert "--no-index" in text and "'capsock[metrics]'" in text
    [user] = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user.split(":")[0] not in ("0", "root")
    run_as = one("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert str(run_as) == user.split(":")[0]
    assert re.search(r"^ARG BASE=\S+python:3\.\d+-slim$", text, re.MULTILINE)
