package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The events a Store logs (WithLogger): each is the message of one slog
// record, with the attributes listed, following core's conventions (see
// core.EventFetched): names and attributes change only with a new major
// version, and no attribute holds a credential.
const (
	// EventDurabilityRisk (Warn): the Redis server this Store writes
	// durable state to (a token with a zero ExpiresAt: an Open Platform
	// authorizer's refresh token) may lose it: its maxmemory-policy is
	// allkeys-* (allkeys-lru, allkeys-lfu, allkeys-random), which evicts
	// keys without a TTL once memory is full, or it persists nothing (save
	// is empty and appendonly is no), so a restart loses every key. Logged
	// at most once per Store, after its first durable write, to the
	// Store's logger (WithLogger); Store.CheckDurability asks the same on
	// demand. See "Durable state on a server that forgets" in the package
	// documentation.
	// Attributes: "key" (the store key of the durable write that made the
	// Store ask), "evicts" (bool), "persists_nothing" (bool), "policy"
	// (maxmemory-policy), "save", "appendonly" (as the server reported
	// them), "risk" (what may be lost and what to do, in words), and
	// "addr" (the node's address) on a Cluster or Ring, where every master
	// or shard is asked and the first at risk by address is named.
	EventDurabilityRisk = "wechatconf.durability_risk"
	// EventDurabilityUnchecked (Debug): the server refused the questions
	// of EventDurabilityRisk (CONFIG renamed or disabled, an ACL without
	// config|get, a managed service), so the Store cannot tell whether its
	// durable state is safe there, and does not ask again. Attributes:
	// "key", "error" (the server's reply), and "addr" on a Cluster or
	// Ring.
	EventDurabilityUnchecked = "wechatconf.durability_unchecked"
)

// ErrDurabilityUnknown is returned (wrapped, with the server's own error
// reply) by CheckDurability when the server refuses the questions: CONFIG
// renamed or disabled, an ACL user without config|get, most managed
// services. Whether durable state is safe there cannot be told from the
// client: ask the server's operator (or provider) for its
// maxmemory-policy and persistence.
var ErrDurabilityUnknown = errors.New("redisstore: the server refused CONFIG GET: whether it keeps durable state cannot be told")

// CheckDurability asks the server whether durable state written through s
// (a token with a zero ExpiresAt: an Open Platform authorizer's record)
// is safe there, as the check after the first durable write does
// (EventDurabilityRisk), for a start-up or health check. It returns "" when
// the server keeps keys without a TTL (its maxmemory-policy is noeviction
// or volatile-*, and it persists them: AOF or RDB snapshots); otherwise a
// sentence naming the risk and the fix, the same text as the event's
// "risk" attribute. On a Cluster every master is asked, on a Ring every
// live shard, and the risk is the first node's at risk by address. It
// returns an error wrapping ErrDurabilityUnknown and the server's reply
// when the server refuses CONFIG, and the client's error (wrapped) when a
// node could not be asked at all (a connection error, ctx ending).
//
// It costs one round trip (one per master, in parallel, on a Cluster),
// bounded by ctx and the client's timeouts, at every call. It logs
// nothing and leaves the Store's own check alone: the first durable write
// still asks, and logs EventDurabilityRisk once, whether or not
// CheckDurability was called.
func (s *Store) CheckDurability(ctx context.Context) (risk string, err error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("redisstore: durability check: %w", err)
	}
	answers := s.askDurability(ctx)
	v := judge(answers)
	switch {
	case v.risky != nil:
		return v.risky.risk(), nil
	case !v.answered:
		slices.SortStableFunc(answers, func(a, b nodeAnswer) int { return cmp.Compare(a.cfg.addr, b.cfg.addr) })
		for _, a := range answers {
			if a.err != nil && !isRefusal(a.err) {
				return "", fmt.Errorf("redisstore: durability check%s: %w", atAddr(a.cfg.addr), a.err)
			}
		}
		return "", errors.New("redisstore: durability check: no node to ask")
	case v.refused != nil:
		return "", fmt.Errorf("%w%s: %w", ErrDurabilityUnknown, atAddr(v.refused.cfg.addr), v.refused.err)
	}
	return "", nil
}

// atAddr is " on ADDR" naming a node of a Cluster or Ring, "" for none.
func atAddr(addr string) string {
	if addr == "" {
		return ""
	}
	return " on " + addr
}

// durabilityCheckTimeout bounds the durability check: one round trip (one
// per master, in parallel, on a Cluster) after the first durable write.
const durabilityCheckTimeout = time.Second

// WithLogger sets the logger of the Store's events (EventDurabilityRisk,
// EventDurabilityUnchecked). With none, or nil, records of level Warn and
// above go to slog.Default() (read at each record, so a later
// slog.SetDefault is followed) and the rest are dropped, as core does for a
// Conf built without a Logger.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// serverConfig is what a Redis server says of how it keeps keys without a
// TTL: its reply to CONFIG GET of maxmemory-policy, save and appendonly. A
// parameter the reply lacks (a server that does not know it) is unknown,
// and counts as no risk.
type serverConfig struct {
	addr       string // the node's address, on a Cluster or Ring; "" otherwise
	policy     string
	save       string
	appendonly string

	hasPolicy, hasSave, hasAppendonly bool
}

// parseConfig returns the serverConfig of the merged replies of CONFIG GET
// maxmemory-policy, save and appendonly.
func parseConfig(reply map[string]string) serverConfig {
	var c serverConfig
	c.policy, c.hasPolicy = reply["maxmemory-policy"]
	c.save, c.hasSave = reply["save"]
	c.appendonly, c.hasAppendonly = reply["appendonly"]
	return c
}

// evicts reports whether the server evicts keys that have no TTL: an
// allkeys-* maxmemory-policy. volatile-* policies and noeviction never
// touch them. A server with maxmemory 0 (no limit) evicts nothing yet, but
// the policy applies as soon as a limit is set (CONFIG SET maxmemory, or a
// managed service's default), so it counts.
func (c serverConfig) evicts() bool {
	return c.hasPolicy && strings.HasPrefix(strings.ToLower(strings.TrimSpace(c.policy)), "allkeys-")
}

// persistsNothing reports whether the server writes nothing to disk: no
// RDB snapshot rule (save is empty) and no append-only file.
func (c serverConfig) persistsNothing() bool {
	return c.hasSave && c.hasAppendonly &&
		strings.TrimSpace(c.save) == "" && strings.EqualFold(strings.TrimSpace(c.appendonly), "no")
}

// atRisk reports whether durable state written to the server may be lost.
func (c serverConfig) atRisk() bool { return c.evicts() || c.persistsNothing() }

// risk says, in words, what durable state on the server risks and what to
// do about it; "" if nothing.
func (c serverConfig) risk() string {
	var parts []string
	if c.evicts() {
		parts = append(parts, "maxmemory-policy "+c.policy+" evicts keys that have no TTL once memory is full, durable state "+
			"(refresh tokens) included: set maxmemory-policy to noeviction or a volatile-* policy")
	}
	if c.persistsNothing() {
		parts = append(parts, `the server persists nothing (save "", appendonly no), so a restart loses every key, durable state `+
			"(refresh tokens) included: enable AOF (appendonly yes) or RDB snapshots (save)")
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ") + "; or keep durable state on another store"
}

// attrs are the attributes of EventDurabilityRisk for a durable write of
// key.
func (c serverConfig) attrs(key string) []slog.Attr {
	a := []slog.Attr{
		slog.String("key", key),
		slog.Bool("evicts", c.evicts()),
		slog.Bool("persists_nothing", c.persistsNothing()),
		slog.String("policy", c.policy),
		slog.String("save", c.save),
		slog.String("appendonly", c.appendonly),
		slog.String("risk", c.risk()),
	}
	if c.addr != "" {
		a = append(a, slog.String("addr", c.addr))
	}
	return a
}

// nodeAnswer is one node's answer to the durability check.
type nodeAnswer struct {
	cfg serverConfig
	err error // the node's error; a redis.Error is a refusal, anything else no answer
}

// durabilityVerdict is what the answers of the nodes asked say.
type durabilityVerdict struct {
	risky    *serverConfig // the first node at risk, by address; nil if none
	refused  *nodeAnswer   // the first node that refused, by address; nil if none
	answered bool          // every node answered (a reply or a refusal): never ask again
}

// judge returns the verdict of the answers (in any order).
func judge(answers []nodeAnswer) durabilityVerdict {
	answers = slices.Clone(answers)
	slices.SortStableFunc(answers, func(a, b nodeAnswer) int { return cmp.Compare(a.cfg.addr, b.cfg.addr) })
	v := durabilityVerdict{answered: len(answers) > 0}
	for i := range answers {
		a := &answers[i]
		switch {
		case a.err != nil && isRefusal(a.err):
			if v.refused == nil {
				v.refused = a
			}
		case a.err != nil:
			v.answered = false
		case v.risky == nil && a.cfg.atRisk():
			v.risky = &a.cfg
		}
	}
	if v.risky != nil {
		v.answered = true // nothing more to learn: the event is logged
	}
	return v
}

// isRefusal reports whether err is the server's own error reply (CONFIG
// unknown or renamed, NOPERM, …) rather than a failure to get one.
func isRefusal(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && !errors.Is(err, redis.Nil)
}

// checkOnce guards the durability check: at most one runs at a time, and
// none after one answered. A check that got no answer (a network error, a
// timeout) lets a later durable write try again.
type checkOnce struct {
	done atomic.Bool // a check answered
	busy atomic.Bool // a check is running
}

// do runs check unless a check answered or is running; check reports
// whether it answered.
func (o *checkOnce) do(check func() (answered bool)) {
	if o.done.Load() || !o.busy.CompareAndSwap(false, true) {
		return
	}
	defer o.busy.Store(false)
	if o.done.Load() { // answered between the two loads
		return
	}
	if check() {
		o.done.Store(true) // before busy is released
	}
}

// durableWritten is called after a durable write of key succeeded: the
// first time (until a check answers), it asks the server whether durable
// state is safe there and logs EventDurabilityRisk if not. It never fails:
// it costs the caller one round trip, once, bounded by
// durabilityCheckTimeout and ctx.
func (s *Store) durableWritten(ctx context.Context, key string) {
	s.durability.do(func() bool {
		cctx, cancel := context.WithTimeout(ctx, durabilityCheckTimeout)
		defer cancel()
		v := judge(s.askDurability(cctx))
		switch {
		case v.risky != nil:
			s.logger.LogAttrs(context.Background(), slog.LevelWarn, EventDurabilityRisk, v.risky.attrs(key)...)
		case v.answered && v.refused != nil:
			attrs := []slog.Attr{slog.String("key", key), slog.String("error", v.refused.err.Error())}
			if v.refused.cfg.addr != "" {
				attrs = append(attrs, slog.String("addr", v.refused.cfg.addr))
			}
			s.logger.LogAttrs(context.Background(), slog.LevelDebug, EventDurabilityUnchecked, attrs...)
		}
		return v.answered
	})
}

// askDurability asks the nodes durable state is written to for their
// configuration: every master of a Cluster, every live shard of a Ring,
// and otherwise the one server the client talks to (a Sentinel-backed
// client's master).
func (s *Store) askDurability(ctx context.Context) []nodeAnswer {
	var (
		mu      sync.Mutex
		answers []nodeAnswer
	)
	each := func(ctx context.Context, c *redis.Client) error {
		cfg, err := configOf(ctx, c)
		cfg.addr = c.Options().Addr
		mu.Lock()
		answers = append(answers, nodeAnswer{cfg: cfg, err: err})
		mu.Unlock()
		return nil
	}
	var err error
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, each)
	case *redis.Ring:
		err = c.ForEachShard(ctx, each)
	default: // *redis.Client (standalone or Sentinel-backed), or another implementation
		var cfg serverConfig
		cfg, err = configOf(ctx, c)
		return []nodeAnswer{{cfg: cfg, err: err}}
	}
	if err != nil { // the nodes could not be listed
		answers = append(answers, nodeAnswer{err: err})
	}
	return answers
}

// configOf asks c for maxmemory-policy, save and appendonly in one round
// trip (three CONFIG GETs in a pipeline: CONFIG GET of several parameters
// needs Redis 7).
func configOf(ctx context.Context, c redis.Cmdable) (serverConfig, error) {
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, param := range []string{"maxmemory-policy", "save", "appendonly"} {
			p.ConfigGet(ctx, param)
		}
		return nil
	})
	if err != nil {
		return serverConfig{}, err
	}
	reply := map[string]string{}
	for _, cmd := range cmds {
		if m, ok := cmd.(*redis.MapStringStringCmd); ok {
			for k, v := range m.Val() {
				reply[strings.ToLower(k)] = v
			}
		}
	}
	return parseConfig(reply), nil
}
