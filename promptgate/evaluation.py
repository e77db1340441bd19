"""What the gate learned about one prompt, beyond the report: every example's outputs and scores.

The JSON report keeps aggregates and the top regressions; trackers (MLflow) get all of this.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from promptgate.report.model import PromptReport, Side


class ExampleResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    expected: str
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
