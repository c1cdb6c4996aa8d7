"""Webhook delivery of subscriptions: a thread of the API process that posts each subscribed
query's new events to its URL.

It wakes when a capture job of this process has stored events, and every
:data:`POLL_SECONDS` for events stored by anyone else (the CLI, another API process) and for
scheduled subscriptions whose query time has come (so a schedule is kept to within about a
second). A scheduled run sends every event stored since the last run, batch after batch; with
``reportIfEmpty`` a run that found nothing posts an empty result. Each
delivery is an EPCIS 2.0 JSON-LD ``EPCISQueryDocument`` (``queryResults.queryName``,
``subscriptionID``, at most :data:`DELIVERY_BATCH` events, in the order they were stored) sent by
``POST`` with ``Content-Type: application/ld+json``; when the subscription has a signature token
the ``GS1-Signature`` header carries the hex HMAC-SHA256 of the body under that token, so the
receiver can tell the sender. Any 2xx answer counts as delivered; anything else, a timeout or a
refused connection is retried later with the same events (``yaolian.store.subscriptions``).
Delivery is at least once: only a server stopped between the receiver's answer and recording it
sends that batch again, and the ``subscriptionID`` and eventIDs let the receiver drop it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading

import httpx
from sqlalchemy import Engine

from yaolian import __version__
from yaolian.api.epcis import query_document_json
from yaolian.errors import BusyError, YaolianError
from yaolian.store.subscriptions import (
    Claim,
    check_dest,
    claim,
    delivered,
    due,
    failed,
    next_events,
)

log = logging.getLogger("yaolian.webhooks")
DELIVERY_BATCH = 1_000  # events per POST
POLL_SECONDS = 1.0
TIMEOUT_SECONDS = 10.0
SIGNATURE_HEADER = "GS1-Signature"


def signature(body: bytes, token: str) -> str:
    """The ``GS1-Signature`` of a delivery: hex HMAC-SHA256 of the body keyed by the token."""
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


class WebhookDispatcher:
    """Delivers due subscriptions; :meth:`start` runs it in a thread until :meth:`stop`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.client = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run :meth:`run_once` in a daemon thread, on every wake-up and poll."""
        self._thread = threading.Thread(target=self._loop, name="yaolian-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread (a delivery under way finishes first) and close the HTTP client."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(TIMEOUT_SECONDS + 5)
        self.client.close()

    def wake(self) -> None:
        """Look for due subscriptions now (new events were stored)."""
        self._wake.set()

    def run_once(self) -> int:
        """Deliver the next batch of every due subscription; the number of batches sent."""
        sent = 0
        for sub_id in due(self.engine):
            claimed = claim(self.engine, sub_id)
            if claimed is not None:
                sent += self._deliver(claimed)
        return sent

    def _deliver(self, claimed: Claim) -> int:
        try:
            events, through = next_events(
                self.engine,
                claimed.params,
                claimed.viewer,
                after_event=claimed.after_event,
                min_record_us=claimed.min_record_us,
                limit=DELIVERY_BATCH,
            )
        except YaolianError as exc:  # the saved query no longer runs (e.g. a code rule changed)
            failed(self.engine, claimed, f"the query cannot run: {exc}")
            return 0
        caught_up = len(events) < DELIVERY_BATCH
        if not events and not claimed.report_if_empty:  # none for this subscriber: move on
            delivered(self.engine, claimed, through, 0, caught_up=True)
            return 0
        try:
            # the allowed hosts may have changed since it subscribed; the name may now point
            # inside the network
            check_dest(claimed.dest, resolve=True)
        except YaolianError as exc:
            failed(self.engine, claimed, exc.reason)
            return 0
        body = query_document_json(
            [e for _, e in events], claimed.query_name, claimed.subscription_id
        )
        headers = {
            "Content-Type": "application/ld+json",
            "User-Agent": f"yaolian/{__version__}",
        }
        if claimed.signature_token is not None:
            headers[SIGNATURE_HEADER] = signature(body, claimed.signature_token)
        try:
            answer = self.client.post(claimed.dest, content=body, headers=headers)
        except httpx.HTTPError as exc:
            failed(self.engine, claimed, f"{type(exc).__name__}: {exc}")
            return 0
        if answer.is_success:
            delivered(self.engine, claimed, through, len(events), caught_up=caught_up)
            return 1
        failed(self.engine, claimed, f"{claimed.dest} answered HTTP {answer.status_code}")
        return 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                while self.run_once() and not self._stop.is_set():
                    pass  # a backlog goes out batch after batch
            except BusyError:  # a long capture holds the store: its events go out next round
                log.info("store busy; webhook deliveries wait for the next round")
            except Exception:  # the store gone for a moment: try again on the next poll
                log.exception("webhook delivery round failed")
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
