"""@segment/analytics-next in headless Chromium, loaded by Tessera's snippet from another origin."""

import functools
import http.server
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.test import RequestFactory

from customers.models import Event
from customers.tracking.snippet import tracking_snippet
from tests.factories import SourceFactory

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
def other_origin(tmp_path):
    """A second origin (127.0.0.1 on another port) serving the site owner's page."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_browser_sdk_page_and_track_arrive_cross_origin(live_server, page, other_origin):
    source = SourceFactory()
    host = urlsplit(live_server.url).netloc  # localhost:<port>, a different origin from 127.0.0.1
    snippet = tracking_snippet(source, RequestFactory().get("/", HTTP_HOST=host))
    assert live_server.url in snippet and source.write_key in snippet
    root, origin = other_origin
    (root / "favicon.ico").write_bytes(b"")
    (root / "index.html").write_text(
        f"<!doctype html><html><head><title>Shop</title>{snippet}</head><body>"
        "<script>analytics.track('Button Clicked', {color: 'blue'});</script></body></html>"
    )
    posts, failures = [], []
    page.on("request", lambda r: r.method == "POST" and "/v1/" in r.url and posts.append(r))
    page.on("requestfailed", lambda r: failures.append((r.url, r.failure)))
    page.on("console", lambda m: m.type == "error" and failures.append(m.text))
    page.goto(f"{origin}/index.html")

    deadline = time.monotonic() + 30  # generous bound for a loaded CI machine, not a timing assertion
    while Event.objects.count() < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(200)

    assert failures == []
    events = {e.name: e for e in Event.objects.all()}
    assert set(events) == {"Page Viewed", "Button Clicked"}
    assert events["Button Clicked"].properties == {"color": "blue"}
    assert events["Page Viewed"].properties["path"] == "/index.html"
    assert events["Page Viewed"].context["page"]["title"] == "Shop"
    assert all(e.source_id == source.pk for e in events.values())
    assert len({e.customer_id for e in events.values()}) == 1  # one anonymous visitor
    # The SDK sends Basic auth, so each cross-origin POST needed a CORS preflight to pass.
    assert posts and all(p.headers.get("authorization", "").startswith("Basic ") for p in posts)
    assert all(urlsplit(p.url).netloc == host for p in posts)
