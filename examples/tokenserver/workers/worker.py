import json, os, urllib.request

def credential(name="access_token", stale=None):
    """GET /name; after WeChat rejects a token (40001/40014/42001) pass it as stale."""
    url = os.environ["TOKENSERVER_URL"] + "/" + name + ("" if stale is None else "/refresh")
    body = None if stale is None else json.dumps({"stale": stale}).encode()
    req = urllib.request.Request(url, data=body, headers={
        "Authorization": "Bearer " + os.environ["TOKENSERVER_SECRET"], "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)  # {"value": …, "expires_at": …, "expires_at_unix": …}
