"""deploy/ (kustomize) rendered with kubectl and checked offline: the Kubernetes schemas
(kubernetes-validate --strict) and what every workload must have: probes, limits, restricted pod
security, a NetworkPolicy of its own, Secret references only; 2 replicas in production."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import yaml

from shared.settings import SERVICES
from shared.topology import SERVICE_SECRETS
from tests.deploy.tools import ROOT, kubectl, run, venv_tool

OVERLAYS = ("pilot", "production")
WEBHOOK_SENDERS = {s for s in SERVICES if "webhook_key" in SERVICE_SECRETS[s]}


@functools.cache
def rendered(overlay: str) -> str:
    result = run([kubectl(), "kustomize", str(ROOT / "deploy" / "overlays" / overlay)])
    assert result.returncode == 0, result.stderr
    return result.stdout


def docs(overlay: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered(overlay)) if d]


def of_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs(overlay) if d["kind"] == kind}


def validate(text: str, tmp_path: Any) -> tuple[int, str]:
    path = tmp_path / "rendered.yaml"
    path.write_text(text)
    result = run([venv_tool("kubernetes-validate"), "--strict", str(path)])
    problems = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if not line.startswith("INFO")]
    return result.returncode, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_matches_the_kubernetes_schemas_strictly(overlay: str, tmp_path: Any):
    code, problems = validate(rendered(overlay), tmp_path)
    assert code == 0 and problems == "", problems  # warnings (e.g. an unknown kind) fail too


def test_the_schema_check_catches_a_misspelt_field(tmp_path: Any):
    text = rendered("production").replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystm: true", 1)
    code, problems = validate(text, tmp_path)
    assert code != 0 and "readOnlyRootFilesystm" in problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_its_objects(overlay: str):
    for kind, names in {
        "Deployment": SERVICES,
        "Service": SERVICES,
        "PodDisruptionBudget": SERVICES,
        "HorizontalPodAutoscaler": SERVICES,
        "ConfigMap": [f"kinwell-{s}" for s in SERVICES],
        "Job": [f"migrate-{s}" for s in SERVICES] + ["provision-streams"],
    }.items():
        assert set(names) <= set(of_kind(overlay, kind)), kind
    assert "Secret" not in {d["kind"] for d in docs(overlay)}  # referenced, never shipped


def _pod_specs(overlay: str) -> dict[str, dict[str, Any]]:
    specs = {}
    for kind in ("Deployment", "StatefulSet", "Job"):
        for name, d in of_kind(overlay, kind).items():
            specs[f"{kind}/{name}"] = d["spec"]["template"]
    return specs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_runs_under_the_restricted_pod_security_standard(overlay: str):
    for name, template in _pod_specs(overlay).items():
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        mounts_tmp = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], name
            assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"], name
            assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"], name
            writable = {m["mountPath"] for m in c["volumeMounts"] if m["name"] in mounts_tmp}
            assert writable <= {"/tmp"}, name
            for env in c.get("env", []):  # secrets by reference only
                assert "value" not in env or not any(w in env["name"] for w in ("KEY", "PASSWORD", "SECRET")), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_probes_and_the_service_secrets_it_holds(overlay: str):
    for name, d in of_kind(overlay, "Deployment").items():
        (c,) = d["spec"]["template"]["spec"]["containers"]
        assert c["command"] == ["python", "-m", f"services.{name}"]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        secrets = {e["name"] for e in c["env"] if e["valueFrom"]["secretKeyRef"]["name"] == f"kinwell-{name}"}
        platform = {f"KINWELL_{s.upper()}" for s in SERVICE_SECRETS[name]}
        assert {s for s in secrets if not s.startswith(f"KINWELL_{name.upper()}_")} == platform, name


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_default_deny_and_a_networkpolicy_of_its_own_for_every_workload(overlay: str):
    policies = of_kind(overlay, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    for name, template in _pod_specs(overlay).items():
        own = [p for p in policies.values() if _selects(p, template["metadata"]["labels"])]
        assert own, f"no NetworkPolicy selects {name}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_are_reached_only_from_the_ingress_and_reach_only_nats_their_database_dns_and_443(overlay: str):
    policies = of_kind(overlay, "NetworkPolicy")
    for svc in SERVICES:
        spec = policies[svc]["spec"]
        sources = [peer for rule in spec["ingress"] for peer in rule["from"]]
        assert all(set(p) == {"namespaceSelector"} for p in sources)
        assert {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in sources} == {
            "ingress-nginx",
            "monitoring",
        }
        targets = set()
        for rule in spec["egress"]:
            ports = {p["port"] for p in rule["ports"]}
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    assert ports == {443} and "10.0.0.0/8" in peer["ipBlock"]["except"]
                    targets.add("https")
                else:
                    targets.add(str(sorted(peer["podSelector"]["matchLabels"].items())) + str(sorted(ports)))
        expected = {
            str([("app.kubernetes.io/name", "nats")]) + "[4222]",
            str([("kinwell.io/database", svc)]) + "[5432]",
            str([("k8s-app", "kube-dns")]) + "[53]",
        } | ({"https"} if svc in WEBHOOK_SENDERS else set())
        assert targets == expected, svc


def test_production_runs_two_replicas_of_every_service_and_the_pilot_one():
    for overlay, replicas in (("production", 2), ("pilot", 1)):
        for name, d in of_kind(overlay, "Deployment").items():
            assert d["spec"]["replicas"] == replicas, (overlay, name)
            assert of_kind(overlay, "HorizontalPodAutoscaler")[name]["spec"]["minReplicas"] == replicas
        for name, pdb in of_kind(overlay, "PodDisruptionBudget").items():
            assert pdb["spec"]["maxUnavailable"] == 1, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_is_a_three_node_jetstream_cluster_with_tls_and_the_project_permission_file(overlay: str):
    sts = of_kind(overlay, "StatefulSet")["nats"]
    headless = of_kind(overlay, "Service")["nats-headless"]
    assert sts["spec"]["replicas"] == 3 and sts["spec"]["serviceName"] == "nats-headless"
    assert headless["spec"]["clusterIP"] == "None"
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    script = c["command"][-1]
    for flag in ('--name "$POD_NAME"', "--jetstream", "--cluster_name kinwell", "--tls --tlscert"):
        assert flag in script
    assert ",".join(f"nats://nats-{i}.nats-headless:6222" for i in range(3)) in script
    assert any(e["name"] == "POD_NAME" and e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" for e in c["env"])
    config = next(
        d for d in docs(overlay) if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("nats-config")
    )
    assert config["data"]["auth.conf"] == (ROOT / "deploy" / "nats" / "auth.conf").read_text()
    assert config["data"]["nats.conf"] == (ROOT / "deploy" / "nats" / "nats.conf").read_text()
    platform = of_kind(overlay, "ConfigMap")["kinwell-platform"]["data"]
    assert platform["KINWELL_NATS_REPLICAS"] == "3" and platform["KINWELL_NATS_URL"].startswith("tls://")
    assert platform["KINWELL_MODE"] == "production" and platform["KINWELL_DEV_TOKEN_ISSUER"] == "false"
