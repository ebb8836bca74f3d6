"""Static checks of the Helm chart: the files parse, values fit the schema, every service is wired,
and alerts and dashboard only use metrics the code exports (a renamed metric would silence an alert)."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "revisit"
RULES = CHART / "rules" / "revisit-alerts.yaml"
DASHBOARD = CHART / "dashboards" / "revisit-overview.json"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

SERVICE_PORTS = {"ingest": 8001, "matcher": 8002, "identity": 8003, "reporting": 8004, "audit": 8005}
SERVICE_METRICS = {
    "revisit_messages_consumed_total",
    "revisit_handler_seconds",
    "revisit_events_published_total",
    "revisit_unidentified_sightings_total",
}
EDGE_METRICS = {
    "revisit_edge_frames_total",
    "revisit_edge_faces_total",
    "revisit_edge_events_total",
    "revisit_edge_outbox_depth",
    "revisit_edge_outbox_dropped_total",
}
HISTOGRAM_SERIES = {f"revisit_handler_seconds_{suffix}" for suffix in ("bucket", "sum", "count")}
KNOWN_METRICS = SERVICE_METRICS | EDGE_METRICS | HISTOGRAM_SERIES
METRIC_NAME = re.compile(r"\brevisit_[a-z_]+")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(CHART / "values.yaml")
    return loaded


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def service_wiring() -> dict[str, Any]:
    """The `revisit.serviceWiring` block of _helpers.tpl, which is plain YAML inside a define."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    match = re.search(r'define "revisit\.serviceWiring" -\}\}\n(.*?)\{\{- end \}\}', helpers, re.DOTALL)
    assert match, "revisit.serviceWiring not found in _helpers.tpl"
    wiring: dict[str, Any] = yaml.safe_load(match.group(1))
    return wiring


def test_chart_metadata_and_no_unvendored_dependencies() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "revisit"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    # Helm refuses to template a chart whose declared dependencies are not in charts/, even disabled ones.
    for dependency in chart.get("dependencies") or []:
        assert list((CHART / "charts").glob(f"{dependency['name']}-*")), f"{dependency['name']} declared, not vendored"


def test_static_yaml_files_parse() -> None:
    files = [p for p in CHART.rglob("*.yaml") if "templates" not in p.parts]
    assert len(files) >= 3
    for path in files:
        assert load_yaml(path) is not None, path


def test_values_fit_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(schema())
    jsonschema.validate(values(), schema())


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("services", "ingest", "port"), "8001"),
        (("services", "matcher", "replicas"), 2),
        (("nats", "url"), "localhost:4222"),
        (("environment"), "staging"),
    ],
)
def test_schema_refuses_bad_values(path: tuple[str, ...] | str, bad: object) -> None:
    broken = copy.deepcopy(values())
    keys = (path,) if isinstance(path, str) else path
    target = broken
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema())


def test_every_service_has_a_deployment_entry() -> None:
    services = values()["services"]
    assert set(service_wiring()) == set(services), "each service in values needs an entry in revisit.serviceWiring"
    assert {name: svc["port"] for name, svc in services.items()} == SERVICE_PORTS
    for name, wiring in service_wiring().items():
        assert "nats" in wiring["backends"], name
        assert set(wiring["backends"]) <= set(values()["networkPolicy"]["egress"]), name
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert "range $name, $svc := .Values.services" in deployment
    assert 'command: ["python", "-m", "services.{{ $name }}"]' in deployment


def test_alert_rules_use_only_known_metrics() -> None:
    text = RULES.read_text()
    used = set(METRIC_NAME.findall(text))
    assert {"revisit_messages_consumed_total", "revisit_handler_seconds_bucket", "revisit_edge_outbox_depth"} <= used
    assert used <= KNOWN_METRICS, f"unknown metrics in alert rules: {sorted(used - KNOWN_METRICS)}"


def test_alert_rules_are_complete_and_documented() -> None:
    groups = load_yaml(RULES)["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    runbook = OPERATIONS_DOC.read_text().lower()
    assert len(rules) >= 6
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()
        assert f"### {anchor}" in runbook, f"{rule['alert']} has no runbook section in docs/operations.md"


def test_dashboard_parses_and_uses_only_known_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 6
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used <= KNOWN_METRICS, f"unknown metrics in dashboard: {sorted(used - KNOWN_METRICS)}"
    assert EDGE_METRICS - {"revisit_edge_outbox_dropped_total"} <= used
    template = (CHART / "templates" / "dashboards-configmap.yaml").read_text()
    assert 'grafana_dashboard: "1"' in template


def test_service_metrics_are_declared_by_the_code() -> None:
    declared = {
        name
        for path in (ROOT / "services").rglob("*.py")
        for name in re.findall(r"[\"'](revisit_[a-z_]+)[\"']", path.read_text())
    }
    assert declared >= SERVICE_METRICS, f"alerts rely on metrics no service declares: {SERVICE_METRICS - declared}"


BLOCK_OPEN = {"if", "range", "with", "define", "block"}


@pytest.mark.parametrize("path", sorted((CHART / "templates").glob("*")), ids=lambda p: p.name)
def test_template_actions_are_balanced(path: Path) -> None:
    """Without a helm binary, catch the commonest template breakage: an unclosed `{{` or block."""
    text = re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", path.read_text(), flags=re.DOTALL)
    assert text.count("{{") == text.count("}}"), path.name
    depth = 0
    for keyword in re.findall(r"\{\{-?\s*(\w+)", text):
        if keyword in BLOCK_OPEN:
            depth += 1
        elif keyword == "end":
            depth -= 1
            assert depth >= 0, f"{path.name}: `end` without a block"
    assert depth == 0, f"{path.name}: {depth} unclosed block(s)"


def test_retention_cronjobs_run_each_owning_service_command_staggered() -> None:
    retention = values()["retention"]
    schedules = retention["schedules"]
    assert retention["enabled"]
    assert set(schedules) == {"ingest", "matcher", "identity", "reporting"}
    assert len(set(schedules.values())) == len(schedules), "staggered: no two jobs start together"
    template = (CHART / "templates" / "retention-cronjob.yaml").read_text()
    assert "range $name, $schedule := $r.schedules" in template
    assert 'command: ["python", "-m", "services.{{ $name }}", "retention"]' in template
    assert "concurrencyPolicy: Forbid" in template
    assert 'include "revisit.envFrom" $ctx' in template and 'include "revisit.secretEnv" $ctx' in template
    broken = copy.deepcopy(values())
    broken["retention"]["schedules"]["audit"] = "17 3 * * *"  # audit owns nothing retention deletes
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema())
