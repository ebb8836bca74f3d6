"""The Helm chart checked by the real tools on the objects it renders: Helm's own Go code (helm-python-sdk) lints it
strictly and renders it with default and production-like values, every object passes kubernetes-validate --strict
for Kubernetes 1.30 (the operators' kinds against their CRD schemas, tests/deploy/crds), the values schema refuses
what Kubernetes or the services would, and the public entry routes the public API only."""

import copy
import importlib
import json
import pkgutil
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml
from fastapi import APIRouter

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "revisit"
HERE = Path(__file__).resolve().parent
KUBERNETES_VERSION = "1.30.0"
RELEASE, NAMESPACE = "revisit", "revisit"
SERVICES = ("ingest", "matcher", "identity", "reporting", "audit")
PORTS = {"ingest": 8001, "matcher": 8002, "identity": 8003, "reporting": 8004, "audit": 8005, "console": 8080}
CONSOLE_CALLS = ("identity", "matcher", "reporting", "audit")
RETAINED = ("ingest", "matcher", "identity", "reporting")
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring.coreos.com-v1.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute-gateway.networking.k8s.io-v1.json",
}

Manifest = dict[str, Any]


def production_values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((HERE / "values-production.yaml").read_text())
    return loaded


VALUE_SETS = {"default": {}, "production": production_values()}


def render(values: dict[str, Any] | None = None) -> list[Manifest]:
    """Every object `helm template` would output (NOTES.txt aside), through Helm's own code."""
    with helm_python.Chart.load(CHART) as chart:
        files = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        document
        for path, text in sorted(files.items())
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]


@cache
def rendered(value_set: str) -> tuple[Manifest, ...]:
    return tuple(render(VALUE_SETS[value_set]))


def objects(value_set: str, kind: str) -> list[Manifest]:
    return [item for item in rendered(value_set) if item["kind"] == kind]


def by_component(value_set: str, kind: str) -> dict[str, Manifest]:
    return {item["metadata"]["labels"]["app.kubernetes.io/component"]: item for item in objects(value_set, kind)}


def strict(schema: Any) -> Any:
    """A CRD's openAPIV3Schema made as strict as `kubectl --validate=strict`: unknown fields are refused
    (objects that declare properties and neither additionalProperties nor preserve-unknown-fields)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: strict(value) for key, value in schema.items()}
    if (
        tightened.get("properties")
        and "additionalProperties" not in tightened
        and not tightened.get("x-kubernetes-preserve-unknown-fields")
    ):
        tightened["additionalProperties"] = False
    return tightened


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads((HERE / "crds" / CRD_SCHEMAS[(api_version, kind)]).read_text())
    definitions = json.loads(
        (
            Path(kubernetes_validate.__file__).parent
            / "kubernetes-json-schema"
            / f"v{KUBERNETES_VERSION}-local-strict"
            / "_definitions.json"
        ).read_text()
    )["$defs"]
    object_meta = json.loads(
        json.dumps(definitions["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]).replace(
            "/api/_definitions.json#/$defs/", "#/$defs/"
        )
    )
    schema["properties"]["metadata"] = object_meta
    schema = strict(schema)
    schema["$defs"] = {
        name: json.loads(json.dumps(value).replace("/api/_definitions.json#/$defs/", "#/$defs/"))
        for name, value in definitions.items()
    }
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return validator_class(schema)


def validate_object(manifest: Manifest) -> None:
    key = (manifest["apiVersion"], manifest["kind"])
    if key in CRD_SCHEMAS:
        crd_validator(*key).validate(manifest)
    else:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_strict_finds_nothing(value_set: str) -> None:
    report = helm_python.lint(CHART, VALUE_SETS[value_set], strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    assert not report["errors"], report["errors"]
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_rendered_object_passes_kubernetes_validate_strict(value_set: str) -> None:
    manifests = rendered(value_set)
    assert len(manifests) >= 20
    for manifest in manifests:
        try:
            validate_object(manifest)
        except (jsonschema.ValidationError, kubernetes_validate.utils.SchemaNotFoundError) as error:
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {getattr(error, 'message', error)}")


def test_production_values_render_the_optional_objects() -> None:
    kinds = {manifest["kind"] for manifest in rendered("production")}
    assert {"Ingress", "HTTPRoute", "ServiceMonitor", "PrometheusRule", "HorizontalPodAutoscaler", "Pod"} <= kinds
    assert {"Ingress", "HTTPRoute", "ServiceMonitor", "PrometheusRule"}.isdisjoint(
        manifest["kind"] for manifest in rendered("default")
    )


def test_the_strict_crd_check_refuses_an_unknown_field() -> None:
    """The CRD validation is not a formality: a misspelt field of an operator's kind fails."""
    monitor = copy.deepcopy(objects("production", "ServiceMonitor")[0])
    validate_object(monitor)
    monitor["spec"]["endpoints"][0]["scrapeInterval"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        validate_object(monitor)
    route = copy.deepcopy(objects("production", "HTTPRoute")[0])
    route["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"  # Ingress' word, not the Gateway API's
    with pytest.raises(jsonschema.ValidationError):
        validate_object(route)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicas": "three"}, "additional properties 'replicas' not allowed"),
        ({"services": {"matcher": {"replicaCount": "three"}}}, "/services/matcher/replicaCount"),
        ({"services": {"ingest": {"replicas": 2}}}, "additional properties 'replicas' not allowed"),
        ({"podSecurityContext": {"runAsUser": "root"}}, "/podSecurityContext/runAsUser"),
        ({"containerSecurityContext": {"capabilities": {"dropp": ["ALL"]}}}, "'dropp' not allowed"),
        (
            {"probes": {"readiness": {"periodSeconds": "10s", "failureThreshold": 3, "timeoutSeconds": 1}}},
            "periodSeconds",
        ),
        ({"metrics": {"serviceMonitor": {"interval": "30"}}}, "/metrics/serviceMonitor/interval"),
        ({"retention": {"schedules": {"ingest": "daily at 3"}}}, "/retention/schedules/ingest"),
        ({"retention": {"schedules": {"audit": "17 3 * * *"}}}, "invalid propertyName 'audit'"),
        ({"image": {"digest": "sha256:abc"}}, "/image/digest"),
        ({"services": {"ingest": {"publicPaths": ["/metrics"]}}}, "/services/ingest/publicPaths/0"),
        ({"tolerations": [{"key": "a", "tolerationSeconds": "soon"}]}, "/tolerations/0/tolerationSeconds"),
        ({"nats": {"url": "localhost:4222"}}, "/nats/url"),
        ({"environment": "staging"}, "/environment"),
        ({"podAntiAffinity": "maybe"}, "/podAntiAffinity"),
    ],
)
def test_the_values_schema_refuses(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render(values)
    assert complaint in str(refused.value)


def walk(items: dict[str, Any] | list[Any]) -> Iterator[Any]:
    values = items.values() if isinstance(items, dict) else items
    for value in values:
        yield value
        if isinstance(value, dict | list):
            yield from walk(value)


def test_the_values_schema_is_strict_and_current() -> None:
    """values.schema.json is what deploy/helm/values_schema.py writes (make lint checks it too)."""
    check = subprocess.run(
        [sys.executable, "deploy/helm/values_schema.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    loose = [
        node
        for node in walk(schema)
        if isinstance(node, dict)
        and node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and "then" not in node
    ]
    assert loose == [], "every object of the values schema refuses unknown keys"


def routers_of(service: str) -> list[APIRouter]:
    package = importlib.import_module(f"services.{service}")
    found: list[APIRouter] = []
    for module in pkgutil.iter_modules(package.__path__, f"services.{service}."):
        if module.name.endswith("__main__"):
            continue
        found += [
            value for value in vars(importlib.import_module(module.name)).values() if isinstance(value, APIRouter)
        ]
    return found


def public_routes() -> dict[str, str]:
    """Every route path of every service's API (a sample value in each parameter) -> the service."""
    routes: dict[str, str] = {}
    for service in SERVICES:
        for router in routers_of(service):
            for route in router.routes:
                path = re.sub(r"\{[^}]+\}", "sample-id", getattr(route, "path", ""))
                assert routes.setdefault(path, service) == service, f"{path} is both {routes[path]}'s and {service}'s"
    return routes


Rule = tuple[str, bool, str]
"""(path, exact, backend) of the public entry."""


def longest_prefix(rules: list[Rule], path: str) -> str | None:
    """Which backend the rules send `path` to: an Exact rule for the very path first, else the longest matching
    prefix, element-wise (as Ingress Prefix and HTTPRoute PathPrefix match)."""
    exact = [backend for prefix, is_exact, backend in rules if is_exact and path == prefix]
    if exact:
        return exact[0]
    matching = [
        (prefix, backend)
        for prefix, is_exact, backend in rules
        if not is_exact and (path == prefix or path.startswith(prefix.rstrip("/") + "/"))
    ]
    return max(matching, key=lambda rule: len(rule[0]))[1] if matching else None


def ingress_rules(value_set: str = "production") -> list[Rule]:
    (ingress,) = objects(value_set, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "api.revisit.example.com"
    assert {path["pathType"] for path in rule["http"]["paths"]} <= {"Prefix", "Exact"}
    return [
        (path["path"], path["pathType"] == "Exact", path["backend"]["service"]["name"].removeprefix("revisit-"))
        for path in rule["http"]["paths"]
    ]


def http_route_rules(value_set: str = "production") -> list[Rule]:
    (route,) = objects(value_set, "HTTPRoute")
    assert {m["path"]["type"] for rule in route["spec"]["rules"] for m in rule["matches"]} <= {"PathPrefix", "Exact"}
    return [
        (match["path"]["value"], match["path"]["type"] == "Exact", backend["name"].removeprefix("revisit-"))
        for rule in route["spec"]["rules"]
        for match in rule["matches"]
        for backend in rule["backendRefs"]
    ]


OPS_PATHS = ("/metrics", "/readyz", "/healthz", "/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect")


@pytest.mark.parametrize("rules", [ingress_rules, http_route_rules], ids=["ingress", "httproute"])
def test_the_public_entry_routes_every_api_route_to_its_service_and_nothing_else(rules: Any) -> None:
    table = rules()
    routes = public_routes()
    assert set(routes.values()) == set(SERVICES) and len(routes) >= 20
    misrouted = {path: (service, longest_prefix(table, path)) for path, service in routes.items()}
    assert {path: pair for path, pair in misrouted.items() if pair[0] != pair[1]} == {}
    for path in OPS_PATHS:
        assert longest_prefix(table, path) is None, f"{path} must stay inside the cluster"


def console_routes() -> set[str]:
    """Every path the console serves to browsers: its pages' routes (a sample value in each parameter) and its
    static assets (mounted at /static by services/console/bootstrap.py)."""
    pages = importlib.import_module("services.console.pages")
    static = Path(pages.__path__[0]).parent / "static"
    paths = {f"/static/{path.name}" for path in static.iterdir()}
    for module in pkgutil.iter_modules(pages.__path__, "services.console.pages."):
        router = importlib.import_module(module.name).router
        paths |= {re.sub(r"\{[^}]+\}", "sample-id", getattr(route, "path", "")) for route in router.routes}
    return paths


@pytest.mark.parametrize("rules", [ingress_rules, http_route_rules], ids=["ingress", "httproute"])
def test_the_public_entry_serves_the_console_at_the_root_and_only_its_pages(rules: Any) -> None:
    table = rules()
    pages = console_routes()
    assert "/" in pages and "/persons/sample-id" in pages and len(pages) >= 20
    assert {path: longest_prefix(table, path) for path in pages if longest_prefix(table, path) != "console"} == {}
    assert [rule for rule in table if rule[1]] == [("/", True, "console")], "/ alone is Exact"
    for path in (*OPS_PATHS, "/v1", "/v2/persons", "/anything-else"):
        assert longest_prefix(table, path) is None, f"{path} must not reach the console (its ops routes are inside)"
    assert longest_prefix(table, "/v1/persons/sample-id") == "identity"
    assert longest_prefix(table, "/persons/sample-id") == "console"


@pytest.mark.parametrize("rules", [ingress_rules, http_route_rules], ids=["ingress", "httproute"])
def test_without_the_console_the_public_entry_routes_the_apis_only(rules: Any) -> None:
    values = copy.deepcopy(production_values())
    values["services"]["console"]["enabled"] = False
    VALUE_SETS["production-without-console"] = values
    try:
        table = rules("production-without-console")
    finally:
        del VALUE_SETS["production-without-console"]
    assert {backend for _, _, backend in table} == set(SERVICES)
    assert longest_prefix(table, "/") is None and longest_prefix(table, "/persons") is None


def test_the_http_route_attaches_to_the_gateway_with_ports() -> None:
    (route,) = objects("production", "HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}]
    ports = {backend["name"]: backend["port"] for rule in route["spec"]["rules"] for backend in rule["backendRefs"]}
    assert ports == {f"revisit-{name}": port for name, port in PORTS.items()}


def containers(pod_spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec["containers"]
    return dict(container)


def test_deployments_run_each_service_as_the_image_user_with_drain_and_spread() -> None:
    deployments = by_component("production", "Deployment")
    assert set(deployments) == set(PORTS)
    digest = production_values()["image"]["digest"]
    console_image = production_values()["services"]["console"]["image"]
    dockerfile = (ROOT / "deploy" / "services" / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        container = containers(spec)
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert container["image"] == (
            f"{console_image['repository']}:0.1.0@{console_image['digest']}"
            if name == "console"
            else f"registry.example.com/revisit/revisit:0.1.0@{digest}"
        )
        assert spec["securityContext"]["runAsUser"] == 10001 and spec["securityContext"]["runAsNonRoot"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
        assert spec["terminationGracePeriodSeconds"] > 5
        assert spec["priorityClassName"] == "revisit"
        selector = deployment["spec"]["selector"]["matchLabels"]
        (term,) = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["labelSelector"]["matchLabels"] == selector and term["topologyKey"] == "kubernetes.io/hostname"
        spread = spec["topologySpreadConstraints"]
        assert [c["topologyKey"] for c in spread] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
        assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)
        env_from = [source.get("configMapRef", source.get("secretRef"))["name"] for source in container["envFrom"]]
        expected = ["revisit-common", f"revisit-{name}", "revisit-proxy"]
        assert env_from == expected + (["revisit-matcher-overrides"] if name == "matcher" else [])


def test_default_scheduling_prefers_spreading_and_can_be_replaced() -> None:
    for deployment in objects("default", "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        assert "preferredDuringSchedulingIgnoredDuringExecution" in spec["affinity"]["podAntiAffinity"]
        assert {c["whenUnsatisfiable"] for c in spec["topologySpreadConstraints"]} == {"ScheduleAnyway"}
        assert "priorityClassName" not in spec
        image = "revisit-console:0.1.0" if deployment["metadata"]["name"] == "revisit-console" else "revisit:0.1.0"
        assert containers(spec)["image"] == image
    own = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["revisit"]}]}]
            }
        }
    }
    replaced = render({"affinity": own, "topologySpread": {"enabled": False, "maxSkew": 1, "topologyKeys": ["x"]}})
    for deployment in (item for item in replaced if item["kind"] == "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        assert spec["affinity"] == own
        assert "topologySpreadConstraints" not in spec


def test_a_component_with_its_own_image_and_command_is_one_values_entry_and_one_wiring_line(tmp_path: Path) -> None:
    """How the console (or any new component) joins the chart: README.md, "Adding a component"."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert "kiosk" not in helpers
    with_kiosk = helpers.replace("audit:\n  backends:", "kiosk:\n  backends: []\n  jwt: false\naudit:\n  backends:")
    values = {
        "services": {
            "kiosk": {
                "enabled": True,
                "port": 8090,
                "replicaCount": 2,
                "publicPaths": ["/v1/kiosk"],
                "image": {"repository": "revisit-kiosk", "tag": "0.1.0"},
                "command": ["revisit-kiosk"],
                "metrics": False,
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                "autoscaling": {
                    "enabled": False,
                    "minReplicas": 1,
                    "maxReplicas": 2,
                    "targetCPUUtilizationPercentage": 70,
                },
            }
        }
    }
    chart_dir = tmp_path / "revisit"
    shutil.copytree(CHART, chart_dir)
    (chart_dir / "templates" / "_helpers.tpl").write_text(with_kiosk)
    with helm_python.Chart.load(chart_dir) as chart:
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    manifests = [d for p, t in files.items() if p.endswith(".yaml") for d in yaml.safe_load_all(t) if d]
    deployment = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "revisit-kiosk")
    container = containers(deployment["spec"]["template"]["spec"])
    assert container["image"] == "revisit-kiosk:0.1.0" and container["command"] == ["revisit-kiosk"]
    assert [e["name"] for e in container["env"]] == ["PYTHONDONTWRITEBYTECODE"]
    assert [v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]] == ["tmp"], "no NATS user: no NATS"
    service = next(m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == "revisit-kiosk")
    assert "revisit.dev/metrics" not in service["metadata"]["labels"]
    for manifest in manifests:
        validate_object(manifest)


def test_retention_cronjobs_run_each_owning_service_command_with_its_environment() -> None:
    cronjobs = {
        job["metadata"]["labels"]["app.kubernetes.io/component"]: job for job in objects("production", "CronJob")
    }
    assert set(cronjobs) == {f"{name}-retention" for name in RETAINED}
    deployments = by_component("production", "Deployment")
    schedules = [job["spec"]["schedule"] for job in cronjobs.values()]
    assert len(set(schedules)) == len(schedules), "staggered: no two jobs start together"
    for name in RETAINED:
        job = cronjobs[f"{name}-retention"]
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        container = containers(pod)
        service = containers(deployments[name]["spec"]["template"]["spec"])
        assert container["command"] == ["python", "-m", f"services.{name}", "retention"]
        assert container["env"] == service["env"] and container["envFrom"] == service["envFrom"]
        assert container["image"] == service["image"]
        assert pod["restartPolicy"] == "Never"


def test_helm_test_asks_every_service_for_readiness() -> None:
    (pod,) = objects("production", "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = containers(pod["spec"])
    assert container["args"] == [f"http://revisit-{name}:{port}/readyz" for name, port in sorted(PORTS.items())]
    services = [policy for policy in objects("production", "NetworkPolicy") if "ingress" in policy["spec"]]
    assert len(services) == len(PORTS)
    for policy in services:
        peers = policy["spec"]["ingress"][0]["from"]
        assert {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/component": "test"}
            }
        } in peers


def test_the_service_monitor_scrapes_the_services_and_the_rule_is_the_rules_file() -> None:
    (monitor,) = objects("production", "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"]["revisit.dev/metrics"] == "true"
    assert all(s["metadata"]["labels"]["revisit.dev/metrics"] == "true" for s in objects("production", "Service"))
    (rule,) = objects("production", "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "rules" / "revisit-alerts.yaml").read_text())


def rendered_dashboards() -> dict[str, Any]:
    (config_map,) = [c for c in objects("default", "ConfigMap") if c["metadata"]["name"].endswith("-dashboards")]
    return {name: json.loads(text) for name, text in config_map["data"].items()}


def test_every_dashboard_file_is_in_the_grafana_config_map() -> None:
    files = {path.name for path in (CHART / "dashboards").glob("*.json")}
    dashboards = rendered_dashboards()
    assert set(dashboards) == files and files
    for name, dashboard in dashboards.items():
        assert dashboard == json.loads((CHART / "dashboards" / name).read_text())


def test_the_grafana_config_map_labels() -> None:
    (config_map,) = [c for c in objects("production", "ConfigMap") if c["metadata"]["name"].endswith("-dashboards")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Revisit"}


def test_every_workload_is_inside_a_network_policy_and_retention_jobs_accept_nothing() -> None:
    policies = objects("production", "NetworkPolicy")
    pod_templates = [d["spec"]["template"] for d in objects("production", "Deployment")] + [
        c["spec"]["jobTemplate"]["spec"]["template"] for c in objects("production", "CronJob")
    ]
    for template in pod_templates:
        labels = template["metadata"]["labels"]
        selecting = [p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        assert len(selecting) == 1, labels["app.kubernetes.io/component"]
    by_name = {p["metadata"]["name"]: p for p in policies}
    for name in RETAINED:
        job, service = by_name[f"revisit-{name}-retention"], by_name[f"revisit-{name}"]
        assert "ingress" not in job["spec"] and job["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert job["spec"]["egress"] == service["spec"]["egress"]


def console_pod(value_set: str) -> dict[str, Any]:
    spec: dict[str, Any] = by_component(value_set, "Deployment")["console"]["spec"]["template"]["spec"]
    return spec


def console_environment(value_set: str) -> dict[str, str]:
    """The console container's variables: its ConfigMaps' data and its env (a Secret's key as `secret:name/key`)."""
    config_maps = {item["metadata"]["name"]: item.get("data", {}) for item in objects(value_set, "ConfigMap")}
    container = containers(console_pod(value_set))
    environment: dict[str, str] = {}
    for source in container["envFrom"]:
        environment |= config_maps.get(source.get("configMapRef", {}).get("name"), {})
    for variable in container["env"]:
        secret = variable.get("valueFrom", {}).get("secretKeyRef")
        environment[variable["name"]] = f"secret:{secret['name']}/{secret['key']}" if secret else variable["value"]
    return environment


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_the_console_gets_every_setting_it_requires_and_no_backend_secret(value_set: str) -> None:
    from services.console.config import ConsoleSettings

    environment = console_environment(value_set)
    required = {
        f"REVISIT_{name.upper()}" for name, field in ConsoleSettings.model_fields.items() if field.is_required()
    }
    assert required - set(environment) == set()
    services = {item["metadata"]["name"]: item["spec"]["ports"][0]["port"] for item in objects(value_set, "Service")}
    for called in CONSOLE_CALLS:
        assert (
            environment[f"REVISIT_{called.upper()}_URL"] == f"http://revisit-{called}:{services[f'revisit-{called}']}"
        )
    assert environment["REVISIT_HTTP_PORT"] == "8080"
    assert containers(console_pod(value_set))["ports"][0]["containerPort"] == 8080
    assert environment["REVISIT_JWT_PUBLIC_KEY"] == "secret:revisit-jwt/public.pem"
    assert environment["REVISIT_JWT_ISSUER"] == VALUE_SETS[value_set].get("jwt", {}).get("issuer", "revisit")
    assert environment["REVISIT_CONSOLE_MODEL_DIR"] == "/models"
    assert environment["REVISIT_CONSOLE_SECURE_COOKIE"] == "true"
    assert ConsoleSettings.model_fields["console_secure_cookie"].default is True
    secrets = {value for value in environment.values() if value.startswith("secret:")}
    assert secrets == {"secret:revisit-jwt/public.pem"}, "no store's credentials: the console has no way into one"
    assert "nats-credentials" not in {volume["name"] for volume in console_pod(value_set)["volumes"]}
    assert containers(console_pod(value_set))["command"] == ["python", "-m", "services.console"]


def test_the_console_sign_in_url_is_the_identity_providers_in_production() -> None:
    assert "REVISIT_CONSOLE_SIGNIN_URL" not in console_environment("default")
    signin = console_environment("production")["REVISIT_CONSOLE_SIGNIN_URL"]
    assert signin == production_values()["services"]["console"]["settings"]["signinUrl"]
    assert "response_type=token" in signin and signin.startswith("https://auth.revisit.example.com/")


def test_without_a_claim_the_console_downloads_the_checked_model_pack_into_its_pod() -> None:
    pod = console_pod("default")
    (init,) = pod["initContainers"]
    assert init["command"] == ["python", "-m", "edge.model_pack", "download", "--dir", "/models"]
    assert init["image"] == containers(pod)["image"] == "revisit-console:0.1.0"
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes["model-pack"]
    assert {"name": "model-pack", "mountPath": "/models"} in init["volumeMounts"]
    assert {"name": "model-pack", "mountPath": "/models", "readOnly": True} in containers(pod)["volumeMounts"]
    (policy,) = [p for p in objects("default", "NetworkPolicy") if p["metadata"]["name"] == "revisit-console"]
    assert {"ports": [{"port": 443, "protocol": "TCP"}]} in policy["spec"]["egress"]


def test_with_a_claim_the_console_mounts_the_pack_ops_chose_read_only_and_downloads_nothing() -> None:
    pod = console_pod("production")
    assert "initContainers" not in pod
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["model-pack"]["persistentVolumeClaim"] == {"claimName": "revisit-model-pack", "readOnly": True}
    mount = next(m for m in containers(pod)["volumeMounts"] if m["name"] == "model-pack")
    assert mount == {"name": "model-pack", "mountPath": "/models", "readOnly": True, "subPath": "pack-2025-06"}
    (policy,) = [p for p in objects("production", "NetworkPolicy") if p["metadata"]["name"] == "revisit-console"]
    assert all(443 not in [port["port"] for port in rule["ports"]] for rule in policy["spec"]["egress"])


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_the_console_reaches_exactly_the_four_apis_and_they_admit_it(value_set: str) -> None:
    policies = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p for p in objects(value_set, "NetworkPolicy")}
    deployments = by_component(value_set, "Deployment")
    console = policies["console"]["spec"]
    (admitted,) = console["ingress"]
    assert admitted["ports"] == [{"port": 8080, "protocol": "TCP"}], "only its HTTP port"
    to_pods = {
        rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: rule
        for rule in console["egress"]
        if rule.get("to") and "podSelector" in rule["to"][0]
    }
    assert set(to_pods) == set(CONSOLE_CALLS)
    for called, rule in to_pods.items():
        assert rule["ports"] == [{"port": PORTS[called], "protocol": "TCP"}]
        pod_labels = deployments[called]["spec"]["template"]["metadata"]["labels"]
        assert rule["to"][0]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    backend_ports = {4222, 5432, 19530, 9000}
    assert all(backend_ports.isdisjoint(port["port"] for port in rule["ports"]) for rule in console["egress"])
    console_labels = deployments["console"]["spec"]["template"]["metadata"]["labels"]
    for name in SERVICES:
        peers = policies[name]["spec"]["ingress"][0].get("from")
        if peers is None:  # networkPolicy.ingressFrom empty: any peer on the HTTP port
            assert value_set == "default"
            continue
        admits_console = any(
            "podSelector" in peer
            and peer["podSelector"]["matchLabels"].items() <= console_labels.items()
            and peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "console"
            for peer in peers
        )
        assert admits_console == (name in CONSOLE_CALLS), name


def test_a_component_image_never_inherits_the_charts_digest() -> None:
    digest = "sha256:" + "a" * 64
    manifests = render({"image": {"digest": digest}})
    images = {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: containers(m["spec"]["template"]["spec"])["image"]
        for m in manifests
        if m["kind"] == "Deployment"
    }
    assert images["console"] == "revisit-console:0.1.0"
    assert images["identity"] == f"revisit:0.1.0@{digest}"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"services": {"console": {"pagePaths": ["/metrics"]}}}, "/services/console/pagePaths/0"),
        ({"services": {"console": {"pagePaths": ["/readyz"]}}}, "/services/console/pagePaths/0"),
        ({"services": {"console": {"pagePaths": ["/v1"]}}}, "/services/console/pagePaths/0"),
        ({"services": {"console": {"pagePaths": ["/persons/"]}}}, "/services/console/pagePaths/0"),
        ({"services": {"console": {"settings": {"signinUrl": "http://idp/auth"}}}}, "signinUrl"),
        ({"services": {"console": {"settings": {"secureCookie": "yes"}}}}, "secureCookie"),
        ({"services": {"console": {"modelPack": {"claim": "pack"}}}}, "additional properties 'claim' not allowed"),
    ],
)
def test_the_values_schema_refuses_for_the_console(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render(values)
    assert complaint in str(refused.value)
