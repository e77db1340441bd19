"""What the gate learned about one prompt, beyond the report: every example's outputs and scores.

The JSON report keeps aggregates and the top regressions; trackers (MLflow) get all of this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from promptgate.report.model import PromptReport, Side


class ExampleResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    expected: str
    inputs: dict[str, Any] = {}  # the example's variables, as the prompt was rendered with them
    baseline_outputs: list[str] | None = None  # k samples; None when the prompt was added
    candidate_outputs: list[str] | None = None  # None when the prompt was deleted
    baseline_scores: dict[str, float] = {}  # metric -> this example's score (mean of samples)
    candidate_scores: dict[str, float] = {}
    #: why a content filter or the model refused a sample of this side, if one was refused
    baseline_refusal: str | None = None
    candidate_refusal: str | None = None

    def refusals(self) -> dict[Side, str]:
        found: dict[Side, str] = {}
        if self.baseline_refusal is not None:
            found["baseline"] = self.baseline_refusal
        if self.candidate_refusal is not None:
            found["candidate"] = self.candidate_refusal
        return found

    def drop(self, thresholds: Mapping[str, float]) -> float:
        """How far the candidate fell, summed over metrics in units of each one's max_drop
        (negative: worse); what ranks the worst examples."""
        return sum(delta / (thresholds.get(name) or 1.0) for name, delta in self.deltas().items())

    def deltas(self) -> dict[str, float]:
        return {
            name: self.candidate_scores[name] - self.baseline_scores[name]
            for name in self.candidate_scores
            if name in self.baseline_scores
        }


class GenerationSettings(BaseModel):
    """The model and parameters one prompt version ran with (a .prompt.yml may override them)."""

    model_config = ConfigDict(extra="forbid")
    model: str
    temperature: float
    max_tokens: int


class PromptEvaluation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    report: PromptReport
    baseline_text: str | None  # the prompt file's text on the base side
    candidate_text: str | None  # ... and on the head side
    examples: list[ExampleResult] = []
    # "baseline" / "candidate" -> what that version ran with; trackers log it as params.
    generation: dict[str, GenerationSettings] = {}


def worst_first(
    examples: Sequence[ExampleResult], thresholds: Mapping[str, float]
) -> list[ExampleResult]:
    """The examples, the biggest drop (in units of each metric's max_drop) first."""
    drops = {id(example): example.drop(thresholds) for example in examples}
    return sorted(examples, key=lambda example: drops[id(example)])
