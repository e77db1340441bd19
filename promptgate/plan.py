"""The generation plan: (prompt version x example x sample) -> chat request.

Everything is parsed and rendered here, before any call, so bad input fails fast and free.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from string import Formatter

from promptgate.changes import GitRange, PromptChange
from promptgate.config import Config, PromptSpec
from promptgate.dataset import Example, examples_from_test_data, parse_dataset
from promptgate.errors import BadInput
from promptgate.prompts import PromptTemplate, parse_prompt
from promptgate.providers.base import ChatRequest, Completion
from promptgate.providers.parameters import sampling_temperature
from promptgate.report.model import DatasetDiff, Side


@dataclass(frozen=True)
class ExampleSubset:
    """`--limit N` / `--examples ID,...`: the part of each eval set a partial run judges."""

    limit: int | None = None
    ids: frozenset[str] = frozenset()

    def pick(self, examples: Sequence[Example]) -> list[Example]:
        chosen = [e for e in examples if not self.ids or e.id in self.ids]
        return chosen[: self.limit] if self.limit is not None else chosen


@dataclass
class PromptPlan:
    change: PromptChange
    baseline: PromptTemplate | None
    candidate: PromptTemplate | None
    examples: list[Example]
    dataset_path: str | None
    dataset_changed: bool
    #: how the eval set differs from the baseline's; None when it does not
    dataset_diff: DatasetDiff | None = None
    #: requests[side][example index][sample index]
    requests: dict[Side, list[list[ChatRequest]]] = field(default_factory=dict)
    #: outputs[side][example index][sample index]; None where generation was given up
    outputs: dict[Side, list[list[str | None]]] = field(default_factory=dict)
    #: every answer each side got, over all rounds: what its calls cost (usage.py)
    answers: dict[Side, list[Completion]] = field(default_factory=dict)
    #: refusals[side][example index]: why its first refused sample was refused
    refusals: dict[Side, dict[int, str]] = field(default_factory=dict)
    #: examples in the eval set; more than len(examples) in a partial run
    examples_total: int = 0

    def sides(self) -> list[Side]:
        return [side for side in ("baseline", "candidate") if side in self.requests]

    @property
    def samples(self) -> int:
        """Generations per example and version the plan holds (0 without examples)."""
        for side in self.sides():
            if self.requests[side]:
                return len(self.requests[side][0])
        return 0

    @property
    def sampled(self) -> bool:
        """Whether its answers are drawn at temperature > 0, so another sample differs."""
        return any(
            self.requests[side][0][0].temperature > 0
            for side in self.sides()
            if self.requests[side]  # every request of a side shares its parameters
        )

    def add_sample(self) -> list[tuple[Side, int, int]]:
        """One more generation for every example on each side (adaptive sampling): where
        each new request sits, as (side, example, sample)."""
        added = []
        for side in self.sides():
            for example, samples in enumerate(self.requests[side]):
                samples.append(samples[0].model_copy(update={"sample_index": len(samples)}))
                added.append((side, example, len(samples) - 1))
        return added

    def model_of(self, side: Side, config: Config) -> str:
        template = self.baseline if side == "baseline" else self.candidate
        return (template.model if template and template.model else None) or config.provider.model


def dataset_path_for(prompt_path: str, pattern: str, config_path: str = "promptgate.yaml") -> str:
    """The eval set's path in the repository: the pattern's placeholders filled in, then
    normalised (`./evals/x.jsonl`, `{dir}/x.jsonl` for a prompt at the root, `a//b`)."""
    p = PurePosixPath(prompt_path)
    values = {"stem": p.name.split(".")[0], "name": p.name, "dir": str(p.parent)}
    try:
        # Only bare placeholders: `{dir.__class__}` or `{stem:>999999999}` are not paths.
        fields = [
            field
            for _, field, spec, conversion in Formatter().parse(pattern)
            if field is not None and (field not in values or spec or conversion)
        ]
        if fields:
            raise KeyError(fields[0])
        path = posixpath.normpath(pattern.format(**values))
    except (KeyError, IndexError, ValueError) as exc:
        raise BadInput(
            f"dataset pattern '{pattern}' has a placeholder other than {{stem}}, {{name}} or "
            "{dir}; use only those, written plainly",
            file=config_path,
        ) from exc
    if path == "." or path == ".." or path.startswith(("/", "../")):
        raise BadInput(
            f"dataset pattern '{pattern}' gives '{path}' for {prompt_path}, which is not a file "
            "in this repository; write the eval set's path from the repository root",
            file=config_path,
        )
    return path


def eval_set_of(prompt_path: str, spec: PromptSpec) -> str | None:
    """The eval-set file of a prompt under its config entry; None when the entry names none, or
    its pattern is bad (that is reported when a prompt using it is planned)."""
    if spec.dataset is None:
        return None
    try:
        return dataset_path_for(prompt_path, spec.dataset)
    except BadInput:
        return None


def plan_prompt(
    rng: GitRange,
    change: PromptChange,
    config: Config,
    config_path: str,
    subset: ExampleSubset = ExampleSubset(),
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
    examples, plan.dataset_path, plan.dataset_diff = _examples(
        rng, change, baseline, candidate, config_path
    )
    plan.examples, plan.examples_total = subset.pick(examples), len(examples)
    plan.dataset_changed = plan.dataset_diff is not None
    versions: tuple[tuple[Side, PromptTemplate | None], ...] = (
        ("baseline", baseline),
        ("candidate", candidate),
    )
    for side, template in versions:
        if template is not None:
            _check_model_reachable(template, config)
            seen: Counter[ChatRequest] = Counter()
            plan.requests[side] = [
                _requests_for(template, example, config, seen) for example in plan.examples
            ]
    return plan


def _check_model_reachable(template: PromptTemplate, config: Config) -> None:
    """On Azure's deployment URLs the deployment, not the body, decides the model: a prompt
    file pinning another model would silently run on the configured one."""
    provider = config.provider
    if provider.kind != "azure-openai" or provider.api_version == "v1":
        return
    if template.model is None or template.model == provider.model:
        return
    deployment = provider.deployment or provider.model
    raise BadInput(
        f"this prompt names model {template.model!r}, but every call goes to the Azure "
        f"deployment {deployment!r} (provider.model {provider.model!r}), which decides the "
        "model; remove the prompt's model, or set provider.api_version: v1 so that each "
        "request names its deployment by the model field",
        file=template.path,
    )


def _examples(
    rng: GitRange,
    change: PromptChange,
    baseline: PromptTemplate | None,
    candidate: PromptTemplate,
    config_path: str,
) -> tuple[list[Example], str | None, DatasetDiff | None]:
    """The eval set, read from the head side so both versions run on the same examples, and
    how it differs from the baseline's eval set (None: it does not)."""
    if change.spec.dataset is None:
        if candidate.test_data:
            examples = examples_from_test_data(change.path, candidate.test_data, candidate.text)
            return examples, change.path, _test_data_diff(baseline, candidate, examples)
        raise BadInput(
            f"no eval set for {change.path}: set `dataset:` on its prompts entry in the config, "
            "or add testData to a .prompt.yml file",
            file=config_path,
        )
    path = dataset_path_for(change.path, change.spec.dataset, config_path)
    text = rng.read(rng.head_sha, path)
    if text is None:
        raise BadInput(
            f"eval set for {change.path} not found at head {rng.head_ref} "
            f"({rng.shown_head_sha[:12]}); commit it or fix `dataset:`",
            file=path,
        )
    examples = parse_dataset(path, text)
    # A renamed prompt's baseline used the eval set of its old path (the same file unless the
    # pattern names the prompt, as `{stem}` does).
    base_path = (
        dataset_path_for(change.old_path, change.spec.dataset, config_path)
        if change.old_path
        else path
    )
    return examples, path, _file_diff(rng, change, base_path, path, examples)


def _test_data_diff(
    baseline: PromptTemplate | None, candidate: PromptTemplate, examples: list[Example]
) -> DatasetDiff | None:
    if baseline is None or baseline.test_data == candidate.test_data:
        return None  # an added prompt's testData arrives with it: there is nothing to compare
    before = _base_examples(
        lambda: examples_from_test_data(baseline.path, baseline.test_data or [], baseline.text)
    )
    return dataset_diff(before, examples)


def _file_diff(
    rng: GitRange, change: PromptChange, base_path: str, path: str, examples: list[Example]
) -> DatasetDiff | None:
    base_blob = rng.blob_id(rng.merge_base_sha, base_path)
    if base_blob == rng.blob_id(rng.head_sha, path):
        return None
    if base_blob is None and change.change == "added":
        return None  # a new eval set arriving with its new prompt
    before = _base_examples(
        lambda: parse_dataset(base_path, rng.read(rng.merge_base_sha, base_path) or "")
    )
    return dataset_diff(before, examples)


def _base_examples(read: Callable[[], list[Example]]) -> list[Example]:
    """The baseline's examples; an eval set the base lacks or cannot parse counts as empty (the
    PR may be adding or fixing it), so every head example is `added`."""
    try:
        return read()
    except BadInput:
        return []


def dataset_diff(base: Sequence[Example], head: Sequence[Example]) -> DatasetDiff:
    """Examples matched by id: added and removed ids, and ids on both sides whose reference
    (`expected`) or whose vars differ; an id whose both changed counts in both."""
    before = {example.id: example for example in base}
    after = {example.id: example for example in head}
    both = before.keys() & after.keys()
    return DatasetDiff(
        added=len(after.keys() - before.keys()),
        removed=len(before.keys() - after.keys()),
        reference_changed=sum(before[i].expected != after[i].expected for i in both),
        vars_changed=sum(before[i].vars != after[i].vars for i in both),
    )


def _requests_for(
    template: PromptTemplate, example: Example, config: Config, seen: Counter[ChatRequest]
) -> list[ChatRequest]:
    """The example's requests, one per sample. `seen` counts the requests this side's earlier
    examples rendered: at temperature > 0 an example whose input repeats an earlier one gets
    its own `repeat` number, hence its own cache key and call, because the bootstrap counts
    every example as an independent draw. At temperature 0 the answer is fixed and one call
    serves every repeat (and the key stays what it always was)."""
    messages = template.render(example.vars, example.id)
    parameters = dict(template.parameters)
    model = template.model or config.provider.model
    temperature = sampling_temperature(
        model, float(parameters.pop("temperature", config.provider.temperature))
    )
    max_tokens = int(parameters.pop("max_tokens", config.provider.max_tokens))
    if config.provider.seed is not None:
        parameters.setdefault("seed", config.provider.seed)
    extra = tuple(sorted(parameters.items()))
    first = ChatRequest(
        model=model,
        messages=messages,
        temperature=temperature,
        max_tokens=max_tokens,
        extra_params=extra,
    )
    repeat = 0
    if temperature > 0:
        repeat = seen[first]
        seen[first] += 1
    return [
        first.model_copy(update={"sample_index": sample, "repeat": repeat})
        for sample in range(config.gate.first_samples)
    ]
