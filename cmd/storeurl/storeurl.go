// Package storeurl opens the token store a URL names, so that a command
// (cmd/wechatconf-tokenserver, cmd/wechatconf) picks its store from one
// flag or environment variable and two processes over one shared store
// need no source edit. It accepts the forms a team already writes for
// go-redis, pgx and etcd:
//
//	memory:                                   core's in-process memory store (one process only)
//	file:///var/lib/wechatconf                store/file over that directory (one machine)
//	redis://[user:password@]host:6379/0       store/redis, one server (go-redis ParseURL); rediss:// for TLS
//	redis://h1:6379,h2:6379,h3:6379           Redis Cluster (go-redis ParseClusterURL); also redis://h1:6379?addr=h2:6379&addr=h3:6379
//	redis://h1:6379?cluster=true              Redis Cluster through one seed (a configuration endpoint)
//	redis://s1:26379,s2:26379/0?master_name=M Redis Sentinel (go-redis ParseFailoverURL); also ?addr=s2:26379
//	postgres://user:password@host:5432/db     store/postgres (postgresql:// too; pgx's and libpq's URL: host lists, ?password=, ?sslmode=…)
//	host=db port=5432 dbname=db user=u        the same as a libpq keyword/value DSN (pgx accepts both); quote a value with spaces: password='a b'
//	etcd://[user:password@]host:2379[,host:2379…]  store/etcd over that endpoint list
//
// Which Redis client a URL gets follows go-redis's NewUniversalClient:
// ?master_name= selects Sentinel (the hosts and addr= are the sentinels;
// the userinfo is the sentinels' credentials and ?username=&password= the
// data nodes', as go-redis reads them); two or more addresses (a
// comma-separated host list, our shorthand for go-redis's addr=), or our
// ?cluster=true, select Cluster (database 0 only; master_name and
// cluster=true exclude each other); anything else is one server. A host
// without a port gets 6379 (go-redis's default, for sentinels too). Every
// other query parameter is go-redis's, checked by its parser (an unknown
// one is an error). redis:// and etcd:// take ?prefix=… for the key prefix
// (default "wechatconf:" and "wechatconf/"), removed before go-redis sees
// the URL.
//
// A password may sit in a URL's userinfo, in a query parameter (pgx's
// password= and sslpassword=, go-redis Sentinel's password=) or in a
// keyword (password=, sslpassword=); in a URL it must be percent-encoded
// where URLs require it (libpq does not read '+' as a space: write %20).
// It is never printed: String, every parse error and every open error show
// the URL with each password replaced by xxxxx (a query parameter or
// keyword whose name holds "password", "passwd" or "secret" is masked
// too), and an error that cannot tell where a password ends (a malformed
// URL or keyword DSN, a URL written without the two slashes before its
// userinfo: redis:app:pw@host) quotes none of it. A PostgreSQL URL with an
// unencoded '@' in its password, or a '@' in a query value of a URL without
// a path, is refused: pgx (as libpq) would read the rest of the password as
// the host and show it in its connection errors. Passwords belong in the
// environment, not in a command-line flag, which other users can read in
// the process list: Spec.HasPassword reports a password in any of these
// places, so that a command refuses it there.
package storeurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
	"github.com/wechatconf/wechatconf/core"
	etcdstore "github.com/wechatconf/wechatconf/store/etcd"
	filestore "github.com/wechatconf/wechatconf/store/file"
	pgstore "github.com/wechatconf/wechatconf/store/postgres"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Kind is the kind of store a URL names.
type Kind string

// The kinds of store, one per URL scheme (rediss is Redis; postgresql and
// a keyword/value DSN are Postgres).
const (
	Memory   Kind = "memory"
	File     Kind = "file"
	Redis    Kind = "redis"
	Postgres Kind = "postgres"
	Etcd     Kind = "etcd"
)

// Schemes is the list of accepted forms, for help texts.
const Schemes = "memory:, file:///dir, redis://host:6379/0 (rediss://; host1,host2 or ?cluster=true: Cluster; ?master_name=M: Sentinel), " +
	"postgres://user@host/db (postgresql://, or host=… dbname=… user=…), etcd://host:2379[,host:2379]"

// Spec is a parsed store URL. Build one with Parse.
type Spec struct {
	// Kind is the store kind.
	Kind Kind
	// Dir is the directory of a file store.
	Dir string
	// Endpoints are the etcd endpoints (http://host:port).
	Endpoints []string
	// Prefix is the key prefix of a Redis or etcd store ("" for the
	// store's default).
	Prefix string
	// Topology is how a Redis URL reaches Redis; "" for another kind.
	Topology Topology
	// Addrs are the host:port addresses a Redis or PostgreSQL URL names, in
	// order: the Redis server, the sentinels (Topology Sentinel) or the
	// cluster's seed nodes (Topology Cluster); the PostgreSQL hosts (pgx
	// tries them in turn).
	Addrs []string
	// MasterName is the Sentinel master's name (?master_name=).
	MasterName string
	// DB is the Redis database number (0 for a Cluster).
	DB int
	// Database is the PostgreSQL database name ("" for pgx's default).
	Database string

	redacted string // the URL with its passwords replaced
	// The passwords the URL holds, decoded and as written, behind a
	// pointer (and etcdPass in a core.Secret) so that fmt's reflection into
	// a struct keeping a Spec in an unexported field prints an address.
	secrets  *[]string
	redis    *goredis.Options
	failover *goredis.FailoverOptions
	cluster  *goredis.ClusterOptions
	pg       *pgxpool.Config
	etcdUser string
	etcdPass core.Secret
}

// String returns the URL with every password (userinfo, query parameter,
// keyword value) replaced by "xxxxx".
func (s Spec) String() string { return s.redacted }

// GoString returns the URL redacted, as String does, so that %#v (which
// would otherwise print the parsed options, passwords included) shows no
// password either.
func (s Spec) GoString() string { return "storeurl.Spec(" + strconv.Quote(s.redacted) + ")" }

// HasPassword reports whether the URL holds a password in any form: in its
// userinfo, in a query parameter (password=, sslpassword=, or any other
// whose name holds "password", "passwd" or "secret"), or as a keyword of a
// keyword/value DSN (password=…, sslpassword=…). A command refuses such a
// URL in a command-line flag.
func (s Spec) HasPassword() bool { return len(s.secretList()) > 0 }

// Redact returns text with every password the URL holds removed, in each
// form Parse knows (decoded, as written, percent-encoded), for text that a
// client library wrote about this store (a log line, an error) before it
// is printed.
func (s Spec) Redact(text string) string { return scrub(text, s.secretList()) }

// secretList returns the passwords the URL holds.
func (s Spec) secretList() []string {
	if s.secrets == nil {
		return nil
	}
	return *s.secrets
}

// Parse checks a store URL and returns what it names, doing no I/O. Its
// errors show the URL redacted and say what a good one looks like; they
// quote nothing of a keyword/value DSN they cannot split into pairs.
func Parse(raw string) (Spec, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return Spec{}, fmt.Errorf("storeurl: empty store URL: want one of %s", Schemes)
	}
	var s Spec
	bad := func(err error) (Spec, error) {
		return Spec{}, fmt.Errorf("storeurl: %s: %s", s.redacted, scrub(err.Error(), s.secretList()))
	}
	switch {
	case pgKeywordStart.MatchString(raw):
		if err := parsePostgres(&s, raw, true); err != nil {
			return bad(err)
		}
		return s, nil
	case strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://"):
		if err := parsePostgres(&s, raw, false); err != nil {
			return bad(err)
		}
		return s, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, and its inner error may quote a
		// piece of it (a bad escape, a "port" that is half a password).
		return Spec{}, fmt.Errorf("storeurl: not a URL: want one of %s; "+
			"percent-encode @ : / ? # %% and spaces in a user name or password", Schemes)
	}
	var secrets []string
	s.redacted, secrets = redactURL(u)
	s.secrets = &secrets
	if u.Host == "" && u.User == nil &&
		(strings.Contains(u.Opaque, "@") || (u.Scheme != "file" && strings.Contains(u.Path, "@"))) {
		// No "//host": a "user:password@host" written without its two
		// slashes (redis:app:pw@host, redis:///app:pw@host, app:pw@host)
		// is an opaque part or a path, where no password is recognised.
		// Every such URL is refused below; its error quotes none of it.
		s.redacted = u.Scheme + ":" + mask
	}
	badf := func(format string, a ...any) (Spec, error) { return bad(fmt.Errorf(format, a...)) }
	switch u.Scheme {
	case "memory":
		if u.Opaque != "" || u.Host != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return badf("a memory store takes no host, path or options: write memory:")
		}
		s.Kind = Memory
	case "file":
		switch {
		case u.Opaque != "":
			return badf("the directory must be absolute: write file:///var/lib/wechatconf (three slashes)")
		case u.Host != "" && u.Host != "localhost":
			return badf("a file store is local: write file:///dir, not file://%s/…", u.Hostname())
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			return badf("a file store takes no user, options or fragment")
		case u.Path == "" || u.Path == "/":
			return badf("no directory: write file:///var/lib/wechatconf")
		}
		s.Kind, s.Dir = File, path.Clean(u.Path)
	case "redis", "rediss":
		if err := parseRedis(&s, u); err != nil {
			return bad(err)
		}
	case "postgres", "postgresql":
		return badf("write %s://user@host:5432/dbname (two slashes), or a keyword/value DSN: host=… dbname=… user=…", u.Scheme)
	case "etcd":
		if u.Host == "" {
			return badf("no endpoint: write etcd://host:2379 or etcd://host1:2379,host2:2379")
		}
		if u.Path != "" && u.Path != "/" {
			return badf("an etcd URL has no path: give the key prefix as ?prefix=…")
		}
		q := u.Query()
		s.Prefix = q.Get("prefix")
		q.Del("prefix")
		if len(q) > 0 {
			return badf("unknown option(s) %q: etcd:// takes only ?prefix=", keys(q))
		}
		for h := range strings.SplitSeq(u.Host, ",") {
			if h == "" || strings.HasPrefix(h, ":") || !strings.Contains(h, ":") {
				return badf("endpoint %q: want host:port, e.g. etcd://host:2379", h)
			}
			s.Endpoints = append(s.Endpoints, "http://"+h)
		}
		if u.User != nil {
			s.etcdUser, s.etcdPass = u.User.Username(), core.Secret{}
			if pw, ok := u.User.Password(); ok {
				s.etcdPass = core.NewSecret(pw)
			}
		}
		s.Kind = Etcd
	case "":
		return badf("no scheme: want one of %s", Schemes)
	default:
		return badf("unknown scheme %q: want one of %s", u.Scheme, Schemes)
	}
	return s, nil
}

func keys(q url.Values) []string {
	var ks []string
	for k := range q {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Open parses raw and opens the store; see Spec.Open.
func Open(ctx context.Context, raw string) (core.TokenStore, func() error, error) {
	s, err := Parse(raw)
	if err != nil {
		return nil, nil, err
	}
	return s.Open(ctx)
}

// Open connects to the store s names and returns it with the function that
// closes the client Open made (call it after the last use of the store). ctx
// bounds the connecting: Open pings Redis, PostgreSQL and etcd so that a
// wrong address or password fails here rather than at the first request.
func (s Spec) Open(ctx context.Context) (core.TokenStore, func() error, error) {
	nop := func() error { return nil }
	fail := func(err error) (core.TokenStore, func() error, error) {
		return nil, nil, fmt.Errorf("storeurl: opening %s: %s", s.redacted, scrub(err.Error(), s.secretList()))
	}
	switch s.Kind {
	case Memory:
		return core.NewMemoryStore(), nop, nil
	case File:
		st, err := filestore.New(s.Dir)
		if err != nil {
			return fail(err)
		}
		return st, nop, nil
	case Redis:
		client := s.NewRedisClient()
		if err := client.Ping(ctx).Err(); err != nil {
			client.Close()
			return fail(err)
		}
		var opts []redisstore.Option
		if s.Prefix != "" {
			opts = append(opts, redisstore.WithPrefix(s.Prefix))
		}
		st, err := redisstore.New(client, opts...)
		if err != nil {
			client.Close()
			return fail(err)
		}
		return st, client.Close, nil
	case Postgres:
		pool, err := pgxpool.NewWithConfig(ctx, s.pg)
		if err != nil {
			return fail(err)
		}
		st, err := pgstore.New(ctx, pool)
		if err != nil {
			pool.Close()
			return fail(err)
		}
		return st, func() error { pool.Close(); return nil }, nil
	case Etcd:
		dial := 10 * time.Second
		if d, ok := ctx.Deadline(); ok && time.Until(d) < dial {
			dial = max(time.Until(d), time.Millisecond)
		}
		client, err := clientv3.New(clientv3.Config{
			Endpoints: s.Endpoints, Username: s.etcdUser, Password: s.etcdPass.Reveal(),
			DialTimeout: dial, Context: context.WithoutCancel(ctx),
			Logger: zap.NewNop(), // its errors reach the caller; its retries are noise
		})
		if err != nil {
			return fail(err)
		}
		if _, err := client.Get(ctx, "wechatconf-storeurl-ping"); err != nil {
			client.Close()
			return fail(err)
		}
		var opts []etcdstore.Option
		if s.Prefix != "" {
			opts = append(opts, etcdstore.WithPrefix(s.Prefix))
		}
		st, err := etcdstore.New(client, opts...)
		if err != nil {
			client.Close()
			return fail(err)
		}
		return st, client.Close, nil
	}
	return nil, nil, errors.New("storeurl: Open of a Spec not made by Parse")
}
