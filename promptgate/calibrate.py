"""`promptgate calibrate`: an A/A run that measures how far each metric moves on noise alone.

Every configured prompt at one ref is run twice against itself: `gate.samples` generations per
example (one with `auto`: its first round) as the "baseline" and as many fresh ones (distinct
cache keys) as the "candidate". The
paired bootstrap of that delta gives its standard error, which is what a no-op PR sees too.

The gate fails a metric when its mean delta < -max_drop (and the interval is below 0). On a no-op
PR the mean delta is about normal with that standard error, so a max_drop of z·SE fails a no-op
PR with probability at most 1 - Φ(z): the noise floor is z = 2.33 (1%), and the suggestion is
z = 3 (0.13%), leaving room for the estimate's own error and for PRs that make outputs less
alike than an A/A run does.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from promptgate.config import Config
from promptgate.errors import BadInput, CouldNotEvaluate
from promptgate.gate import plan_request
from promptgate.generation import ProgressStart, generate
from promptgate.plan import PromptPlan
from promptgate.report.format import decimals
from promptgate.report.model import CallStats, Side
from promptgate.request import GateRequest
from promptgate.scoring import Scorer, SideRows

NOISE_FLOOR_Z = 2.326  # one-sided 1%: a max_drop below this fails >1% of no-op PRs
SUGGESTED_Z = 3.0  # one-sided 0.13%


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricNoise(_Model):
    delta: float = 0.0
    ci_low: float = 0.0
    ci_high: float = 0.0
    standard_error: float = 0.0
    noise_floor: float = 0.0
    suggested_max_drop: float = 0.0
    max_drop: float
    status: str  # ok | tight | below-noise | no-noise


class PromptNoise(_Model):
    path: str
    examples: int
    metrics: dict[str, MetricNoise]


class Calibration(_Model):
    ref: str
    sha: str
    config_path: str
    samples: int
    confidence: float
    provider: str
    model: str
    temperature: float
    prompts: list[PromptNoise]
    suggested_max_drop: dict[str, float]
    calls: CallStats
    warnings: list[str] = Field(default_factory=list)


def calibrate(request: GateRequest, *, progress: ProgressStart | None = None) -> Calibration:
    """A/A-run every configured prompt at `request.head` and measure each metric's noise."""
    ref = request.head or "HEAD"
    planned = plan_request(
        request.model_copy(update={"base": ref, "head": ref, "all_prompts": True})
    )
    rng, gate_config = planned.rng, planned.gate_config
    config = gate_config.config
    if not planned.plans:
        raise BadInput(
            f"no file at {ref} matches the config's prompts; nothing to calibrate",
            file=gate_config.path,
        )
    plans = [_split(plan, config) for plan in planned.plans]
    repo_root = planned.repo_root
    calls, failures, scorer, warnings = generate(plans, config, request, repo_root, progress)
    if failures or calls.failed or scorer is None:
        raise CouldNotEvaluate(
            f"{calls.failed} generation(s) failed after retries; no noise figure is given from "
            "an incomplete run: " + "; ".join(failures[:3])
        )
    prompts = [_measure(plan, index, scorer, config) for index, plan in enumerate(plans)]
    return Calibration(
        ref=ref,
        sha=rng.head_sha,
        config_path=gate_config.path,
        samples=config.gate.first_samples,
        confidence=config.gate.confidence,
        provider=config.provider.kind,
        model=config.provider.model,
        temperature=config.provider.temperature,
        prompts=prompts,
        suggested_max_drop={
            name: max(p.metrics[name].suggested_max_drop for p in prompts)
            for name in config.metrics
        },
        calls=calls,
        warnings=warnings,
    )


def _split(plan: PromptPlan, config: Config) -> PromptPlan:
    """Both sides are the same prompt; the candidate's samples get their own cache keys."""
    shift = config.gate.first_samples
    plan.requests["candidate"] = [
        [r.model_copy(update={"sample_index": r.sample_index + shift}) for r in samples]
        for samples in plan.requests["candidate"]
    ]
    return plan


def _measure(plan: PromptPlan, index: int, scorer: Scorer, config: Config) -> PromptNoise:
    examples = range(len(plan.examples))
    sides: dict[Side, SideRows] = {
        side: scorer.side_rows(index, side, examples, config.gate.first_samples)
        for side in plan.sides()
    }
    measured = {
        name: noise_figures(
            name,
            delta=noise.delta,
            ci=(noise.ci_low, noise.ci_high),
            standard_error=noise.standard_error,
            max_drop=config.metrics[name].max_drop,
        )
        for name, noise in scorer.noise(sides, config.gate).items()
    }
    return PromptNoise(path=plan.change.path, examples=len(plan.examples), metrics=measured)


def noise_figures(
    metric: str, *, delta: float, ci: tuple[float, float], standard_error: float, max_drop: float
) -> MetricNoise:
    """The noise floor and suggested max_drop for one metric, and how the current one compares."""
    floor = NOISE_FLOOR_Z * standard_error
    suggested = round_up(SUGGESTED_Z * standard_error, decimals(metric))
    if standard_error == 0.0:
        status = "no-noise"
    elif max_drop < floor:
        status = "below-noise"
    elif max_drop < suggested:
        status = "tight"
    else:
        status = "ok"
    return MetricNoise(
        delta=delta,
        ci_low=ci[0],
        ci_high=ci[1],
        standard_error=standard_error,
        noise_floor=floor,
        suggested_max_drop=suggested,
        max_drop=max_drop,
        status=status,
    )


def round_up(value: float, places: int) -> float:
    """Up to the metric's display precision, so the printed suggestion is never below the need."""
    scale = 10**places
    return float(math.ceil(value * scale - 1e-9) / scale)
