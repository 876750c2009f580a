"""A strict reading of the Prometheus text format (what Prometheus' own
parser insists on, and prometheus_client's lenient parser lets through):
every sample sits under the ``# TYPE`` of its own family, and no family is
declared twice."""

from typing import Any, List

SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "untyped": ("",),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("", "_count", "_sum", "_created"), "info": ("_info",)}


def families(text: str) -> List[str]:
    """``"name type"`` of each ``# TYPE`` line, in order."""
    return [" ".join(line.split()[2:4]) for line in text.splitlines()
            if line.startswith("# TYPE ")]


def assert_well_formed(case: Any, text: str) -> None:
    declared = families(text)
    case.assertEqual(len(declared), len(set(declared)), "a family declared twice")
    family = kind = None
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            family, kind = line.split()[2:4]
        elif line and not line.startswith("#"):
            case.assertIsNotNone(family, line)
            sample = line.split("{")[0].split(" ")[0]
            base = family[:-len("_total")] if kind == "counter" else family
            case.assertIn(sample, {base + s for s in SUFFIXES[kind]}, line)
