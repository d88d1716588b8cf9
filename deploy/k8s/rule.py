"""The PrometheusRule of deploy/k8s/base from deploy/prometheus/alerts.yml (same groups)."""

import sys

import yaml

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by `bash deploy/k8s/check.sh --write-rule`:
# edit alerts.yml (and its promtool tests), then regenerate. check.sh fails when the two differ.
"""


def _literal(dumper, text):
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(str, _literal)


def groups(alerts_path):
    with open(alerts_path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return doc["groups"]


def render(alerts_path):
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "quota", "labels": {"app.kubernetes.io/name": "quota"}},
        "spec": {"groups": groups(alerts_path)},
    }
    return HEADER + yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


if __name__ == "__main__":
    sys.stdout.write(render(sys.argv[1]))
