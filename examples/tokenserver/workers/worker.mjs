// Node 18+: GET /name; after WeChat rejects a token (40001/40014/42001) pass it as stale.
export async function credential(name = "access_token", stale = undefined) {
  const url = `${process.env.TOKENSERVER_URL}/${name}${stale === undefined ? "" : "/refresh"}`;
  const resp = await fetch(url, {
    method: stale === undefined ? "GET" : "POST",
    headers: { Authorization: `Bearer ${process.env.TOKENSERVER_SECRET}`, "Content-Type": "application/json" },
    body: stale === undefined ? undefined : JSON.stringify({ stale }),
    signal: AbortSignal.timeout(30000),
  });
  if (!resp.ok) throw new Error(`tokenserver ${resp.status}: ${(await resp.json()).error}`);
  return resp.json(); // {value, expires_at, expires_at_unix}
}
