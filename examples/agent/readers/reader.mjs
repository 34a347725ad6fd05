import { readFileSync } from "node:fs";

// The credential `wechatconf agent` keeps in path: {value, expires_at_unix, …}. Throws
// without the file, or if it is not a token file or expires within margin seconds.
export function readToken(path = "/run/wechat/access_token.json", margin = 60, now = Date.now() / 1000) {
  const tok = JSON.parse(readFileSync(path, "utf8"));
  if (typeof tok?.value !== "string" || tok.value === "" || !Number.isInteger(tok.expires_at_unix)) {
    throw new Error(`${path}: not a token file`);
  }
  if (tok.expires_at_unix - margin <= now) {
    throw new Error(`${path}: the token expires within ${margin} s: is wechatconf agent running?`);
  }
  return tok;
}
