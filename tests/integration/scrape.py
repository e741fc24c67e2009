"""Small helpers of the tests that read /metrics (test_metrics.py,
test_status_slow.py, test_status_load.py): a free loopback port, an HTTP
request without a proxy, one sample of a scrape."""
import re
import socket
import urllib.error
import urllib.request

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, timeout=5):
    """(status, body text) of one request."""
    req = urllib.request.Request(url, method=method)
    try:
        with OPENER.open(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def sample(url, name):
    """The value of the unlabelled sample ``name`` in a scrape of url, or
    None when the scrape has none."""
    status, text = http("GET", url)
    assert status == 200, "GET %s: HTTP %d" % (url, status)
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None
