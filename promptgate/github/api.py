"""A small synchronous GitHub REST client: the few calls promptgate makes, made carefully.

Retries follow GitHub's guidance (docs.github.com/rest/using-the-rest-api/best-practices):
5xx answers, timeouts and dropped connections back off exponentially; 429 and the secondary
rate limit (403 with Retry-After) wait as long as GitHub asks; an exhausted primary rate limit
(`x-ratelimit-remaining: 0`) waits until `x-ratelimit-reset`. No single wait is longer than
`max_wait_s`: when GitHub asks for more, the client gives up at once, because retrying early
only extends the limit (and GitHub may block integrations that keep doing it).

The token goes into the Authorization header of requests to `api_url`'s origin and nowhere
else: it is not in `repr`, log lines or error messages, and a server message quoting it is
masked before it is shown.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx

from promptgate.errors import GateError
from promptgate.retry_after import parse_retry_after

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
PER_PAGE = 100
MESSAGE_CHARS = 300
DEFAULT_MAX_WAIT_S = 60.0
# GitHub: "if the retry-after header is not present ... wait for at least one minute".
SECONDARY_LIMIT_WAIT_S = 60.0
MASK = "***"
# Methods that may be sent again after the request might have reached GitHub. A POST is retried
# here only when it surely did not (the connection was never made, or a rate limit refused it): a
# POST answered 5xx, or whose answer was lost, may have been stored, and a second POST is a second
# comment. Such a failure raises GitHubError with `maybe_applied`, for the caller to look first.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII: anything else breaks the header

logger = logging.getLogger(__name__)


def user_agent() -> str:
    """`promptgate/<version>`: GitHub refuses requests without a User-Agent and asks that it
    name the integration. The version comes from the installed distribution."""
    try:
        version = importlib.metadata.version("promptgate")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"promptgate/{version}"


class GitHubError(GateError):
    """A GitHub API call that did not succeed (after retries where retrying made sense).

    `status` is the last HTTP status, or None when no answer came (timeout, connection).
    `rate_limited` says the last answer was a rate limit, not a refusal. `maybe_applied` says a
    request that is not safe to repeat (a POST) may have taken effect all the same: it reached
    GitHub and the answer was a server error, or never came.
    """

    def __init__(
        self,
        status: int | None,
        message: str,
        *,
        rate_limited: bool = False,
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.rate_limited = rate_limited
        self.maybe_applied = maybe_applied


class GitHubClient:
    """GitHub's REST API at `api_url` (GitHub Enterprise Server: `https://HOST/api/v3`)."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        backoff_base_s: float = 1.0,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token:
            raise ValueError("no GitHub token: pass the action's github-token input")
        if not _TOKEN_CHARS.fullmatch(token):
            raise ValueError("the GitHub token contains whitespace or non-printable characters")
        if timeout_s <= 0 or max_retries < 0 or backoff_base_s < 0 or max_wait_s < 0:
            raise ValueError(
                "timeout_s must be positive; max_retries, backoff_base_s and max_wait_s must not "
                "be negative"
            )
        self.api_url = api_url.rstrip("/")
        try:
            self._base = httpx.URL(self.api_url + "/")
        except httpx.InvalidURL as exc:
            raise ValueError(f"api_url {api_url!r} is not a URL ({exc})") from None
        if self._base.scheme not in ("http", "https") or not self._base.host:
            raise ValueError(
                f"api_url {api_url!r} must be an http(s) URL such as {DEFAULT_API_URL} or, "
                "on GitHub Enterprise Server, https://HOST/api/v3"
            )
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._token = token
        self._http = httpx.Client(
            base_url=self._base,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": MEDIA_TYPE,
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": user_agent(),
            },
            timeout=httpx.Timeout(timeout_s),
            # GitHub redirects renamed repositories; httpx drops Authorization across origins.
            follow_redirects=True,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_url={self.api_url!r})"

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- calls ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
    ) -> httpx.Response:
        """Send `method path` (relative to api_url, or an absolute URL under it, as in a Link
        header) and return the 2xx answer; raise GitHubError otherwise."""
        method = method.upper()
        url = self._resolve(path)
        where = f"GitHub API {method} {httpx.URL(url).path}"
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(method, url, json=json, params=params)
            except httpx.TransportError as exc:
                problem = f"{where} got no answer ({_describe(exc, self.timeout_s)})"
                unsent = isinstance(exc, _NOT_SENT)
                if attempt == attempts or not (method in IDEMPOTENT_METHODS or unsent):
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise self._error(
                        None,
                        f"{problem}{tries}",
                        maybe_applied=method not in IDEMPOTENT_METHODS and not unsent,
                    ) from None
                self._pause(self._backoff(attempt), problem, attempt, attempts)
                continue
            if response.is_success:
                return response
            status = response.status_code
            said = _github_message(response, self._mask)
            rate_wait = _rate_limit_wait(response, said)
            if rate_wait is not None and rate_wait > self.max_wait_s:
                raise self._error(
                    status,
                    f"{where} is rate limited (HTTP {status}) for {rate_wait:.0f}s more, longer "
                    f"than this client waits ({self.max_wait_s:g}s); try again later: {said}",
                    rate_limited=True,
                )
            if status >= 500 and method not in IDEMPOTENT_METHODS:
                raise self._error(
                    status,
                    f"{where} answered HTTP {status}: {said}. GitHub may have applied it all the "
                    "same, so it is not sent again blind",
                    maybe_applied=True,
                )
            retryable = rate_wait is not None or status >= 500
            if not retryable or attempt == attempts:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                hint = " (GitHub refused the token: check the github-token input)"
                raise self._error(
                    status,
                    f"{where} answered HTTP {status}{tries}: {said}{hint if status == 401 else ''}",
                    rate_limited=rate_wait is not None,
                )
            wait = rate_wait
            if wait is None:
                server_wait = parse_retry_after(response.headers.get("retry-after"))
                wait = self._backoff(attempt)
                if server_wait is not None:
                    wait = min(max(wait, server_wait), self.max_wait_s)
            self._pause(wait, f"{where} answered HTTP {status}: {said}", attempt, attempts)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def paginate(
        self, path: str, params: Mapping[str, str | int] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, page after page (`per_page=100` unless given),
        following the `Link: <...>; rel="next"` that GitHub sends while more pages remain."""
        query: Mapping[str, str | int] | None = {"per_page": PER_PAGE, **(params or {})}
        url: str | None = path
        seen: set[str] = set()
        while url is not None:
            response = self.request("GET", url, params=query)
            seen.add(str(response.url))
            query = None  # the next link carries the query on
            try:
                items = response.json()
            except ValueError:
                items = None
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise self._error(
                    response.status_code,
                    f"GitHub API GET {response.url.path} did not answer with a JSON list of "
                    "objects",
                )
            yield from items
            url = response.links.get("next", {}).get("url")
            if url is not None and str(httpx.URL(url)) in seen:
                raise self._error(
                    response.status_code,
                    f"GitHub API GET {response.url.path}: the next-page link points back to a "
                    "page already read",
                )

    # -- helpers -------------------------------------------------------------------------

    def _resolve(self, path: str) -> str:
        """A path relative to api_url, or an absolute URL that stays under it: the token is
        only ever sent to the server it is meant for."""
        if not path.startswith(("http://", "https://")):
            if not path.startswith("/"):
                raise ValueError(f"API path {path!r} must start with '/'")
            return path
        url = httpx.URL(path)
        base = self._base
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port) or not (
            url.path + "/"
        ).startswith(base.path):
            raise self._error(
                None,
                f"refusing to send the GitHub token to {url.scheme}://{url.host}{url.path}, "
                f"which is not under {self.api_url}",
            )
        return path

    def back_off(self, attempt: int, problem: str) -> None:
        """Wait before the caller's own retry number `attempt` (from 1), as this client waits
        before its retries: for a request it does not repeat itself (see IDEMPOTENT_METHODS)."""
        self._pause(self._backoff(attempt), problem, attempt, self.max_retries + 1)

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_base_s * 2.0 ** (attempt - 1), self.max_wait_s)

    def _pause(self, wait: float, problem: str, attempt: int, attempts: int) -> None:
        logger.info(
            "%s; retrying in %.1fs (attempt %d of %d)",
            self._mask(problem),
            wait,
            attempt + 1,
            attempts,
        )
        self._sleep(wait)

    def _mask(self, text: str) -> str:
        return text.replace(self._token, MASK)

    def _error(
        self,
        status: int | None,
        message: str,
        *,
        rate_limited: bool = False,
        maybe_applied: bool = False,
    ) -> GitHubError:
        return GitHubError(
            status, self._mask(message), rate_limited=rate_limited, maybe_applied=maybe_applied
        )


def _describe(exc: httpx.TransportError, timeout_s: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"{type(exc).__name__} after {timeout_s:g}s"
    detail = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _github_message(response: httpx.Response, mask: Callable[[str], str]) -> str:
    """GitHub's `message` (plus any validation `errors`) on one line, masked, then truncated:
    cutting first could leave part of a quoted token that the mask no longer recognises."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    parts: list[str] = []
    if isinstance(payload, dict):
        if isinstance(payload.get("message"), str):
            parts.append(payload["message"])
        errors = payload.get("errors")
        for error in errors if isinstance(errors, list) else []:
            if isinstance(error, str):
                parts.append(error)
            elif isinstance(error, dict):
                detail = error.get("message") or " ".join(
                    str(error[key]) for key in ("field", "code") if key in error
                )
                if detail:
                    parts.append(str(detail))
    if not parts:  # a proxy's HTML page, an empty body
        text = response.text.strip()
        parts.append(response.reason_phrase or "no message")
        if text:
            parts.append(text)
    return _truncate(mask(" ".join(": ".join(parts).split())))


def _truncate(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _rate_limit_wait(response: httpx.Response, message: str) -> float | None:
    """Seconds GitHub asks to wait when `response` is a rate limit; None when it is not one
    (a plain 403 is a permission refusal and is not retried)."""
    status = response.status_code
    if status not in (403, 429):
        return None
    headers = response.headers
    retry_after = parse_retry_after(headers.get("retry-after"))
    if retry_after is not None:
        return retry_after
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            reset = float(headers.get("x-ratelimit-reset", ""))
        except ValueError:
            reset = None
        if reset is not None:
            return max(0.0, reset - time.time())
        return SECONDARY_LIMIT_WAIT_S
    if status == 429 or "secondary rate limit" in message.lower():
        return SECONDARY_LIMIT_WAIT_S
    return None
