"""A GitHub REST stub on 127.0.0.1: issue comments, checked the way GitHub checks them, plus
the two reads behind an override label (an issue's events, a collaborator's permission).

It serves the calls the sticky comment makes (list, create, get and edit issue comments) from
memory, over real sockets. Every request is recorded, and whatever GitHub would refuse (a
missing or wrong token, a wrong Accept header, a body that is not a JSON object with a string
`body`, a body over 65,536 characters, an unknown path or method) is answered with GitHub's
status and also kept in `violations`, which tests assert is empty. So is editing a comment
that a person wrote, and posting a comment whose body an earlier comment by the same bot on the
same issue already has (a POST sent again after one that was stored): GitHub would allow both,
promptgate must not do either.

    with GitHubStub(token="ghs_test") as github:
        github.add_comment("octo/repo", 7, "looks good", user=HUMAN)
        github.script(Fault.http_error(502), Fault.rate_limited(retry_after="1"))
        github.script(Fault.ok(), Fault.served_then(500))  # the POST is stored, then 500
        ...  # point a GitHubClient at github.api_url
        assert github.violations == []

`prefix="/api/v3"` serves the API under a path, as GitHub Enterprise Server does. List pages
follow `per_page` and `page` and carry `Link` headers whose URLs, like GitHub's, use the
`/repositories/{id}/...` form rather than the path the client asked for.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

BOT: dict[str, Any] = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
HUMAN: dict[str, Any] = {"login": "octocat", "id": 583231, "type": "User"}
DEFAULT_TOKEN = "ghs_StubToken0123456789abcdefghijklmnop"
MEDIA_TYPE = "application/vnd.github+json"
API_VERSION = "2022-11-28"
MAX_BODY_CHARS = 65_536
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
DOCS = "https://docs.github.com/rest/issues/comments"
SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

_ISSUE_COMMENTS = re.compile(r"/repos/([^/]+)/([^/]+)/issues/(\d+)/comments")
_ISSUE_COMMENTS_BY_ID = re.compile(r"/repositories/(\d+)/issues/(\d+)/comments")
_COMMENT = re.compile(r"/repos/([^/]+)/([^/]+)/issues/comments/(\d+)")
_ISSUE_EVENTS = re.compile(r"/repos/([^/]+)/([^/]+)/issues/(\d+)/events")
_PERMISSION = re.compile(r"/repos/([^/]+)/([^/]+)/collaborators/([^/]+)/permission")


@dataclass(frozen=True)
class Fault:
    """How the stub misbehaves for one request, whatever the request. With `after_serving`, the
    request is served first (a write takes effect) and the fault is what the client sees."""

    kind: Literal["ok", "http", "disconnect", "hang"]
    status: int = 0
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    after_serving: bool = False

    @classmethod
    def ok(cls) -> Fault:
        """Serve this request normally (to place a fault on a later one)."""
        return cls("ok")

    @classmethod
    def http_error(
        cls,
        status: int,
        message: str | None = None,
        *,
        retry_after: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Answer `status` with a GitHub-style `{"message": ...}` body."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = retry_after
        text = message if message is not None else HTTPStatus(status).phrase
        return cls("http", status=status, message=text, headers=tuple(extra.items()))

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1") -> Fault:
        """429 Too Many Requests, with Retry-After unless it is None."""
        return cls.http_error(429, SECONDARY_LIMIT_MESSAGE, retry_after=retry_after)

    @classmethod
    def secondary_rate_limit(cls, retry_after: str | None = "1") -> Fault:
        """GitHub's secondary rate limit: 403, with Retry-After unless it is None."""
        return cls.http_error(403, SECONDARY_LIMIT_MESSAGE, retry_after=retry_after)

    @classmethod
    def primary_rate_limit(cls, reset_in_s: float) -> Fault:
        """The hourly quota used up: 403 with x-ratelimit-remaining 0 until the reset."""
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(int(time.time() + reset_in_s)),
        }
        return cls.http_error(403, "API rate limit exceeded for installation.", headers=headers)

    @classmethod
    def disconnect(cls) -> Fault:
        """Close the connection without answering."""
        return cls("disconnect")

    @classmethod
    def served_then(cls, status: int | Literal["disconnect"]) -> Fault:
        """Serve the request (a POST stores its comment), then answer `status` instead, or
        close the connection without an answer: a write that failed after it succeeded."""
        fault = cls.disconnect() if status == "disconnect" else cls.http_error(status)
        return dataclasses.replace(fault, after_serving=True)

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Say nothing for `seconds` (longer than the client's timeout), then close."""
        return cls("hang", seconds=seconds)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # as sent, without the query (and with the prefix, if any)
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON; None when there was no body or it was not JSON
    raw_body: bytes = b""

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS


@dataclass
class _Answer:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class GitHubStub:
    """The server. Attributes may be changed while it runs; they apply to the next request.

    `on_request`, when set, is called with each recorded request before it is served (for
    example to delete a comment between the client's list and its edit).
    """

    def __init__(
        self, *, token: str = DEFAULT_TOKEN, prefix: str = "", read_only: bool = False
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError("prefix must start with '/' and not end with one, e.g. '/api/v3'")
        self.token = token
        self.prefix = prefix
        self.read_only = read_only
        self.on_request: Callable[[RecordedRequest], None] | None = None
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._violations: list[str] = []
        self._comments: dict[int, dict[str, Any]] = {}  # id -> comment, with "_repo", "_issue"
        self._repo_ids: dict[str, int] = {}
        self._events: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self._permissions: dict[tuple[str, str], str] = {}
        self._next_id = 2_000_000_001
        self._clock = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------
    def start(self) -> GitHubStub:
        if self._server is not None:
            raise RuntimeError("the stub is already running")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.stub = self
        self._server = server
        self._stopping.clear()
        # A short poll interval: `shutdown` waits for one, and tests start many stubs.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name="github-stub"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # wakes hanging handlers
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        self._server, self._thread = None, None

    def __enter__(self) -> GitHubStub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        if self._server is None:
            raise RuntimeError("the stub is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return self.origin + self.prefix

    def script(self, *faults: Fault) -> None:
        """Misbehave for the next requests, one fault each, in arrival order."""
        with self._lock:
            self._faults.extend(faults)

    def add_comment(
        self, repository: str, issue: int, body: str, *, user: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Seed a comment as if someone had posted it (by default a person, `HUMAN`)."""
        with self._lock:
            return self._public(self._create(repository, issue, body, user or HUMAN))

    def add_label_event(
        self, repository: str, issue: int, label: str, *, actor: str, removed: bool = False
    ) -> None:
        """Record that `actor` added (or removed) `label` on the issue, as its events list shows."""
        with self._lock:
            events = self._events.setdefault((repository.lower(), issue), [])
            events.append(
                {
                    "id": 9_000_000_001 + len(events),
                    "event": "unlabeled" if removed else "labeled",
                    "actor": {"login": actor, "id": 1000 + len(events), "type": "User"},
                    "label": {"name": label, "color": "d73a4a"},
                    "created_at": self._timestamp(),
                }
            )

    def set_permission(self, repository: str, user: str, permission: str) -> None:
        """`user`'s permission on the repository: admin, maintain, write, triage, read or none."""
        with self._lock:
            self._permissions[(repository.lower(), user.lower())] = permission

    def reset_requests(self) -> None:
        """Forget recorded requests and violations (comments and faults stay)."""
        with self._lock:
            self._requests.clear()
            self._violations.clear()

    # -- observations --------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(path_suffix)]

    @property
    def writes(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.is_write]

    @property
    def violations(self) -> list[str]:
        with self._lock:
            return list(self._violations)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def comments(self, repository: str, issue: int) -> list[dict[str, Any]]:
        """The issue's comments, oldest first, as GitHub would list them."""
        key = repository.lower()
        with self._lock:
            return [
                self._public(c)
                for c in sorted(self._comments.values(), key=lambda c: c["id"])
                if c["_repo"] == key and c["_issue"] == issue
            ]

    def delete_comment(self, comment_id: int) -> None:
        with self._lock:
            self._comments.pop(comment_id, None)

    # -- serving (called from the server's threads) --------------------------------------
    def _serve(self, request: RecordedRequest) -> _Answer | Fault:
        with self._lock:
            self._requests.append(request)
        if self.on_request is not None:
            self.on_request(request)
        with self._lock:
            refusal = self._check(request)
            fault = self._faults.popleft() if self._faults else None
            if fault is not None and fault.after_serving and refusal is None:
                self._route(request)  # takes effect; the client gets the fault instead
            if fault is not None and fault.kind != "ok":
                if fault.kind != "http":
                    return fault
                return _Answer(
                    fault.status,
                    {"message": fault.message, "documentation_url": DOCS},
                    dict(fault.headers),
                )
            if refusal is not None:
                return refusal
            return self._route(request)

    def _violation(self, request: RecordedRequest, problem: str) -> None:
        self._violations.append(f"{request.method} {request.path}: {problem}")

    def _check(self, request: RecordedRequest) -> _Answer | None:
        """Record everything GitHub would object to; answer the first objection, if any."""
        answers: list[_Answer] = []

        def refuse(problem: str, status: int, payload: dict[str, Any]) -> None:
            self._violation(request, problem)
            answers.append(_Answer(status, {**payload, "documentation_url": DOCS}))

        headers = request.headers
        if self.prefix and not request.path.startswith(self.prefix + "/"):
            refuse(f"outside the API prefix {self.prefix}", 404, {"message": "Not Found"})
        if not headers.get("user-agent"):
            refuse(
                "no User-Agent",
                403,
                {
                    "message": "Request forbidden by administrative rules. Please make sure "
                    "your request has a User-Agent header"
                },
            )
        authorization = headers.get("authorization")
        if authorization != f"Bearer {self.token}":
            problem = "no Authorization header" if authorization is None else "wrong credentials"
            refuse(problem, 401, {"message": "Bad credentials"})
        if MEDIA_TYPE not in headers.get("accept", ""):
            refuse(
                f"Accept is {headers.get('accept')!r}, not {MEDIA_TYPE}",
                415,
                {"message": "Unsupported 'Accept' header"},
            )
        version = headers.get("x-github-api-version")
        if version is None:
            self._violation(request, "no X-GitHub-Api-Version header")
        elif version != API_VERSION:
            refuse(
                f"X-GitHub-Api-Version {version!r}",
                400,
                {"message": f"API version {version} is not supported."},
            )
        if request.method in ("POST", "PATCH"):
            content_type = headers.get("content-type", "")
            body = request.body
            if not content_type.startswith("application/json"):
                refuse(f"Content-Type {content_type!r}", 422, {"message": "Problems parsing JSON"})
            elif not isinstance(body, dict) or not isinstance(body.get("body"), str):
                refuse(
                    "the JSON body is not an object with a string 'body'",
                    422,
                    {"message": "Invalid request.\n\nFor 'properties/body', it is not a string."},
                )
            elif len(body["body"]) > MAX_BODY_CHARS:
                refuse(
                    f"body of {len(body['body'])} characters",
                    422,
                    {
                        "message": "Validation Failed",
                        "errors": [
                            {
                                "resource": "IssueComment",
                                "code": "custom",
                                "field": "body",
                                "message": "body is too long (maximum is 65536 characters)",
                            }
                        ],
                    },
                )
        return answers[0] if answers else None

    def _route(self, request: RecordedRequest) -> _Answer:
        path = request.path.removeprefix(self.prefix)
        if match := _ISSUE_COMMENTS.fullmatch(path):
            repository, issue = f"{match[1]}/{match[2]}", int(match[3])
            if request.method == "GET":
                return self._list(repository, issue, request.query)
            if request.method == "POST":
                self._check_duplicate(request, repository, issue)
                return self._write(request, lambda: self._create(repository, issue, "", BOT))
        elif match := _ISSUE_COMMENTS_BY_ID.fullmatch(path):
            names = {number: name for name, number in self._repo_ids.items()}
            repository_name = names.get(int(match[1]))
            if repository_name is not None and request.method == "GET":
                return self._list(repository_name, int(match[2]), request.query)
        elif match := _COMMENT.fullmatch(path):
            comment = self._comments.get(int(match[3]))
            if comment is None or comment["_repo"] != f"{match[1]}/{match[2]}".lower():
                return _Answer(404, {"message": "Not Found", "documentation_url": DOCS})
            if request.method == "GET":
                return _Answer(200, self._public(comment))
            if request.method == "PATCH":
                if comment["user"]["type"] != "Bot":
                    self._violation(request, f"edited a comment written by {comment['user']}")
                return self._write(request, lambda: comment)
        elif (match := _ISSUE_EVENTS.fullmatch(path)) and request.method == "GET":
            events = self._events.get((f"{match[1]}/{match[2]}".lower(), int(match[3])), [])
            return self._page(events, request.query)
        elif (match := _PERMISSION.fullmatch(path)) and request.method == "GET":
            role = self._permissions.get((f"{match[1]}/{match[2]}".lower(), match[3].lower()))
            role = role or "none"
            # `permission` folds maintain into write and triage into read, as GitHub does
            legacy = {"maintain": "write", "triage": "read"}.get(role, role)
            return _Answer(
                200, {"permission": legacy, "role_name": role, "user": {"login": match[3]}}
            )
        self._violation(request, f"no route for {request.method} here")
        return _Answer(404, {"message": "Not Found", "documentation_url": DOCS})

    def _check_duplicate(self, request: RecordedRequest, repository: str, issue: int) -> None:
        key, body = repository.lower(), request.body["body"]
        for comment in self._comments.values():
            if (comment["_repo"], comment["_issue"], comment["body"]) == (key, issue, body) and (
                comment["user"]["login"] == BOT["login"]
            ):
                self._violation(
                    request,
                    f"a second comment with the body of comment {comment['id']} (a POST sent "
                    "again after one that was stored)",
                )
                return

    def _write(self, request: RecordedRequest, target: Callable[[], dict[str, Any]]) -> _Answer:
        if self.read_only:
            return _Answer(
                403,
                {
                    "message": "Resource not accessible by integration",
                    "documentation_url": DOCS,
                    "status": "403",
                },
            )
        comment = target()
        comment["body"] = request.body["body"]
        comment["updated_at"] = self._timestamp()
        public = self._public(comment)
        if request.method == "POST":
            return _Answer(201, public, {"Location": public["url"]})
        return _Answer(200, public)

    def _list(self, repository: str, issue: int, query: dict[str, str]) -> _Answer:
        try:
            per_page = min(max(int(query.get("per_page", "30")), 1), 100)
            page = max(int(query.get("page", "1")), 1)
        except ValueError:
            per_page, page = 30, 1  # GitHub ignores what it cannot read
        key = repository.lower()
        everything = sorted(
            (c for c in self._comments.values() if c["_repo"] == key and c["_issue"] == issue),
            key=lambda c: c["id"],
        )
        shown = everything[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(everything) // per_page))
        headers = {}
        if last > 1:
            base = f"{self.api_url}/repositories/{self._repo_id(key)}/issues/{issue}/comments"
            links = []
            if page < last:
                links += [(page + 1, "next"), (last, "last")]
            if page > 1:
                links += [(page - 1, "prev"), (1, "first")]
            headers["Link"] = ", ".join(
                f'<{base}?per_page={per_page}&page={number}>; rel="{rel}"' for number, rel in links
            )
        return _Answer(200, [self._public(c) for c in shown], headers)

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> _Answer:
        """One page of a list (no Link header: these lists are short in the tests)."""
        per_page = min(max(int(query.get("per_page", "30") or 30), 1), 100)
        page = max(int(query.get("page", "1") or 1), 1)
        if len(items) > per_page:
            self._violations.append("a list longer than one page: extend the stub's paging")
        return _Answer(200, copy.deepcopy(items[(page - 1) * per_page : page * per_page]))

    # -- state (call with the lock held) -------------------------------------------------
    def _create(
        self, repository: str, issue: int, body: str, user: dict[str, Any]
    ) -> dict[str, Any]:
        comment_id = self._next_id
        self._next_id += 1
        now = self._timestamp()
        comment = {
            "id": comment_id,
            "node_id": f"IC_stub{comment_id}",
            "body": body,
            "user": dict(user),
            "created_at": now,
            "updated_at": now,
            "author_association": "NONE" if user.get("type") == "Bot" else "CONTRIBUTOR",
            "_repository": repository,
            "_repo": repository.lower(),
            "_issue": issue,
        }
        self._repo_id(repository.lower())
        self._comments[comment_id] = comment
        return comment

    def _public(self, comment: dict[str, Any]) -> dict[str, Any]:
        repository, issue, comment_id = comment["_repository"], comment["_issue"], comment["id"]
        public = {k: copy.deepcopy(v) for k, v in comment.items() if not k.startswith("_")}
        public["url"] = f"{self.api_url}/repos/{repository}/issues/comments/{comment_id}"
        public["html_url"] = (
            f"https://github.com/{repository}/pull/{issue}#issuecomment-{comment_id}"
        )
        public["issue_url"] = f"{self.api_url}/repos/{repository}/issues/{issue}"
        return public

    def _repo_id(self, key: str) -> int:
        return self._repo_ids.setdefault(key, 700_000_001 + len(self._repo_ids))

    def _timestamp(self) -> str:
        # A clock that ticks once per write, so "newest" never depends on timing.
        self._clock += 1
        return (_EPOCH + timedelta(seconds=self._clock)).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    stub: GitHubStub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like GitHub
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet tests

    def _handle(self) -> None:
        stub = self.server.stub
        split = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=dict(urllib.parse.parse_qsl(split.query)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            raw_body=raw,
        )
        outcome = stub._serve(request)
        if isinstance(outcome, Fault):
            if outcome.kind == "hang":
                stub._stopping.wait(outcome.seconds)
            self.close_connection = True  # no answer at all
            return
        payload = json.dumps(outcome.payload).encode()
        headers = {
            "content-type": "application/json; charset=utf-8",
            "content-length": str(len(payload)),
            "x-github-api-version-selected": API_VERSION,
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
        }
        headers.update((name.lower(), value) for name, value in outcome.headers.items())
        self.send_response(outcome.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle
