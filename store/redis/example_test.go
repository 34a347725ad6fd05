package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/core"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// A fleet shares one Redis: every instance builds its Conf over a Store on
// the client it already has, and one fetch serves them all.
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{
		Addr:                  "localhost:6379",
		ContextTimeoutEnabled: true, // let ctx deadlines bound each command
	})
	defer rdb.Close() // the Store never closes it

	store, err := redisstore.New(rdb,
		redisstore.WithPrefix("myapp:wechat:"),
		redisstore.WithLease(10*time.Second), // the longest a fetch may take
	)
	if err != nil {
		log.Fatal(err)
	}
	conf, err := core.New(core.Config{AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("app-secret"), Store: store})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tok, err := conf.AccessToken(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("access_token expires at", tok.ExpiresAt)
}

// On a Redis Cluster the same Store works unchanged: each key's token,
// lock and channel share a hash tag, so its scripts run on one slot.
func ExampleNew_cluster() {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
		ContextTimeoutEnabled: true,
	})
	defer rdb.Close()
	store, err := redisstore.New(rdb)
	if err != nil {
		log.Fatal(err)
	}
	_ = store // core.Config{Store: store, …}
}

// Behind Sentinel, a failover client follows the master, so the lock and
// the fenced write always reach it.
func ExampleNew_sentinel() {
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            "mymaster",
		SentinelAddrs:         []string{"sentinel-1:26379", "sentinel-2:26379", "sentinel-3:26379"},
		ContextTimeoutEnabled: true,
	})
	defer rdb.Close()
	store, err := redisstore.New(rdb)
	if err != nil {
		log.Fatal(err)
	}
	_ = store
}

// At start-up (or in a health check), ask whether the server keeps
// durable state — an Open Platform authorizer's record — before the first
// durable write would log EventDurabilityRisk.
func ExampleStore_CheckDurability() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer rdb.Close()
	store, err := redisstore.New(rdb)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	risk, err := store.CheckDurability(ctx)
	switch {
	case errors.Is(err, redisstore.ErrDurabilityUnknown):
		log.Printf("cannot tell whether Redis keeps refresh tokens (CONFIG refused): check its maxmemory-policy and persistence: %v", err)
	case err != nil:
		log.Printf("Redis did not answer: %v", err)
	case risk != "":
		log.Printf("Redis may lose refresh tokens: %s", risk)
	}
}

// A push handled once across the fleet: the instance whose Claim gets its
// own value back handles it, the others answer WeChat at once; the holder
// marks it done for the rest of WeChat's retry window, or releases it when
// its handler fails so that the next retry is handled. (core's
// de-duplication does this for you; this is what it asks of the Store.)
func ExampleStore_Claim() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer rdb.Close()
	store, err := redisstore.New(rdb)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	key, me := "push/wx0123456789abcdef/msg/23857602386", "handling:instance-7"
	held, err := store.Claim(ctx, key, me, 30*time.Second) // one SET NX PX GET
	switch {
	case err != nil:
		log.Printf("store down: handle anyway (fail open) or refuse: %v", err)
		return
	case held != me:
		return // another instance has it (held says who): answer "success"
	}
	if err := handle(ctx); err != nil {
		// Release, so that WeChat's next retry is handled.
		_, _ = store.CompareAndSwapClaim(ctx, key, me, "", 0)
		return
	}
	// Done: keep the key claimed through WeChat's retries.
	if ok, err := store.CompareAndSwapClaim(ctx, key, me, "done", time.Minute); err != nil || !ok {
		log.Printf("claim lost before it was marked done (%v): a retry may be handled again", err)
	}
}

func handle(context.Context) error { return nil }
