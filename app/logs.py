"""Logging: one line per event, tagged with the request id, with every known secret redacted.

The redacting filter is the last line of defence for rule 6.4 — code should never log a secret in
the first place, but if a library puts one into a message (a URL, an exception text), the line
that reaches the handler shows ``***`` instead.
"""

from __future__ import annotations

import logging

from flask import Flask, g, has_request_context


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        # Longest first so a secret that contains another is redacted whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = g.get("request_id", "-")
        elif not hasattr(record, "request_id"):
            record.request_id = "-"
        if self.secrets:
            message = record.getMessage()
            redacted = message
            for secret in self.secrets:
                if secret in redacted:
                    redacted = redacted.replace(secret, "***")
            if redacted != message or record.exc_info:
                if record.exc_info:
                    text = logging.Formatter().formatException(record.exc_info)
                    for secret in self.secrets:
                        text = text.replace(secret, "***")
                    redacted = f"{redacted}\n{text}"
                    record.exc_info = None
                    record.exc_text = None
                record.msg, record.args = redacted, None
        return True


def init_app(app: Flask, secrets: list[str]) -> None:
    level = getattr(logging, app.config["LOG_LEVEL"], logging.INFO)
    redact = RedactSecrets(secrets)
    root = logging.getLogger()
    if not any(getattr(h, "_switchboard", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler._switchboard = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
        root.addHandler(handler)
    for handler in root.handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
            handler.removeFilter(old)
        handler.addFilter(redact)
    root.setLevel(level)
    app.logger.setLevel(level)
