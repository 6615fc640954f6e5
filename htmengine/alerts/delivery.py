"""POSTing alerts to receivers: retried with exponential back-off on timeouts, connection
errors and 5xx answers for a bounded time, then logged and dropped. Runs in a small thread
pool, so a slow or dead receiver delays only its own alerts."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from htmengine.alerts.payload import idempotency_key
from htmengine.exceptions import RetryableDeliveryError

_log = logging.getLogger("htmengine.alerts.delivery")


class AlertSender:
    """Delivers alerts to every configured URL."""

    def __init__(self, urls: tuple[str, ...], timeout: float, retry_for: float,
                 workers: int = 4, max_wait: float = 10.0) -> None:
        self.urls = urls
        self.retry_for = retry_for
        self.max_wait = max_wait
        self._client = httpx.Client(timeout=timeout)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alert")

    def submit(self, payload: dict[str, Any]) -> list[Future[bool]]:
        """Deliver `payload` to every URL in the background; futures tell success."""
        return [self._pool.submit(self.deliver, url, payload) for url in self.urls]

    def _post_once(self, url: str, payload: dict[str, Any]) -> httpx.Response:
        try:
            response = self._client.post(
                url, json=payload, headers={"Idempotency-Key": idempotency_key(payload)})
        except httpx.TransportError as error:   # timeouts, refused connections, resets
            raise RetryableDeliveryError(f"{type(error).__name__}: {error}") from error
        if response.status_code >= 500:
            raise RetryableDeliveryError(f"HTTP {response.status_code}")
        return response

    def deliver(self, url: str, payload: dict[str, Any]) -> bool:
        """POST `payload` to `url`; True when the receiver answered 2xx."""
        retrying = Retrying(
            retry=retry_if_exception_type(RetryableDeliveryError),
            wait=wait_exponential(multiplier=0.5, max=self.max_wait),
            stop=stop_after_delay(self.retry_for),
            before_sleep=lambda state: _log.warning(
                "Alert %s to %s failed (%s); retrying", idempotency_key(payload), url,
                state.outcome.exception() if state.outcome else "?"))
        try:
            response = retrying(self._post_once, url, payload)
        except RetryError as error:
            _log.error("Alert %s to %s dropped after %.0f s of retries: %s",
                       idempotency_key(payload), url, self.retry_for,
                       error.last_attempt.exception())
            return False
        if response.status_code >= 300:
            _log.error("Alert %s to %s refused: HTTP %d %s", idempotency_key(payload), url,
                       response.status_code, response.text[:200])
            return False
        _log.info("Alert %s delivered to %s", idempotency_key(payload), url)
        return True

    def close(self, wait: bool = True) -> None:
        """Finish (or with wait=False abandon) the deliveries under way; close the client."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        self._client.close()
