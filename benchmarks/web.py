"""Web pages: how long a consumer waits, measured against the bare API call in the same run.

On the tiny demo world (built in a temporary folder), with the API served by uvicorn on
loopback in this process:

* baseline: ``GET /verify/{code}`` (the JSON the consumer page shows), median of N calls;
* the consumer page, from navigation to the verdict on screen, in Debian's Chromium driven by
  Playwright (skipped without ``/usr/bin/chromium``), median of N loads;
* ``POST /verify/image`` for phone photos of a pack (1600×1200 and 4000×3000 JPEG), median.

    .venv/bin/python benchmarks/web.py [N]      # N loads / calls per measure, default 20
"""

from __future__ import annotations

import io
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import uvicorn
from PIL import Image

from yaolian.api.app import ApiSettings, create_app
from yaolian.codes.barcode import render

CHROMIUM = Path("/usr/bin/chromium")


def median_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def serve(url: str) -> tuple[uvicorn.Server, str]:
    """The API on a free loopback port, in a thread; returns the server and its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(url, ApiSettings(webhooks=False)), log_level="warning")
    )
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def photo(code: str, size: tuple[int, int], scale: int) -> bytes:
    """A JPEG of a light background with the pack's DataMatrix a third of the way in."""
    picture = Image.new("L", size, 235)
    picture.paste(Image.open(io.BytesIO(render(code, scale=scale))), (size[0] // 3, size[1] // 3))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=90)
    return out.getvalue()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    folder = Path(tempfile.mkdtemp(prefix="yaolian-web-bench-"))
    yaolian = Path(sys.executable).with_name("yaolian")  # the console script beside python
    subprocess.run(
        [str(yaolian), "demo", "--dir", str(folder), "--size", "tiny", "--no-codes"],
        check=True,
        capture_output=True,
    )
    truth = orjson.loads((folder / "ground_truth.json").read_bytes())
    code = truth["samples"]["genuine"]["raw"]
    server, base = serve(f"sqlite:///{folder / 'yaolian-demo.db'}")
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.get(f"/verify/{code}").json()["status"] == "genuine"
        api = median_ms(lambda: client.get(f"/verify/{code}"), n)
        print(f"baseline GET /verify/{{code}}: median {api:.1f} ms ({n} calls)")
        if CHROMIUM.exists():
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
                page = browser.new_page()

                def load() -> None:
                    page.goto(f"{base}/web/scan?code={code}")
                    page.wait_for_selector(".verdict")

                load()  # warm: the browser's first start and the page's files
                shown = median_ms(load, n)
                browser.close()
            print(
                f"consumer page, navigation → verdict on screen: median {shown:.0f} ms "
                f"({n} loads; {shown / api:.0f}× the bare API call)"
            )
        else:
            print(f"consumer page: skipped ({CHROMIUM} is missing)")
        for size, scale in (((1600, 1200), 6), ((4000, 3000), 10)):
            body = photo(code, size, scale)

            def post(body: bytes = body) -> None:
                answer = client.post(
                    "/verify/image", content=body, headers={"Content-Type": "image/jpeg"}
                )
                assert answer.json()["codes"][0]["verdict"]["status"] == "genuine"

            took = median_ms(post, max(n // 3, 3))
            print(
                f"POST /verify/image {size[0]}×{size[1]} JPEG ({len(body) // 1024} kB): median "
                f"{took:.0f} ms ({took / api:.0f}× the bare API call)"
            )
    server.should_exit = True


if __name__ == "__main__":
    main()
