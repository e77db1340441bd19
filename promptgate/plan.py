"""The generation plan: (prompt version x example x sample) -> chat request.

Everything is parsed and rendered here, before any call, so bad input fails fast and free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from promptgate.changes import GitRange, PromptChange
from promptgate.config import Config
from promptgate.dataset import Example, examples_from_test_data, parse_dataset
from promptgate.errors import BadInput
from promptgate.prompts import PromptTemplate, parse_prompt
from promptgate.providers.base import ChatRequest
from promptgate.report.model import Side


@dataclass
class PromptPlan:
    change: PromptChange
    baseline: PromptTemplate | None
    candidate: PromptTemplate | None
    examples: list[Example]
    dataset_path: str | None
    dataset_changed: bool
    #: requests[side][example index][sample index]
    requests: dict[Side, list[list[ChatRequest]]] = field(default_factory=dict)
    #: outputs[side][example index][sample index]; None where generation was given up
    outputs: dict[Side, list[list[str | None]]] = field(default_factory=dict)

    def sides(self) -> list[Side]:
        return [side for side in ("baseline", "candidate") if side in self.requests]

    def model_of(self, side: Side, config: Config) -> str:
        template = self.baseline if side == "baseline" else self.candidate
        return (template.model if template and template.model else None) or config.provider.model


def dataset_path_for(prompt_path: str, pattern: str, config_path: str = "promptgate.yaml") -> str:
    p = PurePosixPath(prompt_path)
    stem = p.name.split(".")[0]
    try:
        return pattern.format(stem=stem, name=p.name, dir=str(p.parent))
    except (KeyError, IndexError, ValueError) as exc:
        raise BadInput(
            f"dataset pattern '{pattern}' has an unknown placeholder; use {{stem}}, {{name}} or {{dir}}",
            file=config_path,
        ) from exc


def plan_prompt(
    rng: GitRange, change: PromptChange, config: Config, config_path: str
) -> PromptPlan:
    baseline_path = change.old_path or change.path
    baseline_text = (
        None if change.change == "added" else rng.read(rng.merge_base_sha, baseline_path)
    )
    candidate_text = None if change.change == "deleted" else rng.read(rng.head_sha, change.path)
    baseline = parse_prompt(baseline_path, baseline_text) if baseline_text is not None else None
    candidate = parse_prompt(change.path, candidate_text) if candidate_text is not None else None
    plan = PromptPlan(change, baseline, candidate, [], None, False)
    if candidate is None:  # deleted: nothing to run, reported as removed
        return plan
    plan.examples, plan.dataset_path, plan.dataset_changed = _examples(
        rng, change, candidate, config_path
    )
    versions: tuple[tuple[Side, PromptTemplate | None], ...] = (
        ("baseline", baseline),
        ("candidate", candidate),
    )
    for side, template in versions:
        if template is not None:
            plan.requests[side] = [
                _requests_for(template, example, config) for example in plan.examples
            ]
    return plan


def _examples(
    rng: GitRange, change: PromptChange, candidate: PromptTemplate, config_path: str
) -> tuple[list[Example], str | None, bool]:
    """The eval set, read from the head side so both versions run on the same examples."""
    if change.spec.dataset is None:
        if candidate.test_data:
            examples = examples_from_test_data(change.path, candidate.test_data, candidate.text)
            return examples, change.path, False
        raise BadInput(
            f"no eval set for {change.path}: set `dataset:` on its prompts entry in the config, "
            "or add testData to a .prompt.yml file",
            file=config_path,
        )
    path = dataset_path_for(change.path, change.spec.dataset, config_path)
    text = rng.read(rng.head_sha, path)
    if text is None:
        raise BadInput(
            f"eval set for {change.path} not found at head {rng.head_sha[:12]}; commit it or fix `dataset:`",
            file=path,
        )
    changed = rng.blob_id(rng.merge_base_sha, path) != rng.blob_id(rng.head_sha, path)
    return parse_dataset(path, text), path, changed


def _requests_for(template: PromptTemplate, example: Example, config: Config) -> list[ChatRequest]:
    messages = template.render(example.vars, example.id)
    parameters = dict(template.parameters)
    temperature = float(parameters.pop("temperature", config.provider.temperature))
    max_tokens = int(parameters.pop("max_tokens", config.provider.max_tokens))
    extra = tuple(sorted(parameters.items()))
    model = template.model or config.provider.model
    return [
        ChatRequest(
            model=model,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            extra_params=extra,
            sample_index=sample,
        )
        for sample in range(config.gate.samples)
    ]
