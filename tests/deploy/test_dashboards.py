"""Every Grafana dashboard in deploy/helm/revisit/dashboards/ (the chart's ConfigMap loads each file there) is
loaded by Grafana's own types (grafana-foundation-sdk): known panel plugins with their options, queries of a
known data source kind, and Prometheus queries that only name metrics the code declares."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog import plugins, runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import prometheus
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "helm" / "revisit" / "dashboards").glob("*.json"))
METRIC_NAME = re.compile(r"\brevisit_[a-z_]+")

plugins.register_default_plugins()


def declared_metrics() -> set[str]:
    names = {
        name
        for package in ("services", "edge")
        for path in (ROOT / package).rglob("*.py")
        for name in re.findall(r"(?:Counter|Gauge|Histogram)\(\s*[\"'](revisit_[a-z_]+)[\"']", path.read_text())
    }
    return names | {f"{name}_{suffix}" for name in names for suffix in ("bucket", "sum", "count")}


def load(path: Path) -> Dashboard:
    return Dashboard.from_json(json.loads(path.read_text()))


def panels(dashboard: Dashboard) -> list[Panel]:
    found: list[Panel] = []
    for panel in dashboard.panels or []:
        if isinstance(panel, RowPanel):
            found += [inner for inner in panel.panels or [] if isinstance(inner, Panel)]
        else:
            found.append(panel)
    return found


def test_there_is_a_dashboard() -> None:
    assert any(path.name == "revisit-overview.json" for path in DASHBOARDS)


def test_dashboard_uids_are_unique() -> None:
    uids = [load(path).uid for path in DASHBOARDS]
    assert all(uids) and len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_grafana_types_load_the_dashboard(path: Path) -> None:
    dashboard = load(path)
    assert dashboard.title and dashboard.uid and dashboard.schema_version >= 36
    loaded = panels(dashboard)
    assert loaded, "a dashboard without panels"
    for panel in loaded:
        config = runtime.panelcfg_config(panel.type_val)
        assert config is not None, f"{panel.title}: panel type {panel.type_val!r} is no Grafana panel plugin"
        if panel.options is not None and config.options_from_json_hook is not None:
            assert not isinstance(panel.options, dict), f"{panel.title}: options Grafana's types cannot read"
        assert panel.targets, f"{panel.title}: no query"
        for target in panel.targets:
            assert not isinstance(target, runtime.UnknownDataquery), f"{panel.title}: a query of an unknown data source"
    again = Dashboard.from_json(json.loads(json.dumps(dashboard, cls=JSONEncoder)))
    assert [p.title for p in panels(again)] == [p.title for p in loaded]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_prometheus_queries_name_only_declared_metrics(path: Path) -> None:
    queries = [
        target.expr
        for panel in panels(load(path))
        for target in panel.targets or []
        if isinstance(target, prometheus.Dataquery)
    ]
    used = {name for query in queries for name in METRIC_NAME.findall(query)}
    assert used <= declared_metrics(), f"unknown metrics: {sorted(used - declared_metrics())}"


def test_the_overview_shows_the_edge_and_the_consumers() -> None:
    queries = " ".join(
        target.expr
        for panel in panels(load(ROOT / "deploy/helm/revisit/dashboards/revisit-overview.json"))
        for target in panel.targets or []
        if isinstance(target, prometheus.Dataquery)
    )
    for metric in ("revisit_messages_consumed_total", "revisit_edge_frames_total", "revisit_edge_outbox_depth"):
        assert metric in queries


def test_an_unknown_panel_type_is_caught() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARDS[0].read_text())
    dashboard["panels"] = [{"type": "timeseriez", "title": "typo", "targets": []}]
    (panel,) = panels(Dashboard.from_json(dashboard))
    assert runtime.panelcfg_config(panel.type_val) is None
