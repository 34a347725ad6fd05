package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	etcdstore "github.com/wechatconf/wechatconf/store/etcd"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// The not-found hint. A fleet whose store has a prefix of its own (a
// Redis store's "myapp:", the URL's ?prefix=) or whose Conf has another
// KeyPrefix (--prefix) looks empty to a command given the defaults, and
// two prefixes invite the mistake. So an exit 3 says where the command
// looked — the store, the store's prefix, the key prefix, the full keys —
// and what it found nearby:
//
//   - the keys of the same account under any key prefix, read with
//     core.KeyLister when the store implements it (the whole store is
//     listed: ListKeys walks it in batches, bounded by --timeout), with
//     the --prefix to try;
//   - on Redis (one server, Sentinel or Cluster), the other store
//     prefixes the server holds credentials under, from at most
//     maxScanBatches SCAN batches of the token hashes' names (per master
//     on a Cluster), and whether the keys looked for are under one of them
//     (one HMGET per key and prefix), with the ?prefix= to try.

// maxHintKeys bounds the keys a hint prints.
const maxHintKeys = 10

// maxScanBatches bounds the SCAN calls of the Redis hint (of scanCount
// names each): about 20,000 names, a few milliseconds of the server's
// time, keep the hint cheap on a large Redis.
const (
	maxScanBatches = 20
	scanCount      = 1000
)

// needle is what the hint looks for among the store's keys: the keys of
// the account (or of the raw key's path) the command looked for.
type needle struct {
	what  string
	match func(key string) bool
}

// lookFor returns the needle of key, a key the command did not find.
func lookFor(key string) needle {
	info := ParseKey(key)
	contains := func(what, s string) needle {
		return needle{what, func(k string) bool { return strings.Contains(k, s) }}
	}
	switch info.Platform {
	case PlatformOfficialAccount, PlatformOpenAuthorizer:
		return contains("AppID "+info.AppID, "/"+info.AppID+"/")
	case PlatformWeCom:
		return contains("WeCom corp "+info.CorpID, "/wecom/"+info.CorpID+"/")
	case PlatformOpenComponent:
		return contains("component "+info.ComponentAppID, "/open/"+info.ComponentAppID+"/")
	case PlatformWeComSuite:
		return contains("suite "+info.SuiteID, "/"+info.SuiteID+"/")
	case PlatformWeComAuthCorp:
		return contains("corp "+info.CorpID, "/"+info.CorpID+"/")
	case PlatformWeComProvider:
		return contains("provider "+info.CorpID, "/wecomvendor/provider/"+info.CorpID+"/")
	}
	if _, rest, ok := strings.Cut(key, "/"); ok && rest != "" {
		return needle{"…/" + rest, func(k string) bool { return strings.HasSuffix(k, "/"+rest) }}
	}
	return contains(key, key)
}

// notFound returns the exit-3 error of a command that found none of keys:
// head, then where it looked and what it found nearby.
func (e *env) notFound(ctx context.Context, st core.TokenStore, keys []string, head string) error {
	var b strings.Builder
	b.WriteString(head)
	fmt.Fprintf(&b, "\n  looked in: store %s%s, key prefix %q (--prefix)", e.spec, storePrefixText(e.spec), e.g.prefix)
	if len(keys) == 1 {
		fmt.Fprintf(&b, ", key %s", keys[0])
	} else {
		fmt.Fprintf(&b, ", keys %s", strings.Join(keys, ", "))
	}
	if ctx.Err() != nil {
		return exitCodeError{ExitNotFound, errors.New(b.String())}
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	n := lookFor(keys[0])
	if kl, ok := st.(core.KeyLister); ok {
		all, err := kl.ListKeys(ctx, "")
		if err != nil {
			fmt.Fprintf(&b, "\n  nearby: the store's keys could not be listed: %v", err)
		} else {
			writeNearby(&b, e.g.prefix, n, all, keys)
		}
	} else {
		b.WriteString("\n  nearby: not searched: this store cannot list its keys (its TokenStore does not implement core.KeyLister)")
	}
	for _, line := range e.otherStorePrefixes(ctx, keys) {
		b.WriteString("\n  " + line)
	}
	return exitCodeError{ExitNotFound, errors.New(b.String())}
}

// writeNearby writes the keys of all that n matches, but those looked for,
// and the key prefixes to try.
func writeNearby(b *strings.Builder, prefix string, n needle, all, looked []string) {
	var hits []string
	for _, k := range all {
		if n.match(k) && !slices.Contains(looked, k) {
			hits = append(hits, k)
		}
	}
	if len(hits) == 0 {
		fmt.Fprintf(b, "\n  nearby: no key of %s under any key prefix (%d keys in the store)", n.what, len(all))
		return
	}
	fmt.Fprintf(b, "\n  nearby: %d key(s) of %s:", len(hits), n.what)
	for i, k := range hits {
		if i == maxHintKeys {
			fmt.Fprintf(b, "\n    … and %d more (wechatconf ls --all-prefixes)", len(hits)-i)
			break
		}
		b.WriteString("\n    " + k)
	}
	var try []string
	for _, k := range hits {
		if p := ParseKey(k).Prefix; p != "" && p != prefix && !slices.Contains(try, p) {
			try = append(try, p)
		}
	}
	for _, p := range try {
		fmt.Fprintf(b, "\n  try: --prefix %s", p)
	}
}

// storePrefixText says which prefix the store puts before every key, for
// the stores that have one.
func storePrefixText(spec storeurl.Spec) string {
	var def string
	switch spec.Kind {
	case storeurl.Redis:
		def = redisstore.DefaultPrefix
	case storeurl.Etcd:
		def = etcdstore.DefaultPrefix
	default:
		return ""
	}
	if spec.Prefix == "" {
		return fmt.Sprintf(", store prefix %q (the default; the URL's ?prefix= sets it)", def)
	}
	return fmt.Sprintf(", store prefix %q (the URL's ?prefix=)", spec.Prefix)
}

// otherStorePrefixes returns, on Redis, the lines saying under which other
// store prefixes the server holds credentials, and which of keys are under
// one of them; nil for another store. On a Cluster every master is
// scanned, each within the same budget.
func (e *env) otherStorePrefixes(ctx context.Context, keys []string) []string {
	client := e.spec.NewRedisClient()
	if client == nil {
		return nil
	}
	defer client.Close()
	own := e.spec.Prefix
	if own == "" {
		own = redisstore.DefaultPrefix
	}
	found, truncated, err := scanStorePrefixes(ctx, client, own)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return []string{fmt.Sprintf("other store prefixes: not searched: SCAN failed: %v", err)}
	}
	scanned := "this Redis"
	if truncated {
		scanned = fmt.Sprintf("the first %d SCAN batches of this Redis", maxScanBatches)
	}
	if len(found) == 0 {
		return []string{fmt.Sprintf("other store prefixes: none in %s", scanned)}
	}
	prefixes := make([]string, 0, len(found))
	for p := range found {
		prefixes = append(prefixes, p)
	}
	sort.Slice(prefixes, func(i, j int) bool {
		return found[prefixes[i]] > found[prefixes[j]] || found[prefixes[i]] == found[prefixes[j]] && prefixes[i] < prefixes[j]
	})
	if len(prefixes) > maxHintKeys {
		prefixes = prefixes[:maxHintKeys]
	}
	var lines []string
	for _, p := range prefixes {
		st, err := redisstore.New(client, redisstore.WithPrefix(p))
		if err != nil {
			continue
		}
		for _, k := range keys {
			if _, err := st.Get(ctx, k); err == nil {
				lines = append(lines, fmt.Sprintf("found: %s is in this Redis under store prefix %q: %s", k, p, prefixAdvice(p)))
			}
		}
	}
	if len(lines) > 0 {
		return lines
	}
	var list []string
	for _, p := range prefixes {
		list = append(list, fmt.Sprintf("%q (%d)", p, found[p]))
	}
	tail := " (?prefix= in the store URL picks one)"
	if len(keys) > 0 {
		tail = "; none holds the key(s) looked for" + tail
	}
	return []string{fmt.Sprintf("other store prefixes in %s, with their credentials: %s%s", scanned, strings.Join(list, ", "), tail)}
}

// scanStorePrefixes returns the store prefixes other than own under which
// the Redis server of client holds token hashes, with how many each, from
// at most maxScanBatches SCAN batches per master (truncated says the
// budget ran out); errors.ErrUnsupported for a client of another type than
// a *goredis.Client or *goredis.ClusterClient.
func scanStorePrefixes(ctx context.Context, client goredis.UniversalClient, own string) (found map[string]int, truncated bool, err error) {
	var mu sync.Mutex
	found = map[string]int{} // prefix → token hashes seen
	scan := func(ctx context.Context, node *goredis.Client) error {
		var cursor uint64
		for range maxScanBatches {
			names, next, err := node.Scan(ctx, cursor, "*}:token", scanCount).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			for _, n := range names {
				if p, ok := tokenPrefix(n); ok && p != own {
					found[p]++
				}
			}
			mu.Unlock()
			if cursor = next; cursor == 0 {
				return nil
			}
		}
		mu.Lock()
		truncated = true
		mu.Unlock()
		return nil
	}
	switch c := client.(type) {
	case *goredis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *goredis.Client:
		err = scan(ctx, c)
	default:
		err = errors.ErrUnsupported // no topology to scan
	}
	return found, truncated, err
}

// prefixAdvice says how to name the Redis store prefix p in the URL.
func prefixAdvice(p string) string {
	if p == redisstore.DefaultPrefix {
		return "drop ?prefix= from the store URL (this is the default)"
	}
	q := p
	if strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/") != "" {
		q = url.QueryEscape(p) // a prefix needing escapes; a plain one is shown as it is
	}
	return "add ?prefix=" + q + " to the store URL"
}

// tokenPrefix returns the store prefix of n, the name of a Redis store's
// token hash (PREFIX{32 hex digits}:token, store/redis's layout).
func tokenPrefix(n string) (string, bool) {
	const tail = len("{") + 32 + len("}:token")
	if len(n) < tail {
		return "", false
	}
	t := n[len(n)-tail:]
	if t[0] != '{' || t[33:] != "}:token" {
		return "", false
	}
	for _, c := range t[1:33] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	return n[:len(n)-tail], true
}
