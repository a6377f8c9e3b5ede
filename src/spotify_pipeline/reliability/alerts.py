"""Alerts: a short JSON message to a webhook when a run fails. Delivery problems are logged, never fatal."""

from __future__ import annotations

import logging
import os

import httpx

log = logging.getLogger(__name__)
ENV = "SPOTIFY_PIPELINE_ALERT_WEBHOOK"


def send_alert(text: str, url: str | None = None, timeout: float = 5.0) -> bool:
    """POST `{"text": ...}` (Slack-compatible) to the webhook, if one is configured. True when delivered."""
    url = url or os.environ.get(ENV)
    if not url:
        return False
    try:
        response = httpx.post(url, json={"text": text}, timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("alert not delivered to the webhook: %s", type(exc).__name__)
        return False
    return True
