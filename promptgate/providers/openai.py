"""Any OpenAI-compatible chat-completions endpoint, over pooled keep-alive HTTP connections."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from typing import Any, ClassVar

import httpx

from promptgate.config import ProviderConfig
from promptgate.errors import BadInput
from promptgate.providers.base import ChatRequest, Provider, ProviderError
from promptgate.retry_after import parse_retry_after

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CONNECT_TIMEOUT_CAP_S = 10.0
CONNECTIONS_PER_POOL = 4
EXCERPT_CHARS = 300
RETRYABLE_STATUSES = frozenset({408, 425, 429})
USER_AGENT = "promptgate"


def _retry_after(response: httpx.Response) -> float | None:
    milliseconds = response.headers.get("retry-after-ms")  # OpenAI's finer-grained variant
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    return parse_retry_after(response.headers.get("retry-after"))


class OpenAIProvider(Provider):
    """POST {base_url}/chat/completions with a bearer key read from `api_key_env`.

    HTTP clients are created lazily, per event loop: connections belong to the loop that
    opened them, and a caller may drive the provider from more than one `asyncio.run`.
    `aclose()` releases the connections; the provider reopens them if it is used again.
    """

    kind = "openai"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    default_api_key_env: ClassVar[str] = "OPENAI_API_KEY"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.base_url = (config.base_url or self.default_base_url).rstrip("/")
        self.api_key_env = config.api_key_env or self.default_api_key_env
        self.url = f"{self.base_url}/chat/completions"
        try:
            parsed = httpx.URL(self.base_url)
        except httpx.InvalidURL as exc:
            raise BadInput(f"provider.base_url {self.base_url!r} is not a URL ({exc})") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise BadInput(
                f"provider.base_url {self.base_url!r} must be an http(s) URL such as "
                f"{self.default_base_url}"
            )
        self._api_key = os.environ.get(self.api_key_env, "").strip()
        if not self._api_key and parsed.host not in LOCAL_HOSTS:
            raise BadInput(
                f"no API key for {self.base_url}: set the environment variable "
                f"${self.api_key_env} (or point provider.api_key_env at the variable that "
                "holds it)"
            )
        # httpcore's pool does work quadratic in its connections on every request, so large
        # concurrency is spread over a few pools of CONNECTIONS_PER_POOL rather than one.
        self._shards = -(-config.concurrency // CONNECTIONS_PER_POOL)
        self._clients: list[httpx.AsyncClient] = []
        self._clients_loop: asyncio.AbstractEventLoop | None = None
        self._in_flight: list[int] = []  # per client
        self._tls: ssl.SSLContext | None = None

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.base_url}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"
        )

    def _clients_for_running_loop(self) -> list[httpx.AsyncClient]:
        loop = asyncio.get_running_loop()
        if not self._clients or self._clients_loop is not loop:
            # Clients left over from a finished loop cannot be closed from this one; drop them.
            if self._tls is None:  # loading the CA bundle is slow: once per provider
                self._tls = httpx.create_ssl_context()
            self._clients = [self._new_client(self._tls) for _ in range(self._shards)]
            self._clients_loop = loop
            self._in_flight = [0] * self._shards
        return self._clients

    def _new_client(self, tls: ssl.SSLContext) -> httpx.AsyncClient:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        timeout_s = self.config.timeout_s
        return httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_CAP_S)),
            # The runner bounds concurrency; the pool only has to keep connections alive.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            follow_redirects=False,
            verify=tls,
        )

    async def aclose(self) -> None:
        clients, loop = self._clients, self._clients_loop
        self._clients, self._clients_loop = [], None
        if loop is asyncio.get_running_loop():
            for client in clients:
                await client.aclose()

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _error(
        self, message: str, *, retryable: bool, retry_after: float | None = None
    ) -> ProviderError:
        return ProviderError(self._redact(message), retryable=retryable, retry_after=retry_after)

    async def complete(self, request: ChatRequest) -> str:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [m.model_dump() for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            **dict(request.extra_params),
        }
        try:
            response = await self._post(body)
        except httpx.TimeoutException as exc:
            raise self._error(
                f"no answer from {self.url} within {self.config.timeout_s:g}s "
                f"({type(exc).__name__}); raise provider.timeout_s if the model is slow",
                retryable=True,
            ) from None
        except httpx.HTTPError as exc:  # refused, reset, closed without an answer, ...
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise self._error(
                f"connection to {self.url} failed ({detail})", retryable=True
            ) from None
        if response.status_code != 200:
            raise self._status_error(response, request)
        return self._completion_text(response)

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        clients = self._clients_for_running_loop()
        in_flight = self._in_flight
        # The least busy client: calls one after another share one keep-alive connection.
        index = min(range(len(clients)), key=in_flight.__getitem__)
        in_flight[index] += 1
        try:
            return await clients[index].post(self.url, json=body)
        finally:
            in_flight[index] -= 1

    def _status_error(self, response: httpx.Response, request: ChatRequest) -> ProviderError:
        status = response.status_code
        said = f"; the server said: {_excerpt(response)}" if response.content else ""
        where = f"HTTP {status} from {self.url}"
        if status == 429 and _error_code(response) == "insufficient_quota":
            return self._error(
                f"{where}: the account behind ${self.api_key_env} is out of quota; check its "
                f"plan and billing{said}",
                retryable=False,
            )
        if status == 429 or status >= 500 or status in RETRYABLE_STATUSES:
            return self._error(f"{where}{said}", retryable=True, retry_after=_retry_after(response))
        if status in (401, 403):
            hint = (
                f"check the key in ${self.api_key_env}"
                if self._api_key
                else f"no key was sent: set ${self.api_key_env}"
            )
            return self._error(
                f"{where}: the server refused the credentials; {hint}{said}", retryable=False
            )
        if status == 404:
            hint = f"check provider.base_url and that model {request.model!r} exists there"
            return self._error(f"{where}: {hint}{said}", retryable=False)
        if status in (400, 422):
            hint = f"the server rejected the request for model {request.model!r}"
            return self._error(f"{where}: {hint}{said}", retryable=False)
        return self._error(f"{where}: unexpected status{said}", retryable=False)

    def _completion_text(self, response: httpx.Response) -> str:
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise self._error(
                f"{self.url} answered 200 with a body that is not JSON: {_excerpt(response)}",
                retryable=True,
            ) from None
        try:
            choice = payload["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise self._error(
                f"{self.url} answered 200 without choices[0].message.content: {_excerpt(response)}",
                retryable=True,
            ) from None
        if not isinstance(content, str) or not content.strip():
            finish_reason = choice.get("finish_reason") if isinstance(choice, dict) else None
            raise self._error(
                f"{self.url} returned an empty completion (finish_reason: {finish_reason})",
                retryable=True,
            )
        return content


def _error_code(response: httpx.Response) -> str | None:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    code = error.get("code") or error.get("type") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def _excerpt(response: httpx.Response) -> str:
    """A short, one-line view of an error body: the API's error message when there is one."""
    text = response.text
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("message"))
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
