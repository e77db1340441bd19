"""Metric registry. Adding a metric is one module under metrics/ and one line here.

Names map to "module:Class" so that reading a config never imports a heavy library (not even
numpy, which the gate's own process does without); a metric's own module imports its library
only when it scores.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from promptgate.config import MetricConfig
    from promptgate.metrics.base import Metric

METRICS: dict[str, str] = {
    "bleu": "promptgate.metrics.bleu:Bleu",
    "rougeL": "promptgate.metrics.rouge:RougeL",
    "semantic": "promptgate.metrics.semantic:SemanticSimilarity",
}


def make_metric(name: str, config: MetricConfig) -> Metric:
    module_name, class_name = METRICS[name].split(":")
    metric_class: type[Metric] = getattr(importlib.import_module(module_name), class_name)
    return metric_class(config)


__all__ = ["METRICS", "make_metric"]
