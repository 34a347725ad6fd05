<?php
// The credential `wechatconf agent` keeps in $path: ['value' => …, 'expires_at_unix' => …, …].
// Throws without the file, or if it is not a token file or expires within $margin seconds.
function wechat_read_token(string $path = '/run/wechat/access_token.json', int $margin = 60, ?int $now = null): array
{
    $json = @file_get_contents($path);
    if ($json === false) {
        throw new RuntimeException("$path: cannot read the token file");
    }
    $tok = json_decode($json, true);
    if (!is_array($tok) || !is_string($tok['value'] ?? null) || $tok['value'] === '' || !is_int($tok['expires_at_unix'] ?? null)) {
        throw new RuntimeException("$path: not a token file");
    }
    if ($tok['expires_at_unix'] - $margin <= ($now ?? time())) {
        throw new RuntimeException("$path: the token expires within $margin s: is wechatconf agent running?");
    }
    return $tok;
}
