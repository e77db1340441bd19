"""The report (DESIGN.md "Report"): the JSON file is this model dumped; its schema is the model's."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from promptgate.config import DEFAULT_ERROR_RATE

SCHEMA_VERSION: Literal[1] = 1

Verdict = Literal["pass", "fail", "error"]
PromptVerdict = Literal["pass", "fail", "new", "removed", "error"]
ChangeKind = Literal["added", "modified", "renamed", "deleted", "unchanged"]
Side = Literal["baseline", "candidate"]  # the two versions of a prompt that are compared


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GitSide(Model):
    ref: str
    sha: str
    uncommitted: list[str] | None = Field(
        default=None,
        description="head only: the side is the working tree on top of commit `sha`, and "
        "these files differ from it (uncommitted edits, deletions and new files)",
    )


class PartialRun(Model):
    """A run on a subset of each eval set (`--limit`, `--examples`): a look while editing."""

    limit: int | None = Field(default=None, description="each eval set's first N examples")
    example_ids: list[str] = Field(default_factory=list, description="only these ids")
    examples: int = Field(description="examples judged, over every prompt")
    of: int = Field(description="examples in the judged prompts' eval sets")


class Look(Model):
    """One look at a metric under adaptive sampling (gate.samples: auto, sequential.py)."""

    samples: int = Field(description="generations per example and version at this look")
    p_value: float = Field(description="the look's one-sided paired t-test of no drop")
    share: float = Field(description="the share of the error rate this look may spend")


class MetricResult(Model):
    baseline: float | None = Field(description="null for an added prompt")
    candidate: float | None = Field(description="null for a deleted prompt")
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    threshold: float = Field(description="max_drop: the largest tolerated drop")
    min: float | None = None
    status: Literal["pass", "fail"]
    reason: str | None = Field(default=None, description="why a metric failed, in words")
    standard_error: float | None = Field(
        default=None,
        description="of the delta: the paired bootstrap's standard deviation x sqrt(n/(n-1))",
    )
    degrees_of_freedom: int | None = Field(default=None, description="of the t-test: n - 1")
    p_value: float | None = Field(default=None, description="one-sided paired t-test of no drop")
    p_adjusted: float | None = Field(
        default=None, description="p_value Holm-adjusted over every metric the PR changes"
    )
    decision_level: float | None = Field(
        default=None, description="the one-sided level this metric was tested at (Holm's step)"
    )
    decision_high: float | None = Field(
        default=None,
        description="upper end of the one-sided interval at decision_level: the interval used "
        "for the decision (below 0: a significant drop)",
    )
    significant: bool | None = Field(
        default=None, description="the drop is significant for the PR (p_adjusted <= error_rate)"
    )
    looks: list[Look] = Field(
        default_factory=list,
        description="with samples: auto, each look at this metric, the last one's figures above",
    )
    p_sequential: float | None = Field(
        default=None,
        description="with samples: auto, min over looks of p_value / share: what Holm adjusts",
    )

    @property
    def identical(self) -> bool:
        """Every example scored the same on both sides (a reformatted or renamed prompt at
        temperature 0): no evidence either way."""
        return self.delta == 0 and self.standard_error == 0


class ExampleChange(BaseModel):
    """One example's outputs before and after, with its per-metric deltas as extra keys."""

    model_config = ConfigDict(extra="allow")
    id: str
    baseline_output: str | None
    candidate_output: str | None

    def metric_deltas(self) -> dict[str, float]:
        return {k: float(v) for k, v in (self.model_extra or {}).items()}


class DatasetDiff(Model):
    """How the eval set changed between base and head, in examples matched by id."""

    added: int = Field(ge=0, description="ids only at head")
    removed: int = Field(ge=0, description="ids only at base")
    reference_changed: int = Field(ge=0, description="ids on both sides whose `expected` differs")
    vars_changed: int = Field(
        default=0, ge=0, description="ids on both sides whose `vars` differ (counted on their own)"
    )

    @property
    def examples_changed(self) -> int:
        return self.added + self.removed + self.reference_changed + self.vars_changed


class SamplingRound(Model):
    """One round of generations for a prompt under adaptive sampling."""

    samples: int = Field(description="generations per example and version after this round")
    requests: int = Field(description="requests this round added, both versions")
    undecided: list[str] = Field(
        default_factory=list, description="metrics still undecided after this round"
    )


class PromptReport(Model):
    path: str
    old_path: str | None
    change: ChangeKind
    dataset: str | None = None
    dataset_changed: bool = False
    dataset_diff: DatasetDiff | None = Field(
        default=None, description="set when dataset_changed: examples added, removed, changed"
    )
    verdict: PromptVerdict
    reason: str | None = Field(
        default=None,
        description="why the verdict is fail when no metric failed "
        "(gate.on_dataset_change: fail and the eval set changed)",
    )
    examples: int = 0
    failed_examples: list[str] = Field(
        default_factory=list,
        description="ids left out because a generation was given up (gate.max_failed_share)",
    )
    refused_examples: dict[str, dict[Side, str]] = Field(
        default_factory=dict,
        description="example id -> version -> why a content filter or the model refused its "
        "answer (e.g. content_filter: answer, refusal: model); only refused examples",
    )
    metrics: dict[str, MetricResult] = Field(default_factory=dict)
    signatures: dict[str, str] = Field(
        default_factory=dict,
        description="each metric's signature as this prompt's eval set was scored (with "
        "metrics.bleu.tokenize: auto, BLEU's tokenizer is chosen per eval set)",
    )
    notes: list[str] = Field(
        default_factory=list,
        description="how the metrics read this eval set: mostly non-Latin references, or a BLEU "
        "tokenizer that does not suit their script",
    )
    top_regressions: list[ExampleChange] = Field(default_factory=list)
    usage: dict[Side, Usage] = Field(
        default_factory=dict, description="what each version's answers cost, per side"
    )
    samples: int | None = Field(
        default=None, description="generations per example and version that were scored"
    )
    rounds: list[SamplingRound] = Field(
        default_factory=list, description="with samples: auto, each round of generations"
    )
    baseline_hash: str | None = None
    candidate_hash: str | None = None
    model: str | None = None
    diff: str | None = Field(default=None, description="unified diff of the prompt file")
    error: str | None = None


class Usage(Model):
    """What a set of answers cost (DESIGN.md "Usage"): every answer counts, cached ones with the
    figures of the call that first got them."""

    calls: int = Field(default=0, description="answers, cached ones included")
    cached: int = Field(default=0, description="of which from the cache or a duplicate request")
    refused: int = Field(
        default=0,
        description="of which a content filter or the model refused (scored as the text "
        "kept, usually none)",
    )
    reported: int = Field(
        default=0, description="answers whose token counts the server reported (the token sums')"
    )
    prompt_tokens: int | None = Field(default=None, description="null: no answer reported any")
    completion_tokens: int | None = None
    latency_ms_p50: float | None = Field(
        default=None, description="of the calls' latencies (linear interpolation)"
    )
    latency_ms_p95: float | None = None
    cost_usd: float | None = Field(
        default=None, description="of the reported tokens at provider.price; null without one"
    )

    @property
    def tokens_per_call(self) -> float | None:
        if not self.reported or self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return (self.prompt_tokens + self.completion_tokens) / self.reported

    @property
    def cost_per_1000_calls(self) -> float | None:
        return (
            None
            if self.cost_usd is None or not self.reported
            else self.cost_usd / self.reported * 1000
        )


class CallStats(Model):
    requested: int = 0
    cached: int = 0
    made: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = Field(
        default=0, description="not sent: an earlier answer showed none could succeed (bad key)"
    )

    def __add__(self, other: CallStats) -> CallStats:
        """The counts of two runs together (the rounds of one gate run)."""
        return CallStats(
            **{name: getattr(self, name) + getattr(other, name) for name in CallStats.model_fields}
        )


class MlflowInfo(Model):
    tracking_uri: str | None = None
    experiment_id: str | None = None
    run_id: str | None = None
    url: str | None = None
    warning: str | None = None


class ConfigChange(Model):
    """One setting the PR's config changes; the base's value is the one that governed the run."""

    setting: str = Field(description="dotted path, e.g. metrics.rougeL.max_drop")
    base: Any = None
    head: Any = None
    loosens: bool = Field(default=False, description="makes a regression easier to pass")


class GateInfo(Model):
    """What decided the verdict, so a number is reproducible."""

    rule: str
    confidence: float
    error_rate: float = Field(
        default=DEFAULT_ERROR_RATE, description="PR-level false-fail rate (Holm)"
    )
    tests: int = Field(default=0, description="(prompt, metric) tests the error rate covers")
    samples: int = Field(description="generations per example and version (first round)")
    adaptive: bool = Field(default=False, description="gate.samples: auto")
    max_samples: int | None = Field(default=None, description="with samples: auto, the most")
    rounds: int = Field(default=1, description="rounds of generations the run took")
    bootstrap_resamples: int
    seed: int
    config_path: str | None
    config_source: Literal["base", "head", "file"] | None
    config_hash: str | None
    provider: str | None
    model: str | None
    signatures: dict[str, str] = Field(default_factory=dict)
    on_dataset_change: Literal["warn", "fail"] = "warn"


class Override(Model):
    """An override label on a failed PR: accepted (step passes, verdict stays fail) or refused."""

    label: str
    accepted: bool
    actor: str | None = Field(default=None, description="who added the label last")
    permission: str | None = Field(default=None, description="their role on the repository")
    applied_at: str | None = None
    reason: str | None = Field(default=None, description="why it was refused")


class Report(Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    verdict: Verdict
    base: GitSide
    head: GitSide
    config_changed: bool = False
    config_changes: list[ConfigChange] = Field(default_factory=list)
    prompts: list[PromptReport] = Field(default_factory=list)
    calls: CallStats = Field(default_factory=CallStats)
    usage: Usage | None = Field(default=None, description="every answer of the run together")
    mlflow: MlflowInfo = Field(default_factory=MlflowInfo)
    gate: GateInfo | None = None
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(
        default_factory=list,
        description="what promptgate did not trust or use, and why (a committed cache, a link)",
    )
    pr_number: int | None = None
    override: Override | None = None
    notes: list[str] = Field(
        default_factory=list,
        description="what was judged, when it is not a plain base..head comparison (no base, "
        "the working tree, a subset)",
    )
    partial: PartialRun | None = Field(
        default=None,
        description="set when only a subset of the examples was judged: not a verdict for CI",
    )
