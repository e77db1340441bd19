"""The gate config, `promptgate.yaml` (DESIGN.md "Config"). Unknown keys are errors."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from promptgate.envref import template_error
from promptgate.metrics.languages import BleuTokenizer, missing_tokenizer_package
from promptgate.yamlsource import validate_yaml

DEFAULT_CONFIG_PATH = "promptgate.yaml"
DEFAULT_SEMANTIC_MODEL = "all-MiniLM-L6-v2"


class Strict(BaseModel):
    # NaN or infinity as a threshold, timeout or score floor would silently disarm or jam the gate.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: The body field that carries the token limit (providers/parameters.py chooses when unset).
TokenLimitParam = Literal["max_tokens", "max_completion_tokens"]
#: Azure OpenAI's API versions: dated (2024-10-21, 2025-04-01-preview) or the v1 path.
AZURE_API_VERSION = re.compile(r"v1|\d{4}-\d{2}-\d{2}(-preview)?")
#: A deployment name as Azure allows it (letters, digits, - _ .), so it is one path segment.
AZURE_DEPLOYMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: RFC 9110's token: what a header name may be made of.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Headers promptgate sets (the key, the body's framing): a config may not replace them.
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "api-key",
        "x-api-key",
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
    }
)

DEFAULT_MODELS = {
    "openai": "gpt-4o-mini",
    "github-models": "openai/gpt-4o-mini",
    "azure-openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
    "offline": "offline-echo",
}


class PriceConfig(Strict):
    """What the provider charges, in USD per million tokens (no built-in price list)."""

    input_per_mtok: float = Field(ge=0, description="USD per million prompt tokens")
    output_per_mtok: float = Field(ge=0, description="USD per million completion tokens")


class ProviderConfig(Strict):
    kind: Literal["openai", "github-models", "azure-openai", "anthropic", "offline"] = "openai"
    base_url: str | None = Field(
        default=None, description="Chat-completions base URL; the kind's default when unset."
    )
    model: str = "gpt-4o-mini"
    api_key_env: str | None = Field(
        default=None, description="Env var holding the API key; the kind's default when unset."
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=256, ge=1)
    concurrency: int = Field(default=8, ge=1, le=256)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra HTTP headers on every call. A value may reference environment "
        "variables as ${NAME}: those values are secrets, never printed or stored.",
    )
    seed: int | None = Field(
        default=None,
        description="Sent as `seed` (best-effort determinism where the server offers it); "
        "part of the cache key. A .prompt.yml's own seed wins.",
    )
    deployment: str | None = Field(
        default=None,
        description="azure-openai: the deployment to call; the model's name when unset.",
    )
    api_version: str | None = Field(
        default=None,
        description="azure-openai: the API version, e.g. 2024-10-21, or v1 for Azure's "
        "OpenAI-compatible /openai/v1 path (the model then goes in the body).",
    )
    price: PriceConfig | None = Field(
        default=None, description="USD per million tokens: the report's cost figures"
    )
    token_limit_param: TokenLimitParam | None = Field(
        default=None,
        description="The body field for max_tokens. Unset: max_completion_tokens for OpenAI's "
        "reasoning models (o1, o3, o4, gpt-5), which also get no temperature; else max_tokens.",
    )

    @field_validator("headers")
    @classmethod
    def _header_names_and_values(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(
                    f"{name} is set by promptgate itself"
                    + (
                        ": put the key in the variable api_key_env names"
                        if name.lower() == "authorization"
                        else ""
                    )
                )
            if problem := template_error(value):
                raise ValueError(f"header {name}: {problem}")
        return headers

    @model_validator(mode="before")
    @classmethod
    def _model_for_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and "model" not in data:
            return {
                **data,
                "model": DEFAULT_MODELS.get(str(data.get("kind", "openai")), "gpt-4o-mini"),
            }
        return data

    @model_validator(mode="after")
    def _azure_settings(self) -> ProviderConfig:
        if self.kind != "azure-openai":
            extra = [f for f in ("deployment", "api_version") if getattr(self, f) is not None]
            if extra:
                raise ValueError(f"{' and '.join(extra)} apply to kind azure-openai only")
            return self
        if not self.base_url:
            raise ValueError(
                "kind azure-openai needs base_url: your resource's endpoint, e.g. "
                "https://my-resource.openai.azure.com"
            )
        if not self.api_version or not AZURE_API_VERSION.fullmatch(self.api_version):
            raise ValueError(
                "kind azure-openai needs api_version: a dated version such as 2024-10-21 "
                "(optionally -preview), or v1"
            )
        if self.deployment is not None and not AZURE_DEPLOYMENT.fullmatch(self.deployment):
            raise ValueError(f"deployment {self.deployment!r} is not a deployment name")
        return self

    @model_validator(mode="after")
    def _anthropic_settings(self) -> ProviderConfig:
        if self.kind == "anthropic":
            if self.seed is not None:
                raise ValueError("seed: the Messages API (kind anthropic) takes no seed; remove it")
            if self.token_limit_param is not None:
                raise ValueError(
                    "token_limit_param: the Messages API (kind anthropic) always takes max_tokens; "
                    "remove it"
                )
        return self

    @model_validator(mode="after")
    def _github_model_names(self) -> ProviderConfig:
        if self.kind == "github-models" and "/" not in self.model:
            raise ValueError(
                f"GitHub Models names models as publisher/name; use e.g. 'openai/{self.model}'"
            )
        return self


class PromptSpec(Strict):
    path: str = Field(description="A prompt file or a glob (`**` crosses directories).")
    dataset: str | None = Field(
        default=None,
        description="Eval set (JSONL, CSV or YAML). May use {stem}, {name} and {dir} of the "
        "prompt path. Optional for .prompt.yml files with testData.",
    )


#: The PR-level false-fail rate the gate spends by default (see GateSettings.error_rate).
DEFAULT_ERROR_RATE = 0.005

#: How the gate decides, in words: the report and the comment carry it. compare.py implements it.
GATE_RULE = (
    "A metric fails when its mean delta is below -max_drop and the drop is significant for the "
    "PR as a whole: its one-sided paired t-test (bootstrap standard error), Holm-adjusted over "
    "every metric of every prompt the PR changes, has p <= gate.error_rate, so a PR that changes "
    "nothing fails at most that often however many prompts it touches. It also fails when the "
    "candidate is below the metric's optional `min`. A prompt fails when any metric fails; the "
    "gate fails when any prompt fails."
)


class MetricConfig(Strict):
    max_drop: float = Field(
        ge=0, description="Largest tolerated drop of the mean, in the metric's own units."
    )
    min: float | None = Field(default=None, description="Absolute floor on the candidate score.")
    model: str | None = Field(default=None, description="Embedding model (semantic only).")
    tokenize: BleuTokenizer | None = Field(
        default=None,
        description="BLEU only: sacrebleu's tokenizer (13a, intl, zh, char, ja-mecab, ko-mecab, "
        "flores200, ...), recorded in the signature. `auto` (the default): per eval set, `char` "
        "when at least half of the references' letters are in scripts written without spaces "
        "(Chinese, Japanese, Thai, ...), else `13a`.",
    )

    @field_validator("tokenize")
    @classmethod
    def _tokenizer_installed(cls, tokenize: str | None) -> str | None:
        problem = missing_tokenizer_package(tokenize) if tokenize else None
        if problem:
            raise ValueError(problem)
        return tokenize


class GateSettings(Strict):
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1.0, description="Of the intervals shown beside each delta."
    )
    error_rate: float = Field(
        default=DEFAULT_ERROR_RATE,
        gt=0.0,
        le=0.2,
        description="The share of PRs with no real change that may fail the gate: Holm's "
        "step-down over the one-sided tests of every (prompt, metric) the PR changes holds it. "
        "The default, 0.5 %, is half of the 1 % promised: a margin for metrics whose noise is "
        "further from normal than the t-test assumes, for a few percent of power near max_drop.",
    )
    samples: int | Literal["auto"] = Field(
        default=1,
        description="Generations per example and version; `auto`: one, then more rounds for a "
        "prompt whose metric is still undecided (temperature > 0 only), up to max_samples.",
    )
    max_samples: int = Field(
        default=4,
        ge=2,
        le=20,
        description="With samples: auto, the most generations per example and version: the "
        "looks the PR's error rate is spread over (sequential.py).",
    )
    bootstrap_resamples: int = Field(default=2000, ge=100, le=100_000)
    seed: int = Field(default=20240601, ge=0, description="Bootstrap seed (numpy: non-negative).")
    top_regressions: int = Field(default=3, ge=0, le=50)
    override_label: str | None = Field(
        default="promptgate: accept-regression",
        min_length=1,
        max_length=50,
        description="A PR label with which someone with write access accepts a failed gate's "
        "regression: recorded and shown, the verdict stays `fail`, the step passes. null: off.",
    )
    max_failed_share: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="Share of a prompt's examples whose generation may be given up (they are "
        "then left out of both sides and listed) before the prompt is an error. 0: any given-up "
        "generation makes the verdict `error`.",
    )
    on_dataset_change: Literal["warn", "fail"] = Field(
        default="warn",
        description="A prompt whose eval set the PR changes (file or .prompt.yml testData): "
        "`warn` reports it with its counts; `fail` also makes its verdict `fail`, so the change "
        "needs the override label.",
    )
    max_token_increase: float | None = Field(
        default=None,
        gt=0,
        description="Fail a prompt whose candidate uses this much more tokens per call (prompt "
        "and completion, relative: 0.25 is +25 %) than its baseline. Unset: reported only.",
    )
    max_latency_increase: float | None = Field(
        default=None,
        gt=0,
        description="Fail a prompt whose candidate's median latency is this much higher "
        "(relative) than its baseline's. Unset: reported only.",
    )

    @field_validator("samples", mode="before")
    @classmethod
    def _samples_value(cls, value: object) -> object:
        """One message for every bad value (a union would report each of its members)."""
        if value == "auto":
            return value
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 50:
            return value
        raise ValueError("samples is a whole number from 1 to 50, or auto")

    @model_validator(mode="after")
    def _max_samples_with_auto(self) -> GateSettings:
        if "max_samples" in self.model_fields_set and self.samples != "auto":
            raise ValueError(
                "gate.max_samples bounds `samples: auto`; with a fixed number of samples it has "
                "no effect: remove it, or set samples: auto"
            )
        return self

    @property
    def adaptive(self) -> bool:
        return self.samples == "auto"

    @property
    def first_samples(self) -> int:
        """Generations per example and version in the first round (all of them unless auto)."""
        return 1 if self.samples == "auto" else self.samples


class MlflowConfig(Strict):
    tracking_uri: str | None = None
    experiment: str = "promptgate"
    required: bool = False
    ui_url: str | None = Field(
        default=None,
        description="An MLflow UI serving this store (e.g. https://mlflow.example.com), for the "
        "run link in the comment when the tracking URI is not that UI's own http(s) address.",
    )

    @field_validator("ui_url")
    @classmethod
    def _an_http_url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"{url!r} is not an http(s) URL such as https://mlflow.example.com"
                )
        return url

    traces: int = Field(
        default=100,
        ge=0,
        description="Examples per prompt version logged as MLflow traces (inputs, output, "
        "scores as assessments), worst first, for MLflow's Evaluation runs; 0: none.",
    )


def _default_metrics() -> dict[str, MetricConfig]:
    return {"bleu": MetricConfig(max_drop=2.0), "rougeL": MetricConfig(max_drop=0.02)}


class Config(Strict):
    version: Literal[1] = 1
    provider: ProviderConfig = ProviderConfig()
    prompts: list[PromptSpec] = Field(min_length=1)
    metrics: dict[str, MetricConfig] = Field(default_factory=_default_metrics, min_length=1)
    gate: GateSettings = GateSettings()
    mlflow: MlflowConfig = MlflowConfig()

    @model_validator(mode="after")
    def _known_metrics(self) -> Config:
        from promptgate.metrics import METRICS  # the registry is light; heavy libs load lazily

        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise ValueError(
                f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(sorted(METRICS))}"
            )
        return self

    @field_validator("metrics")
    @classmethod
    def _tokenize_is_bleus(cls, metrics: dict[str, MetricConfig]) -> dict[str, MetricConfig]:
        for name, metric in metrics.items():
            if name != "bleu" and metric.tokenize is not None:
                raise ValueError(
                    f"metrics.{name}.tokenize: only bleu takes a tokenizer (ROUGE-L keeps every "
                    "script; semantic reads text as its model does); remove it"
                )
        return metrics

    def gate_settings_hash(self) -> str:
        """Hash of everything that decides a verdict (provider, metrics, gate), for the audit trail."""
        relevant = self.model_dump(mode="json", include={"provider", "metrics", "gate", "prompts"})
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def parse_config(text: str, source: str = DEFAULT_CONFIG_PATH) -> Config:
    return validate_yaml(Config, text, source)


def config_json_schema() -> dict[str, object]:
    return Config.model_json_schema()
