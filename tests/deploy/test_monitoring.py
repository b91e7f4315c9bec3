"""The monitoring profile, checked offline: Prometheus scrapes the head's /metrics, Grafana is provisioned with
the dashboard, and every series the dashboard queries is one the platform exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from engines.core.metrics import Family
from gateway.metrics import FAMILIES

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "llm-platform.json"
METRIC = re.compile(r"\bllm_[a-z_]+\b")


def exported(family: Family) -> set[str]:
    if family.kind == "histogram":
        return {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    return {family.name}


def test_every_series_the_dashboard_queries_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name for panel in dashboard["panels"] for target in panel["targets"] for name in METRIC.findall(target["expr"])
    }
    names = set().union(*(exported(family) for family in FAMILIES))
    assert queried and queried <= names, queried - names
    charted = {name.removesuffix("_bucket") for name in queried}
    assert charted >= {family.name for family in FAMILIES}, "a family no panel shows"
    assert all(panel["datasource"]["uid"] == "platform-prometheus" for panel in dashboard["panels"])


def test_the_monitoring_profile_scrapes_the_head_and_provisions_the_dashboard() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    assert "profiles" not in services["head"], "the platform itself runs without the profile"
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    head_port = services["head"]["environment"]["SERVE_PORT"]
    assert job["metrics_path"] == "/metrics" and job["static_configs"] == [{"targets": [f"head:{head_port}"]}]
    mounts = dict(volume.rsplit(":", 1)[0].split(":", 1) for volume in services["grafana"]["volumes"])
    assert (
        REPO / mounts["./deploy/grafana/dashboards"].replace("/var/lib/grafana/dashboards", "deploy/grafana/dashboards")
    ).is_dir()
    provider = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/platform.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == mounts["./deploy/grafana/dashboards"]
    source = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert source["datasources"][0]["uid"] == "platform-prometheus"
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
