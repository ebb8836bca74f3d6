"""The alert rules checked by Prometheus' own promtool (from Debian's prometheus package, `make tools`): the file
parses and every rule compiles (`promtool check rules`), and every alert fires on the first burst of what it
watches with the labels and annotations an operator gets (`promtool test rules`,
tests/deploy/rules/revisit-alerts.test.yaml). Alerts and the dashboard only use metrics the code declares, and
each alert has its runbook section in docs/operations.md."""

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "helm" / "revisit" / "rules" / "revisit-alerts.yaml"
RULE_TESTS = Path(__file__).resolve().parent / "rules" / "revisit-alerts.test.yaml"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
PROMTOOL = Path(os.environ.get("PROMTOOL", ROOT / ".tools" / "bin" / "promtool"))
METRIC_NAME = re.compile(r"\brevisit_[a-z_]+")
OTHER_METRICS = {"up", "kube_pod_container_status_ready"}
"""From Prometheus itself and kube-state-metrics."""


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    if not PROMTOOL.exists():
        pytest.fail(f"{PROMTOOL} is missing: run `make tools` (promtool from Debian's prometheus package)")
    return subprocess.run([str(PROMTOOL), *arguments], capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def declared_metrics() -> set[str]:
    """Every metric name the services and the edge declare, with the series a histogram adds."""
    names = {
        name
        for package in ("services", "edge")
        for path in (ROOT / package).rglob("*.py")
        for name in re.findall(r"(?:Counter|Gauge|Histogram)\(\s*[\"'](revisit_[a-z_]+)[\"']", path.read_text())
    }
    return names | {f"{name}_{suffix}" for name in names for suffix in ("bucket", "sum", "count")}


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_test_rules_every_alert_fires_on_a_first_burst() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    quiet_first = {
        case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case.get("exp_alerts") == []
    }
    names = {rule["alert"] for rule in alert_rules()}
    assert fired == names, f"alerts no test shows firing: {sorted(names - fired)}"
    assert quiet_first == names, f"alerts no test shows quiet before the burst: {sorted(names - quiet_first)}"


def test_promtool_test_rules_fails_a_wrong_expectation(tmp_path: Path) -> None:
    """The rule tests can fail: an expected alert that does not fire is reported."""
    broken = RULE_TESTS.read_text().replace("dropped 5 events", "dropped 6 events")
    copy = RULE_TESTS.parent / "broken.test.yaml"
    copy.write_text(broken)
    try:
        result = promtool("test", "rules", str(copy))
    finally:
        copy.unlink()
    assert result.returncode != 0 and "RevisitEdgeOutboxDropping" in result.stdout + result.stderr


def test_alert_rules_use_only_metrics_the_code_declares() -> None:
    used = set(METRIC_NAME.findall(RULES.read_text()))
    assert {"revisit_messages_consumed_total", "revisit_edge_stream_up", "revisit_edge_stream_frozen"} <= used
    assert used <= declared_metrics(), f"unknown metrics in alert rules: {sorted(used - declared_metrics())}"
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    bare = set(re.findall(r"\b([a-z_]+)\{", exprs)) - {name for name in used} - {"absent"}
    assert bare <= OTHER_METRICS, bare


def test_alert_rules_are_complete_and_documented() -> None:
    runbook = OPERATIONS_DOC.read_text().lower()
    rules = alert_rules()
    assert len(rules) >= 13
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()
        assert f"### {anchor}" in runbook, f"{rule['alert']} has no runbook section in docs/operations.md"


def test_absent_alerts_cover_every_service_and_the_edges() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    chart_values = yaml.safe_load((ROOT / "deploy" / "helm" / "revisit" / "values.yaml").read_text())
    components = set(chart_values["services"])
    assert {"ingest", "matcher", "identity", "reporting", "audit", "console"} <= components
    for service in components:
        assert f'absent(up{{app="revisit", component="{service}"}})' in exprs["RevisitServiceTargetsAbsent"]
    assert 'absent(up{job="revisit-edge"})' in exprs["RevisitEdgeTargetsAbsent"]
