"""Prompt names in the registry, and the tags promptgate sets on them."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


ALIAS = "production"


PATH_TAG = "promptgate.path"


COMMIT_TAG = "promptgate.commit"


GATE_RUN_TAG = "promptgate.gate_run"


GATE_VERDICT_TAG = "promptgate.gate_verdict"


PROMPT_VERDICT_TAG = "promptgate.prompt_verdict"


CONFIG_HASH_TAG = "promptgate.config_hash"


PROMPT_HASH_TAG = "promptgate.prompt_hash"


REPOSITORY_TAG = "promptgate.repository"


DELETED_TAG = "promptgate.deleted_in"


RENAMED_TAG = "promptgate.renamed_to"


MAX_NAME = 200  # the registry stores names in a 256-character column; leave room


NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.-]")  # MLflow's rule: ^[a-zA-Z0-9_.-]+$


def prompt_name(path: str) -> str:
    """The MLflow prompt name of a repository path.

    `/` becomes `.`, any other character outside MLflow's `[A-Za-z0-9_.-]` becomes `_`:
    `prompts/summarize.txt` -> `prompts.summarize.txt`, `chat/Q&A.prompt.yml` ->
    `chat.Q_A.prompt.yml`. Names longer than 200 characters keep their first 191 and a hash of
    the path. Two paths that map to one name are caught when registering (the prompt's
    `promptgate.path` tag says which path owns it).
    """
    name = NOT_IN_NAME.sub("_", path.strip("/").replace("/", "."))
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(path.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9]}-{digest}"
    return name or "_"
