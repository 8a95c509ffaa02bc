#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol against a running engine:
signs in to the operator dashboard with the admin token, waits for live updates, reads the
figures the page shows, and saves a screenshot. Then renders the API docs page and a load
report file.

Usage: browser_check.py BASE_URL ADMIN_TOKEN SCREENSHOT.png [REPORT.html]
Prints one JSON object with what the page showed (and any console errors)."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # websocket-client

base, token, screenshot = sys.argv[1], sys.argv[2], sys.argv[3]
report = sys.argv[4] if len(sys.argv) > 4 else None
profile = tempfile.mkdtemp(prefix="chromium-")
# Port 0: Chromium picks a free port and writes it to DevToolsActivePort in the profile.
browser = subprocess.Popen(
    ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--remote-debugging-port=0",
     f"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    deadline = time.time() + 60
    page = None
    while page is None and time.time() < deadline:
        try:
            with open(os.path.join(profile, "DevToolsActivePort")) as file:
                port = int(file.readline().strip())
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=1))
            page = next(target for target in targets if target["type"] == "page")
        except Exception:
            time.sleep(0.2)
    if page is None:
        raise SystemExit("chromium did not start within 60 s")
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
    counter = [0]
    errors = []

    def call(method, **params):
        counter[0] += 1
        ws.send(json.dumps({"id": counter[0], "method": method, "params": params}))
        while True:
            message = json.loads(ws.recv())
            if message.get("method") == "Runtime.exceptionThrown":
                errors.append(message["params"]["exceptionDetails"].get("exception", {}).get("description", "exception"))
            if message.get("method") == "Runtime.consoleAPICalled" and message["params"]["type"] == "error":
                errors.append(" ".join(str(arg.get("value")) for arg in message["params"]["args"]))
            if message.get("id") == counter[0]:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(expression):
        result = call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(expression, seconds=30):
        # Right after a navigation the old or a half-built document may answer (no body
        # yet): an error there means "not yet", until the deadline.
        deadline = time.time() + seconds
        last_error = None
        while time.time() < deadline:
            try:
                value = evaluate(expression)
                if value:
                    return value
            except RuntimeError as error:
                last_error = error
            time.sleep(0.25)
        raise SystemExit(f"timed out waiting for {expression} (last error: {last_error})")

    call("Runtime.enable")
    call("Page.enable")
    call("Page.navigate", url=f"{base}/admin/dashboard")
    wait_for("location.pathname === '/admin/dashboard' && document.readyState === 'complete' && !!document.getElementById('signin')")
    signed_out_visible = evaluate("!document.getElementById('signin').hidden")
    evaluate(f"document.getElementById('token').value = {json.dumps(token)}; document.getElementById('signin').requestSubmit(); true")
    wait_for("Number(document.body.dataset.updates || 0) >= 3")
    first = evaluate("Object.fromEntries([...document.querySelectorAll('[id^=stat-]')].map(e => [e.id, e.textContent]))")
    updates_first = evaluate("Number(document.body.dataset.updates)")
    url_has_token = evaluate(f"location.href.includes({json.dumps(token)})")
    stored = evaluate("JSON.stringify({session: sessionStorage.length, local: localStorage.length, cookie: document.cookie})")
    result = {"signedOutFirst": signed_out_visible, "first": first, "updatesFirst": updates_first, "urlHasToken": url_has_token, "storage": json.loads(stored)}
    # Tell the caller the first figures are read (BROWSER_CHECK_READY), let it drive load
    # (BROWSER_CHECK_WAIT_FOR appears when it is done), then read again.
    ready = os.environ.get("BROWSER_CHECK_READY")
    if ready:
        with open(ready, "w") as file:
            file.write("ready")
    marker = os.environ.get("BROWSER_CHECK_WAIT_FOR")
    if marker:
        deadline = time.time() + 60
        while not os.path.exists(marker) and time.time() < deadline:
            time.sleep(0.2)
        # Then until the page shows the expected movement (BROWSER_CHECK_EXPECT_ACTIONS more
        # actions), or at least two more refreshes, within 30 s.
        expected = int(os.environ.get("BROWSER_CHECK_EXPECT_ACTIONS", "0"))
        target = int(first.get("stat-actions-total", "0") or 0) + expected
        updates = evaluate("Number(document.body.dataset.updates)")
        deadline = time.time() + 30
        while time.time() < deadline:
            shown = evaluate("Number(document.getElementById('stat-actions-total').textContent) || 0")
            if shown >= target and evaluate("Number(document.body.dataset.updates)") >= updates + 2:
                break
            time.sleep(0.25)
    result["second"] = evaluate("Object.fromEntries([...document.querySelectorAll('[id^=stat-]')].map(e => [e.id, e.textContent]))")
    result["updatesSecond"] = evaluate("Number(document.body.dataset.updates)")
    shot = call("Page.captureScreenshot", format="png")
    with open(screenshot, "wb") as file:
        file.write(base64.b64decode(shot["data"]))
    call("Page.navigate", url=f"{base}/partner-api")
    wait_for("location.pathname === '/partner-api' && !!document.body && Number(document.body.dataset.operations || 0) > 0")
    result["docs"] = {"operations": evaluate("Number(document.body.dataset.operations)"), "sections": evaluate("document.querySelectorAll('h2').length")}
    if report:
        call("Page.navigate", url="file://" + os.path.abspath(report))
        wait_for("location.protocol === 'file:' && document.readyState === 'complete' && document.querySelectorAll('svg').length === 2")
        result["report"] = {"svgs": evaluate("document.querySelectorAll('svg').length"), "title": evaluate("document.title"),
                            "bars": evaluate("document.querySelectorAll('rect').length")}
        shot = call("Page.captureScreenshot", format="png")
        with open(screenshot.replace(".png", "-report.png"), "wb") as file:
            file.write(base64.b64decode(shot["data"]))
    result["errors"] = errors
    print(json.dumps(result))
finally:
    browser.kill()
    browser.wait()
    shutil.rmtree(profile, ignore_errors=True)
