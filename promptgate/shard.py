"""Scale-out: `run --shard i/n` makes one slice of the calls, `merge` judges them all at once.

The work is the list of (prompt, example) pairs, prompts in path order and each prompt's
examples in eval-set order; shard i of n takes the i-th of n contiguous, near-equal runs of it
(so a prompt is split over as few shards as possible) and makes every call of its pairs, both
versions and every sample. A shard's answers go to a cache file in its directory beside a
manifest saying what it covered. `merge` copies every shard's answers into one cache and runs
the ordinary gate (CLI or Action) on it with sending switched off: the verdict, metrics, comment and MLflow run
are those of an unsharded run by construction, and an answer no shard made is an error, never
a call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from promptgate.cache import ResponseCache, default_cache_path, open_cache
from promptgate.changes import open_repo, resolve_range
from promptgate.errors import BadInput, CouldNotEvaluate
from promptgate.gate import plan_request, write_atomically
from promptgate.generation import ProgressStart
from promptgate.plan import PromptPlan
from promptgate.providers import make_provider
from promptgate.providers.base import ChatRequest
from promptgate.report.model import CallStats, GitSide
from promptgate.request import GateRequest
from promptgate.runner import run_requests_sync
from promptgate.trust import untrusted_reason

MANIFEST = "manifest.json"
CACHE = "cache.sqlite3"
_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


class Shard(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    index: int  # 1-based, as a workflow matrix counts
    count: int


class ShardManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: int = 1
    shard: Shard
    base: GitSide
    head: GitSide
    config_hash: str
    pairs: int  # (prompt, example) pairs this shard covered
    total_pairs: int
    calls: CallStats


def parse_shard(text: str) -> Shard:
    match = _SHARD.fullmatch(text)
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise BadInput(
            f"--shard {text!r} is not i/n with 1 <= i <= n, e.g. --shard 2/4", file="--shard"
        )
    return Shard(index=int(match[1]), count=int(match[2]))


def shard_slice(total: int, shard: Shard) -> range:
    """The shard's contiguous run of `total` items; the n runs partition them, sizes +-1."""
    start = (shard.index - 1) * total // shard.count
    return range(start, shard.index * total // shard.count)


def run_shard(
    request: GateRequest, shard: Shard, directory: Path, *, progress: ProgressStart | None = None
) -> ShardManifest:
    """Make the calls of this shard's pairs into `directory`/cache.sqlite3; write its manifest."""
    planned = plan_request(request)
    rng, config = planned.rng, planned.gate_config.config
    if config.gate.adaptive:
        raise BadInput(
            "gate.samples: auto decides after each round of calls whether to draw more, which "
            "shards made ahead of the merge cannot; set a fixed gate.samples for a sharded run",
            file=planned.gate_config.path,
        )
    pairs = [(plan, example) for plan in planned.plans for example in range(len(plan.examples))]
    mine = [pairs[i] for i in shard_slice(len(pairs), shard)]
    requests = _requests(mine)

    _check_not_from_checkout(directory, planned.repo_root, "the shard directory")
    directory.mkdir(parents=True, exist_ok=True)
    calls = CallStats()
    if requests:
        with ResponseCache(directory / CACHE) as cache:
            outcome = run_requests_sync(
                requests,
                make_provider(config.provider),
                cache,
                concurrency=config.provider.concurrency,
                max_retries=config.provider.max_retries,
                on_progress=progress(len(requests)) if progress else None,
            )
        calls = outcome.stats
        if calls.failed:
            raise CouldNotEvaluate(
                f"shard {shard.index}/{shard.count}: {calls.failed} call(s) failed after "
                "retries: " + "; ".join(outcome.failures[:3])
            )
    else:
        ResponseCache(directory / CACHE).close()  # an empty cache: the merge expects one
    manifest = ShardManifest(
        shard=shard,
        base=GitSide(ref=rng.base_ref, sha=rng.base_sha),
        head=GitSide(ref=rng.head_ref, sha=rng.head_sha),
        config_hash=config.gate_settings_hash(),
        pairs=len(mine),
        total_pairs=len(pairs),
        calls=calls,
    )
    write_atomically(directory / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
    return manifest


def _requests(pairs: Sequence[tuple[PromptPlan, int]]) -> list[ChatRequest]:
    return [
        chat
        for plan, example in pairs
        for side in plan.sides()
        for chat in plan.requests[side][example]
    ]


def merged_request(directories: Sequence[Path], request: GateRequest) -> GateRequest:
    """Check the shards make one complete run of `request`'s range and copy their answers into
    its cache; the request returned runs the ordinary gate on them with sending switched off."""
    repo = open_repo(request.repo)
    repo_root = Path(repo.working_tree_dir or request.repo)
    for directory in directories:
        _check_not_from_checkout(directory, repo_root, "the shard directory")
    manifests = [_read_manifest(directory) for directory in directories]
    _check_complete(manifests, directories)
    rng = resolve_range(repo, request.base, request.head)
    first = manifests[0]
    if (rng.base_sha, rng.head_sha) != (first.base.sha, first.head.sha):
        raise BadInput(
            f"the shards judged {first.base.sha[:12]}..{first.head.sha[:12]}, but this merge "
            f"resolves {rng.base_sha[:12]}..{rng.head_sha[:12]}; pass the same --base and --head",
            file="merge",
        )
    cache_path = request.cache_path or default_cache_path(repo_root)
    merged, problem = open_cache(cache_path, repo_root)
    if merged is None:
        raise BadInput(problem or "the cache cannot be used", file=str(cache_path))
    with merged as cache:
        for directory in directories:
            cache.import_from(directory / CACHE)
    return request.model_copy(
        update={
            "use_cache": True,
            "cache_path": cache_path,
            "cache_only": "no shard made this call: was a shard run with other settings?",
        }
    )


def _check_not_from_checkout(directory: Path, repo_root: Path, what: str) -> None:
    """A shard directory the checkout holds (committed, or reached through a committed link)
    could carry forged answers for the PR; only what a workflow step made may be merged."""
    problem = untrusted_reason(directory, root=repo_root)
    if problem is not None:
        raise BadInput(
            f"{what} cannot be used: {problem}. A PR could put forged answers there; download "
            "the shard jobs' artifacts to a path the repository does not hold",
            file=str(directory),
        )


def _read_manifest(directory: Path) -> ShardManifest:
    path = directory / MANIFEST
    try:
        manifest = ShardManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BadInput(
            "no shard manifest here; pass the directories `run --shard` wrote", file=str(path)
        ) from exc
    except (OSError, ValidationError) as exc:
        raise BadInput(f"not a promptgate shard manifest ({exc})", file=str(path)) from exc
    if not (directory / CACHE).is_file():
        raise BadInput("the shard's answers are missing", file=str(directory / CACHE))
    return manifest


def _check_complete(manifests: Sequence[ShardManifest], directories: Sequence[Path]) -> None:
    if not manifests:
        raise BadInput("merge needs the shard directories to combine", file="merge")
    count = manifests[0].shard.count
    keys = {(m.base.sha, m.head.sha, m.config_hash, m.shard.count) for m in manifests}
    if len(keys) > 1:
        raise BadInput(
            "the shards disagree on base, head, config or shard count; they are not one run",
            file=", ".join(str(d) for d in directories),
        )
    seen = sorted(m.shard.index for m in manifests)
    missing = sorted(set(range(1, count + 1)) - set(seen))
    duplicated = sorted({i for i in seen if seen.count(i) > 1})
    if missing or duplicated:
        problems = []
        if missing:
            problems.append(f"missing shard(s) {', '.join(f'{i}/{count}' for i in missing)}")
        if duplicated:
            problems.append(f"shard(s) given twice: {', '.join(map(str, duplicated))}")
        raise BadInput("; ".join(problems), file="merge")
