"""Capture jobs whose server process stopped: closed as interrupted, nothing of them stored."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from yaolian.api.app import create_app
from yaolian.epcis.jsonld import write_document
from yaolian.store.access import create_key
from yaolian.store.engine import open_engine
from yaolian.store.jobs import (
    close_interrupted,
    create_job,
    get_job,
    list_jobs,
    runner_stopped,
    this_runner,
)
from yaolian.store.schema import capture_job, event
from yaolian.trace.builders import document, object_event


@pytest.fixture(scope="module")
def stopped_runner() -> str:
    """The runner of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = psutil.Process(process.pid).create_time()
    process.kill()
    process.wait()
    return f"{socket.gethostname()}/{process.pid}/{started:.2f}"


def test_a_runner_is_stopped_only_when_known_to_be(stopped_runner: str) -> None:
    assert not runner_stopped(this_runner())
    assert runner_stopped(stopped_runner)
    host, pid, started = this_runner().split("/")
    assert runner_stopped(f"{host}/{pid}/{float(started) - 100:.2f}")  # the pid, a later process
    assert not runner_stopped(f"{host}.elsewhere/{pid}/1.00")  # another host judges its own
    for unknown in (None, "", "garbage", f"{host}/x/1.0", f"{host}/{pid}/not-a-time"):
        assert not runner_stopped(unknown), unknown


def _set_runner(engine: Engine, job_id: int, runner: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(capture_job).where(capture_job.c.id == job_id).values(runner=runner))


def test_a_job_whose_process_stopped_is_closed_when_read(
    engine: Engine, stopped_runner: str
) -> None:
    lost, listed, alive = create_job(engine), create_job(engine), create_job(engine)
    for job_id in (lost, listed):
        _set_runner(engine, job_id, stopped_runner)
    job = get_job(engine, lost)
    assert (job.running, job.success, job.finished_us is not None) == (False, False, True)
    (error,) = job.errors
    assert error["reason"].startswith("interrupted: the server process that ran this job (")
    assert "send the document again" in error["reason"]
    by_id = {job.id: job for job in list_jobs(engine)}
    assert by_id[listed].success is False and not by_id[listed].running
    assert by_id[alive].running and by_id[alive].success is None  # this process runs it
    assert close_interrupted(engine) == 0


def test_a_starting_server_closes_the_jobs_of_a_stopped_one(
    db_url: str, engine: Engine, stopped_runner: str
) -> None:
    job_id = create_job(engine)
    _set_runner(engine, job_id, stopped_runner)
    with TestClient(create_app(db_url)), engine.connect() as conn:
        row = conn.execute(select(capture_job).where(capture_job.c.id == job_id)).one()
    assert (row.running, row.success) == (False, False)
    assert row.errors[0]["reason"].startswith("interrupted")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(url: str, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``yaolian serve`` on the store at ``url``, in a process of its own (killed afterwards)."""
    port = _free_port()
    command = "from yaolian.cli import main; main()"
    args = ["serve", "--db", url, "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-c", command, *args], stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                httpx.get(f"{base}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        yield base, process
    finally:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_a_server_killed_mid_capture_stores_all_or_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    engine = open_engine(url)
    headers = {"Authorization": f"Bearer {create_key(engine, None, 'regulator', '省局')}"}
    start = datetime(2026, 3, 1, tzinfo=UTC)
    events = [
        object_event(
            [f"urn:epc:id:sgtin:6901234.067890.{i}.{k}" for k in range(10)],
            start + timedelta(seconds=i),
            "commissioning",
            "active",
            action="ADD",
        )
        for i in range(20_000)
    ]
    body = write_document(document(events))
    with _server(url, tmp_path / "serve.log") as (base, process):
        posted = httpx.post(
            f"{base}/capture",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
            timeout=120,
        )
        assert posted.status_code == 202, posted.text
        location = posted.headers["Location"]
        seen = httpx.get(f"{base}{location}", headers=headers, timeout=30).json()
        process.kill()  # SIGKILL: no shutdown, no chance to close the job
        process.wait()
    with engine.connect() as conn:  # before any server starts again: still marked running
        row = conn.execute(select(capture_job).where(capture_job.c.id == int(seen["captureID"])))
        left_running = row.one().running
    with _server(url, tmp_path / "serve.log") as (base, _):
        job = httpx.get(f"{base}{location}", headers=headers, timeout=30).json()
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(event)).scalar_one()
        if seen["running"]:  # killed while capturing (the capture takes seconds)
            assert left_running
            assert (job["running"], job["success"], stored) == (False, False, 0), job
            assert job["errors"][0]["reason"].startswith("interrupted"), job
        else:  # a machine fast enough to finish first: every event with the job's result
            assert (job["success"], job["accepted"], stored) == (True, 20_000, 20_000), job
        again = httpx.post(
            f"{base}/capture",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
            timeout=120,
        )
        deadline = time.monotonic() + 600
        while (
            result := httpx.get(
                f"{base}{again.headers['Location']}", headers=headers, timeout=30
            ).json()
        )["running"]:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert result["success"] is True
        assert result["accepted"] + result["duplicates"] == 20_000, result
    engine.dispose()
