"""The edge's packaging files parse and say what docs/edge.md says: YAML example, systemd, launchd, Docker."""

import configparser
import plistlib
from pathlib import Path

from prometheus_client import REGISTRY

import edge.metrics  # noqa: F401  (registers the edge's metrics)
from edge.config import EdgeSettings, load_cameras_file

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy" / "edge"


def test_cameras_example_is_a_valid_cameras_file():
    cameras = load_cameras_file(ROOT / "edge" / "cameras.example.yaml")
    assert cameras.tenant_id and [camera.camera_id for camera in cameras.cameras] == ["entrance", "checkout"]


def test_systemd_unit_restarts_always_and_reads_the_env_file():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "revisit-edge.service")
    service = unit["Service"]
    assert service["Restart"] == "always"
    assert service["EnvironmentFile"] == "/etc/revisit/edge.env"
    assert service["ExecStart"].split()[1:3] == ["run", "--config"]
    assert service["User"] != "root" and service["StateDirectory"] == "revisit-edge"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_launchd_plist_keeps_the_edge_alive():
    with (DEPLOY / "dev.revisit.edge.plist").open("rb") as handle:
        job = plistlib.load(handle)
    assert job["Label"] == "dev.revisit.edge"
    assert job["KeepAlive"] is True and job["RunAtLoad"] is True
    assert job["ProgramArguments"][1] == "run"
    assert set(job["EnvironmentVariables"]) >= {"REVISIT_NATS_URL", "REVISIT_EDGE_MODEL_DIR"}


def test_env_example_names_only_real_settings():
    names = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (DEPLOY / "edge.env.example").read_text().splitlines()
        if "=" in line and line.lstrip("# ").startswith("REVISIT_")
    }
    fields = {f"REVISIT_EDGE_{name.upper()}" for name in EdgeSettings.model_fields} | {"REVISIT_NATS_URL"}
    assert names and names <= fields


def test_dockerfile_runs_unprivileged_without_extras_and_with_mounted_models():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.count("FROM python:3.11-slim") == 2
    assert 'pip install --constraint constraints.txt ".[edge]"' in dockerfile
    assert "[embedded" not in dockerfile and "[dev" not in dockerfile and "[server" not in dockerfile
    assert "USER 10001:10001" in dockerfile and "REVISIT_EDGE_MODEL_DIR=/models" in dockerfile
    assert 'VOLUME ["/var/lib/revisit-edge"]' in dockerfile


def test_docs_name_every_setting_and_metric():
    doc = (ROOT / "docs" / "edge.md").read_text()
    missing = [name for name in EdgeSettings.model_fields if f"`{name}`" not in doc]
    assert not missing, f"docs/edge.md does not describe {missing}"
    families = {family.name for family in REGISTRY.collect() if family.name.startswith("revisit_edge_")}
    assert len(families) >= 14
    assert not [name for name in families if name not in doc]  # counters are collected without `_total`
