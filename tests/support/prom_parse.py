#!/usr/bin/env python3
"""Parses Prometheus text exposition from stdin with the Prometheus
project's own parser (prometheus_client) and prints the families as JSON.
Exits non-zero, with the parser's error on stderr, if the text is invalid.
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        "name": f.name,
        "type": f.type,
        "samples": [
            {"name": s.name, "labels": s.labels, "value": s.value}
            for s in f.samples
        ],
    })
json.dump(families, sys.stdout)
