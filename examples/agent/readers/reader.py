import json, time

def read_token(path="/run/wechat/access_token.json", margin=60, now=None):
    """The credential `wechatconf agent` keeps in path: {"value": …, "expires_at_unix": …, …}.
    Raises OSError without the file, ValueError if it is not a token file or expires within margin seconds."""
    with open(path, encoding="utf-8") as f:
        tok = json.load(f)
    if not isinstance(tok, dict) or not tok.get("value") or not isinstance(tok.get("expires_at_unix"), int):
        raise ValueError(path + ": not a token file")
    if tok["expires_at_unix"] - margin <= (time.time() if now is None else now):
        raise ValueError(path + ": the token expires within %d s: is wechatconf agent running?" % margin)
    return tok
