"""The monitoring kit in deploy/ against the code: every metric a rule or panel queries exists.

The metric names are derived from the collectors the processes really register (BusMetrics,
the lag exporter's collector run against a stand-in admin, the registry's instrumentation),
so renaming a metric in the code without fixing the rules or the dashboard fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.catalog.registry_metrics import instrument
from services.catalog.scorecard_watch import families
from services.common.metrics import BusMetrics
from services.common.settings import Settings
from services.ingest import publisher
from services.ingest.adapters.command import configured_adapters
from services.ingest.adapters.output import AdapterMetrics
from services.ops import lag_exporter
from services.router import routing
from services.sink import app as sink_app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS_YML = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD_JSON = DEPLOY / "grafana" / "govbus-dashboard.json"

# How prometheus_client exposes each family type (families are named without the suffix).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
# An identifier starting govbus_ (or the builtin `up`) used as a metric: followed by a
# selector, a range, a closing parenthesis, a comma, whitespace or the end of the expression.
METRIC_RE = re.compile(r"\b(govbus_[A-Za-z0-9_:]+|up)(?=[\s{\[),]|$)")
STAGE_RE = re.compile(r'\bstage\s*=~?\s*"([^"]*)"')
SERVICE_RE = re.compile(r'\bservice\s*=~?\s*"([^"]*)"')
CJK_RE = re.compile(r"[\u4e00-\u9fff]")
LATIN_RE = re.compile(r"[A-Za-z]{3,}")
PORT_SETTING = {
    "govbus-router": "router_metrics_port",
    "govbus-sink": "sink_metrics_port",
    "govbus-ingest": "ingest_metrics_port",
    "govbus-lag": "lag_metrics_port",
    "govbus-registry": "registry_port",
}
# Adapters listen on the metrics_port their file in deploy/adapters/ names.
ADAPTERS_JOB = "govbus-adapters"
FAKE_LAGS = {"gov.psb.resident_population": 7}


def exposed_names(registry: CollectorRegistry) -> set[str]:
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture(scope="module")
def lag_samples() -> Iterator[list[Any]]:
    """The lag exporter's real collect(), with Kafka replaced by canned per-topic lags."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            lag_exporter,
            "groups_lags",
            lambda admin, groups, accept, timeout_s: {g: dict(FAKE_LAGS) for g in groups},
        )
        registry = CollectorRegistry()
        collector = lag_exporter.LagCollector(
            Settings(), topics=lambda: set(FAKE_LAGS), new_admin=lambda settings: object()
        )
        registry.register(collector)
        yield [sample for family in registry.collect() for sample in family.samples]


@pytest.fixture(scope="module")
def known_metrics(lag_samples: list[Any]) -> set[str]:
    bus = CollectorRegistry()
    BusMetrics(bus)
    reg = CollectorRegistry()
    instrument(FastAPI(), reg)
    adapters = CollectorRegistry()
    AdapterMetrics(adapters)
    lag_names = {sample.name for sample in lag_samples}
    sources = {
        "BusMetrics": exposed_names(bus),
        "registry": exposed_names(reg),
        "lag": lag_names,
        "adapters": exposed_names(adapters),
        "scorecard": {family.name for family in families(None)},
    }
    for source, names in sources.items():
        assert names, f"no metrics derived from {source}"
    return set().union(*sources.values()) | {"up"}


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS_YML.read_text(encoding="utf-8"))
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert rules
    return rules


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))  # collapsed rows nest their panels


def dashboard_queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    queries = [
        (panel["title"], target["expr"])
        for panel in all_panels(dash["panels"])
        for target in panel.get("targets", [])
    ]
    for var in dash.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if var.get("type") == "query" and query:
            queries.append((f"variable {var['name']}", query))
    return queries


def all_queries(rules: list[dict[str, Any]], dash: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f"alert {r['alert']}", r["expr"]) for r in rules] + dashboard_queries(dash)


def metric_names(expr: str) -> set[str]:
    return set(METRIC_RE.findall(expr))


def test_metric_regex_reads_promql() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (stage, le) "
        '(rate(govbus_processing_seconds_bucket{stage="x"}[5m]))) > 2 '
        "unless up == 0 or govbus_lag_exporter_up or sum(govbus_batch_size_count)"
    )
    assert metric_names(expr) == {
        "govbus_processing_seconds_bucket",
        "govbus_lag_exporter_up",
        "govbus_batch_size_count",
        "up",
    }
    assert metric_names('label_values(govbus_events_in_total, stage){job=~"govbus-.*"}') == {
        "govbus_events_in_total"
    }


def test_every_queried_metric_is_exposed(
    known_metrics: set[str], alert_rules: list[dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    problems = []
    for where, expr in all_queries(alert_rules, dashboard):
        names = metric_names(expr)
        if not names:
            problems.append(f"{where}: no metric found in {expr!r}")
        problems += [f"{where}: unknown metric {name}" for name in sorted(names - known_metrics)]
    assert not problems, "\n".join(problems)


def test_stage_and_service_label_values_exist(
    lag_samples: list[Any], alert_rules: list[dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    stages = {routing.STAGE, sink_app.STAGE, publisher.STAGE}
    services = {s.labels["service"] for s in lag_samples if "service" in s.labels}
    assert services
    problems = []
    for where, expr in all_queries(alert_rules, dashboard):
        for regex, allowed in ((STAGE_RE, stages), (SERVICE_RE, services)):
            for value in regex.findall(expr):
                if value.startswith("$"):  # a dashboard variable
                    continue
                unknown = set(value.split("|")) - allowed
                problems += [f"{where}: unknown label value {v!r}" for v in sorted(unknown)]
    assert not problems, "\n".join(problems)


def test_alerts_have_severity_and_bilingual_summary(alert_rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in alert_rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in alert_rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        summary = rule["annotations"]["summary"]
        assert CJK_RE.search(summary) and LATIN_RE.search(summary), rule["alert"]
        assert rule["annotations"].get("description"), rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]


def test_scrape_targets_match_settings_defaults() -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    assert config["global"]["scrape_interval"] == "15s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    adapter_ports = {a.metrics_port for a in configured_adapters(Settings()).values()}
    adapter_targets = [t for sc in jobs.pop(ADAPTERS_JOB)["static_configs"] for t in sc["targets"]]
    assert {int(t.rsplit(":", 1)[1]) for t in adapter_targets} == adapter_ports
    assert set(jobs) == set(PORT_SETTING)
    for name, job in jobs.items():
        assert job.get("scrape_interval", "15s") == "15s", name
        assert job.get("metrics_path", "/metrics") == "/metrics", name
        targets = [t for sc in job["static_configs"] for t in sc["targets"]]
        assert targets, name
        expected = Settings.model_fields[PORT_SETTING[name]].default
        for target in targets:
            assert int(target.rsplit(":", 1)[1]) == expected, f"{name}: {target}"


def test_rule_files_point_at_the_alert_rules() -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    paths = [(PROMETHEUS_YML.parent / p).resolve() for p in config["rule_files"]]
    assert ALERTS_YML.resolve() in paths


def test_dashboard_is_importable(dashboard: dict[str, Any]) -> None:
    panels = list(all_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    for panel in panels:
        assert CJK_RE.search(panel["title"]) and LATIN_RE.search(panel["title"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
