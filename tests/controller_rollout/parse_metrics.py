#!/usr/bin/python3
"""Parses a Prometheus text exposition with the reference client library's parser
(python3-prometheus-client) and prints {"name{label=value,...}": value} as JSON, so the C++ test
asserts on what a real scraper sees. Exits non-zero (with the parser's error) on malformed input."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = open(sys.argv[1], encoding="utf-8").read()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
        out[f"#type {family.name}"] = family.type
    json.dump(out, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
