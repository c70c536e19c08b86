"""When a call stops being worth running: its caller's deadline, carried in the envelope.

A caller that waits for a reply (a remote tool, a service used as a tool) gives up after its
timeout. The request says so in its `expires_at` header (UTC, ISO 8601), so a service that
takes it later (it was down, or busy) acknowledges it without running it: nobody would read
the answer, and the work may have effects (an e-mail sent). The deadline is the caller's
clock; keep clocks in sync (NTP) as for any distributed timeout.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from llama_agents.messages.envelope import QueueMessage, utc_now

EXPIRES_AT_HEADER = "expires_at"


def set_expiry(message: QueueMessage, timeout: float) -> datetime:
    """Mark `message` as worthless after `timeout` seconds from now; return that moment."""
    expires = utc_now() + timedelta(seconds=timeout)
    message.headers[EXPIRES_AT_HEADER] = expires.isoformat()
    return expires


def expires_at(message: QueueMessage) -> datetime | None:
    """The moment `message` expires, or None (no expiry, or one that cannot be read)."""
    raw = message.headers.get(EXPIRES_AT_HEADER)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def is_expired(message: QueueMessage, now: datetime | None = None) -> bool:
    """True once `message`'s expiry has passed."""
    moment = expires_at(message)
    return moment is not None and (now or utc_now()) >= moment
