"""Who may change the knowledge base and who may read it: passwords from settings, checked in constant time.

Asking stays open unless a reader password is set; changing documents (the page's 知识库 tab and the API's
`/add_document`, `/delete_document`) needs the editor password whenever one is set. A page bound to an
address other than loopback must have an editor password, or be started with `--insecure-no-auth`.
API clients send the editor password in the `X-Editor-Password` header and the reader password as HTTP
login (`gradio_client.Client(url, auth=("reader", password), headers={"X-Editor-Password": ...})`).
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

EDITOR_HEADER = "x-editor-password"
READER_USER = "reader"


@dataclass(frozen=True)
class AuthConfig:
    """The passwords; None means that role needs none."""

    editor_password: str | None = None
    reader_password: str | None = None

    def __post_init__(self) -> None:
        for name in ("editor_password", "reader_password"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) < 8):
                raise ValueError(f"{name} must be a string of at least 8 characters")

    def __repr__(self) -> str:  # never print a password into a log
        return (f"AuthConfig(editor_password={'set' if self.editor_password else None}, "
                f"reader_password={'set' if self.reader_password else None})")

    @property
    def editing_locked(self) -> bool:
        return self.editor_password is not None

    def may_edit(self, given: object) -> bool:
        """Whether `given` unlocks changes (always, when no editor password is set)."""
        if self.editor_password is None:
            return True
        return isinstance(given, str) and hmac.compare_digest(given.encode("utf-8"), self.editor_password.encode("utf-8"))

    def may_read(self, user: object, given: object) -> bool:
        """Gradio's `auth=` callback: the reader password (any user name) or the editor password unlocks reading."""
        if self.reader_password is None:
            return True
        if not isinstance(given, str):
            return False
        return any(hmac.compare_digest(given.encode("utf-8"), p.encode("utf-8"))
                   for p in (self.reader_password, self.editor_password) if p is not None)


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, auth: AuthConfig, insecure: bool) -> str | None:
    """Why serving on `host` with these passwords must not start, or None when it may."""
    if is_loopback(host) or auth.editing_locked or insecure:
        return None
    return (f"refusing to serve on {host} without an editor password: anyone who can reach it could delete and "
            f"replace the documents. Set RAG_EDITOR_PASSWORD (or editor_password under [auth] in rag.toml), "
            f"or pass --insecure-no-auth to serve it open anyway")
