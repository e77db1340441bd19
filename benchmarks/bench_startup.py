"""The Action's start-up inside its image, beside the same run from this checkout.

    python benchmarks/bench_startup.py --image localhost/promptgate:test [--runs 5]

Each run is entrypoint.py on a pull_request event, as GitHub starts a container action
(tests/action_run.py: GitHub's mounts, the host's network, the LLM stub and the GitHub REST stub
on 127.0.0.1), in a fresh container. A small Python wrapper inside the container stamps
time.monotonic() (system-wide: the stub's clock too), starts entrypoint.py and stamps its end:

- first request  from that start to the first request reaching the LLM stub, BLEU + ROUGE-L;
                 target <= 1.5 s (issue 12)
- semantic       how much longer the whole run takes with the semantic metric added (its worker
                 loads the ONNX export and embeds 8 short examples); target <= +1 s

The same runs from this checkout's Python (`local`) are the peer: the ratio says what the image
costs, on a machine whose speed varies from day to day. Medians of --runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from action_run import BAD, ImageLaunch, Launcher, LocalLaunch, new_workspace  # noqa: E402
from gate_fixtures import API_KEY  # noqa: E402
from github_stub import GitHubStub  # noqa: E402
from llm_stub import LLMStub  # noqa: E402

FAST = "  bleu: { max_drop: 2.0 }\n  rougeL: { max_drop: 0.02 }\n"
SEMANTIC = FAST + "  semantic: { max_drop: 0.02 }\n"
#: Stamps the start, runs the command after the timing file's path, stamps the end.
WRAPPER = (
    "import json, subprocess, sys, time; started = time.monotonic(); "
    "code = subprocess.call(sys.argv[2:]); ended = time.monotonic(); "
    "open(sys.argv[1], 'w').write(json.dumps({'started': started, 'ended': ended})); "
    "sys.exit(code)"
)


@dataclass
class Timing:
    first_request_s: float
    whole_s: float


def timed_run(launcher: Launcher, tmp: Path, metrics: str) -> Timing:
    with LLMStub(api_key=API_KEY) as llm, GitHubStub() as github:
        workspace = new_workspace(tmp, llm, github, launcher, metrics=metrics)
        workspace.builder.commit({"prompts/a.txt": BAD})
        timing_file = tmp / "home" / "timing.json"
        run = workspace.run(
            "pull_request",
            workspace.pr_event(),
            _model_cache(launcher),
            wrapper=["python", "-c", WRAPPER, launcher.visible(timing_file)],
        )
        if run.code != 1:  # the prompt regressed: anything else is a broken run
            raise SystemExit(f"the measured run ended with {run.code}:\n{run.log}")
        stamps = json.loads(timing_file.read_text())
        assert llm.first_request_at is not None
        return Timing(llm.first_request_at - stamps["started"], stamps["ended"] - stamps["started"])


def _model_cache(launcher: Launcher) -> dict[str, str]:
    """A local run reads the exports where this user's install put them (its HOME is a temp
    directory); the image carries its own."""
    if not isinstance(launcher, LocalLaunch):
        return {}
    from promptgate.metrics.embedding import cache_root

    return {"PROMPTGATE_MODEL_CACHE": str(cache_root())}


def medians(launcher: Launcher, tmp: Path, runs: int) -> tuple[float, float]:
    """(start to first request, semantic's extra wall time), medians of `runs` each."""
    fast = [timed_run(launcher, tmp / f"fast-{i}", FAST) for i in range(runs)]
    semantic = [timed_run(launcher, tmp / f"semantic-{i}", SEMANTIC) for i in range(runs)]
    first = statistics.median(t.first_request_s for t in fast)
    extra = statistics.median(t.whole_s for t in semantic) - statistics.median(
        t.whole_s for t in fast
    )
    return first, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="the built image (scripts/image-test.sh)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as name:
        tmp = Path(name)
        image = ImageLaunch(args.image)
        measured = {
            f"image ({image.engine})": medians(image, tmp / "image", args.runs),
            "local": medians(LocalLaunch(), tmp / "local", args.runs),
        }
    (image_first, image_extra), (local_first, local_extra) = measured.values()
    print(f"\nstart-up, medians of {args.runs} runs each")
    print(f"{'':20} {'first request':>14} {'semantic extra':>15}")
    for name, (first, extra) in measured.items():
        print(f"{name:20} {first:13.2f}s {extra:+14.2f}s")
    print(f"{'target (image)':20} {'<= 1.50s':>14} {'<= +1.00s':>15}")
    print(
        f"image / local: first request {image_first / local_first:.2f}x, "
        f"semantic extra {image_extra - local_extra:+.2f} s"
    )
    met = image_first <= 1.5 and image_extra <= 1.0
    print("targets met" if met else "TARGETS MISSED")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
