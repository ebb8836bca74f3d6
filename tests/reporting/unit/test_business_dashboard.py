"""The business dashboard charts the business gauges reporting exports, and only them (a renamed gauge would
leave an empty panel), and the chart's dashboards ConfigMap picks it up."""

import json
import re
from pathlib import Path

from prometheus_client import Counter, Gauge

from services.reporting import business_metrics

CHART = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "revisit"
DASHBOARD = CHART / "dashboards" / "revisit-business.json"
METRIC_NAME = re.compile(r"\brevisit_[a-z_]+")


def exported_metrics() -> set[str]:
    """The series names of the business module's metrics, as Prometheus sees them."""
    names = set()
    for metric in vars(business_metrics).values():
        if isinstance(metric, Counter):
            names.add(f"{metric._name}_total")
        elif isinstance(metric, Gauge):
            names.add(metric._name)
    return names


def test_the_business_dashboard_charts_every_business_gauge_and_nothing_else() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    queries = [target["expr"] for panel in panels for target in panel["targets"]]
    queries += [variable["definition"] for variable in dashboard["templating"]["list"] if "definition" in variable]
    used = {name for query in queries for name in METRIC_NAME.findall(query)}
    assert used == exported_metrics()
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    assert {"Visitors per site and day", "Occupancy now, per site", "Dwell distribution today"} <= {
        panel["title"] for panel in panels
    }


def test_the_dashboards_configmap_takes_every_dashboard_file() -> None:
    template = (CHART / "templates" / "dashboards-configmap.yaml").read_text()
    assert '.Files.Glob "dashboards/*.json"' in template
