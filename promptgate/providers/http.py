"""A chat API over pooled keep-alive HTTP connections: what every HTTP provider shares.

The session, proxies, timeouts, secrets and how an HTTP status becomes a retry, a fatal error
or an answer live here; each API's subclass says where to post, how the key travels, and how
its bodies read (openai.py, anthropic.py).

aiohttp rather than httpx here: against the local stub httpx spent about 3 ms of CPU per call
and aiohttp about 0.3 ms; at a thousand calls that CPU was most of the gate's wall time.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from promptgate.config import ProviderConfig
from promptgate.envref import resolve
from promptgate.errors import BadInput
from promptgate.masking import add_secret
from promptgate.providers.base import ChatRequest, Completion, Provider, ProviderError
from promptgate.retry_after import parse_retry_after

if TYPE_CHECKING:
    import aiohttp
    import yarl

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CONNECT_TIMEOUT_CAP_S = 10.0
EXCERPT_CHARS = 300
RETRYABLE_STATUSES = frozenset({408, 425, 429})
#: The server turned the call away for load: 429, and Anthropic's 529 (overloaded)
OVERLOADED_STATUSES = frozenset({429, 529})
USER_AGENT = "promptgate"


class Parsed(NamedTuple):
    """What a provider reads from a 200: the answer's text, why a filter or the model refused
    it (None: it did not), and the server's token counts (None where it sent none)."""

    text: str
    refusal: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True)
class Answer:
    """What the server sent back, read in full."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def _retry_after(answer: Answer) -> float | None:
    milliseconds = answer.headers.get("retry-after-ms")  # OpenAI's finer-grained variant
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    return parse_retry_after(answer.headers.get("retry-after"))


class HttpProvider(Provider):
    """POST a chat request to `_chat_url()` with the key read from `api_key_env`.

    The HTTP session is created lazily, per event loop: connections belong to the loop that
    opened them, and a caller may drive the provider from more than one `asyncio.run`.
    `aclose()` releases the connections; the provider reopens them if it is used again.
    Proxies come from the environment (HTTPS_PROXY, NO_PROXY), as with curl, looked up once per
    session: aiohttp's `trust_env` would look them up (and read ~/.netrc) on a thread for every
    call.
    """

    client_modules = ("aiohttp",)
    default_base_url: ClassVar[str]
    default_api_key_env: ClassVar[str]

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.base_url = (config.base_url or self.default_base_url).rstrip("/")
        self.api_key_env = config.api_key_env or self.default_api_key_env
        self.url = self._chat_url()
        try:
            parsed = urllib.parse.urlsplit(self.base_url)
            host = parsed.hostname
            _ = parsed.port  # raises ValueError on a port that is not a number
        except ValueError as exc:
            raise BadInput(f"provider.base_url {self.base_url!r} is not a URL ({exc})") from exc
        if parsed.scheme not in ("http", "https") or not host:
            raise BadInput(
                f"provider.base_url {self.base_url!r} must be an http(s) URL such as "
                f"{self.default_base_url}"
            )
        self._api_key = os.environ.get(self.api_key_env, "").strip()
        if not self._api_key and host not in LOCAL_HOSTS:
            raise BadInput(
                f"no API key for {self.base_url}: set the environment variable "
                f"${self.api_key_env} (or point provider.api_key_env at the variable that "
                "holds it)"
            )
        self._headers: dict[str, str] = {}
        self._secrets = [self._api_key] if self._api_key else []
        for name, template in config.headers.items():
            value, secrets = resolve(template, os.environ, where=f"provider.headers.{name}")
            self._headers[name] = value
            self._secrets += secrets
        for secret in self._secrets:
            add_secret(secret)
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._proxy: tuple[yarl.URL | None, aiohttp.BasicAuth | None] = (None, None)

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.base_url}"

    def _chat_url(self) -> str:
        raise NotImplementedError

    def _key_headers(self) -> dict[str, str]:
        """How the key is sent."""
        raise NotImplementedError

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        """The request's JSON body in the API's own shape (BadInput for what it cannot take)."""
        raise NotImplementedError

    def _parse(self, response: Answer, payload: Any) -> Parsed:
        """A 200's answer: text, refusal and token counts."""
        raise NotImplementedError

    def _refusal_status(self, response: Answer) -> str | None:
        """A non-200 that is the answer to this request, not a failure: why it was refused."""
        return None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"
        )

    def _session_for_running_loop(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session_loop is not loop:
            # A session left over from a finished loop cannot be closed from this one; drop it.
            headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **self._headers}
            if self._api_key:
                headers |= self._key_headers()
            timeout_s = self.config.timeout_s
            self._session = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(
                    total=timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_CAP_S)
                ),
                # The runner bounds concurrency; the pool only keeps connections alive.
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            )
            self._session_loop = loop
            self._proxy = _environment_proxy(self.url)
        return self._session

    async def aclose(self) -> None:
        session, loop = self._session, self._session_loop
        self._session, self._session_loop = None, None
        if session is not None and loop is asyncio.get_running_loop():
            await session.close()

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        fatal: bool = False,
        overloaded: bool = False,
    ) -> ProviderError:
        return ProviderError(
            self._redact(message),
            retryable=retryable,
            retry_after=retry_after,
            fatal=fatal,
            overloaded=overloaded,
        )

    async def complete(self, request: ChatRequest) -> Completion:
        body = self._body(request)
        import aiohttp

        started = time.monotonic()
        try:
            answer = await self._post(body)
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors
            raise self._error(
                f"no answer from {self.url} within {self.config.timeout_s:g}s "
                f"({type(exc).__name__}); raise provider.timeout_s if the model is slow",
                retryable=True,
            ) from None
        except aiohttp.ServerDisconnectedError:
            raise self._error(
                f"{self.url} closed the connection without sending a response", retryable=True
            ) from None
        except aiohttp.ClientError as exc:  # refused, reset, a broken response, ...
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise self._error(
                f"connection to {self.url} failed ({detail})", retryable=True
            ) from None
        latency_ms = (time.monotonic() - started) * 1000
        if (refusal := self._refusal_status(answer)) is not None:
            # The answer to this example, every time: not an outage, and a retry would be
            # refused again.
            return Completion(text="", refusal=refusal, latency_ms=latency_ms)
        if answer.status != 200:
            raise self._status_error(answer, request)
        parsed = self._parse(answer, self._payload(answer))
        return Completion(
            text=parsed.text,
            refusal=parsed.refusal,
            prompt_tokens=parsed.prompt_tokens,
            completion_tokens=parsed.completion_tokens,
            latency_ms=latency_ms,
        )

    async def _post(self, body: dict[str, Any]) -> Answer:
        session = self._session_for_running_loop()
        proxy, proxy_auth = self._proxy
        async with session.post(
            self.url, json=body, proxy=proxy, proxy_auth=proxy_auth
        ) as response:
            return Answer(response.status, response.headers, await response.read())

    def _status_error(self, response: Answer, request: ChatRequest) -> ProviderError:
        status = response.status
        said = f"; the server said: {excerpt(response)}" if response.body else ""
        where = f"HTTP {status} from {self.url}"
        if status == 429 and error_code(response) == "insufficient_quota":
            return self._error(
                f"{where}: the account behind ${self.api_key_env} is out of quota; check its "
                f"plan and billing{said}",
                retryable=False,
                fatal=True,
            )
        if status == 429 or status >= 500 or status in RETRYABLE_STATUSES:
            return self._error(
                f"{where}{said}",
                retryable=True,
                retry_after=_retry_after(response),
                overloaded=status in OVERLOADED_STATUSES,
            )
        if status in (401, 403):
            hint = (
                f"check the key in ${self.api_key_env}"
                if self._api_key
                else f"no key was sent: set ${self.api_key_env}"
            )
            return self._error(
                f"{where}: the server refused the credentials; {hint}{said}",
                retryable=False,
                fatal=True,
            )
        if status == 404:
            hint = f"check provider.base_url and that model {request.model!r} exists there"
            return self._error(f"{where}: {hint}{said}", retryable=False)
        if status in (400, 422):
            hint = f"the server rejected the request for model {request.model!r}"
            return self._error(f"{where}: {hint}{said}", retryable=False)
        return self._error(f"{where}: unexpected status{said}", retryable=False)

    def _payload(self, response: Answer) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise self._error(
                f"{self.url} answered 200 with a body that is not JSON: {excerpt(response)}",
                retryable=True,
            ) from None


def _environment_proxy(url: str) -> tuple[yarl.URL | None, aiohttp.BasicAuth | None]:
    """The proxy and its credentials that HTTP(S)_PROXY and NO_PROXY give for `url`, if any."""
    import yarl
    from aiohttp.helpers import get_env_proxy_for_url

    try:
        return get_env_proxy_for_url(yarl.URL(url))
    except LookupError:  # no proxy for this scheme, or NO_PROXY exempts the host
        return None, None


def error_code(response: Answer) -> str | None:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    code = error.get("code") or error.get("type") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def excerpt(response: Answer) -> str:
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
