"""``type = "email"``: a plain-text mail over SMTP. See ``docs/notify/email.md``.

Hand-written on the standard library's ``smtplib``: no dependency, and every failure
keeps its SMTP code and text for the journal (4xx: tried again; 5xx: not).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from .._options import Options
from ..exceptions import ConfigError
from .base import DeliveryError, NotificationEvent, env_value
from .webhook import _env_name

__all__ = ["SECURITY", "EmailNotifier", "create", "email_message"]

# How the connection is protected: STARTTLS after connecting, TLS from the first
# byte (SMTPS), or not at all (a relay on the same host).
SECURITY = {"starttls": 587, "tls": 465, "none": 25}


def email_message(event: NotificationEvent, *, sender: str, to: Sequence[str]) -> EmailMessage:
    """The message as a plain-text email."""
    message = EmailMessage()
    message["Subject"] = event.title
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain="gatekeeper.invalid")
    message["X-Gatekeeper-Run"] = event.run_id
    message["X-Gatekeeper-Event"] = event.kind
    message.set_content(event.text())
    return message


class EmailNotifier:
    """Sends one mail per event through an SMTP server."""

    def __init__(
        self,
        name: str,
        *,
        host: str,
        sender: str,
        to: Sequence[str],
        port: int | None = None,
        security: str = "starttls",
        username_env: str | None = None,
        password_env: str | None = None,
        env: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in SECURITY:
            raise ValueError(f"security must be one of {', '.join(SECURITY)}")
        self.name = name
        self.host = host
        self.port = port if port is not None else SECURITY[security]
        self.sender = sender
        self.to = tuple(to)
        self.security = security
        self._username_env = username_env
        self._password_env = password_env
        self._env = env if env is not None else {}
        self._ssl_context = ssl_context

    def __repr__(self) -> str:
        return f"EmailNotifier({self.name!r}, {self.host}:{self.port}, to={list(self.to)!r})"

    def secret_env_names(self) -> tuple[str, ...]:
        """The environment variables whose values must be redacted."""
        return tuple(n for n in (self._username_env, self._password_env) if n)

    def send(self, event: NotificationEvent, *, timeout: float) -> None:
        message = email_message(event, sender=self.sender, to=self.to)
        login = None
        if self._username_env and self._password_env:
            login = (
                env_value(self._env, self._username_env, "the SMTP username"),
                env_value(self._env, self._password_env, "the SMTP password"),
            )
        context = self._ssl_context or ssl.create_default_context()
        try:
            smtp: smtplib.SMTP
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=context)
                if login is not None:
                    smtp.login(*login)
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                "every recipient refused: " + _refusals(exc.recipients), transient=False
            ) from None
        except smtplib.SMTPResponseException as exc:
            error = exc.smtp_error
            text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
            raise DeliveryError(
                f"SMTP {exc.smtp_code} {text}".strip(), transient=400 <= exc.smtp_code < 500
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"SMTP server: {exc}", transient=False) from None
        except (TimeoutError, smtplib.SMTPServerDisconnected) as exc:
            raise DeliveryError(
                f"timed out after {timeout:g}s"
                if isinstance(exc, TimeoutError)
                else f"disconnected: {exc}",
                transient=True,
            ) from None
        except ConnectionRefusedError:
            raise DeliveryError("connection refused", transient=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", transient=True) from None
        if refused:
            raise DeliveryError("some recipients refused: " + _refusals(refused), transient=False)

    def close(self) -> None:
        """One connection per message: nothing stays open."""


def _refusals(recipients: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{to}: {code} {text.decode(errors='replace')}" for to, (code, text) in recipients.items()
    )


def create(name: str, options: Mapping[str, Any], env: Mapping[str, str]) -> EmailNotifier:
    """Build from a ``[notify.NAME]`` table's type options (no I/O)."""
    opts = Options(options)
    host = opts.required_text("host")
    security = opts.text("security", "starttls") or "starttls"
    if security not in SECURITY:
        raise ConfigError(
            f"expected one of {', '.join(SECURITY)}, got {security!r}", key="security"
        )
    port = opts.integer("port")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"expected a TCP port (1-65535), got {port}", key="port")
    sender = opts.required_text("from")
    raw_to = opts.raw("to")
    to = [raw_to] if isinstance(raw_to, str) else raw_to
    if not to or not isinstance(to, list) or not all(isinstance(t, str) and t for t in to):
        raise ConfigError("expected an address or a list of addresses", key="to")
    username = opts.raw("username_env")
    password = opts.raw("password_env")
    if (username is None) != (password is None):
        raise ConfigError("give both username_env and password_env, or neither", key="username_env")
    username_env = None if username is None else _env_name(username, "username_env")
    password_env = None if password is None else _env_name(password, "password_env")
    if password_env is not None and security == "none":
        raise ConfigError(
            "a password is never sent over an unprotected connection: use starttls or tls",
            key="security",
        )
    opts.done()
    return EmailNotifier(
        name,
        host=host,
        port=port,
        sender=sender,
        to=to,
        security=security,
        username_env=username_env,
        password_env=password_env,
        env=env,
    )
