package containers

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRedisSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the sentinel failover in -short mode")
	}
	rs := StartRedisSentinel(t)
	if len(rs.Replicas) != RedisSentinelReplicas || len(rs.SentinelAddrs) != RedisSentinels {
		t.Fatalf("%d replicas, %d sentinels", len(rs.Replicas), len(rs.SentinelAddrs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if addr, err := rs.MasterAddr(ctx); err != nil || addr != rs.Master.Addr {
		t.Fatalf("sentinels name master %q (%v), want %s", addr, err, rs.Master.Addr)
	}

	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    rs.MasterName,
		SentinelAddrs: rs.SentinelAddrs,
		DialTimeout:   time.Second,
		ReadTimeout:   time.Second,
		WriteTimeout:  time.Second,
	})
	defer rdb.Close()
	if err := rdb.Set(ctx, "conformance:before", "1", 0).Err(); err != nil {
		t.Fatalf("SET before failover: %v", err)
	}
	// WAIT: the key reached both replicas, so it survives the failover.
	if n, err := rdb.Wait(ctx, RedisSentinelReplicas, 5000).Result(); err != nil || n != RedisSentinelReplicas {
		t.Fatalf("WAIT = %d, %v", n, err)
	}

	killed := time.Now()
	Kill(t, rs.Master.Container)
	newAddr := rs.WaitFailover(t, rs.Master.Addr, 30*time.Second)
	t.Logf("sentinels promoted %s %v after the kill", newAddr, time.Since(killed).Round(time.Millisecond))
	if !slices.ContainsFunc(rs.Replicas, func(r *Redis) bool { return r.Addr == newAddr }) || rs.Node(newAddr) == nil {
		t.Fatalf("new master %s is not one of the replicas", newAddr)
	}

	// The failover client follows: writes succeed again on the new master.
	var i int
	for {
		i++
		err := rdb.Set(ctx, "conformance:after", strconv.Itoa(i), 0).Err()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("FailoverClient never wrote after the failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("FailoverClient wrote again %v after the kill (%d attempts)", time.Since(killed).Round(time.Millisecond), i)
	if got, err := rdb.Get(ctx, "conformance:before").Result(); err != nil || got != "1" {
		t.Fatalf("GET conformance:before after failover = %q, %v", got, err)
	}
	role, err := redis.NewClient(&redis.Options{Addr: newAddr}).Do(ctx, "ROLE").Slice()
	if err != nil || len(role) == 0 || role[0] != "master" {
		t.Fatalf("ROLE on %s = %v, %v", newAddr, role, err)
	}
	if err := rdb.Get(ctx, "conformance:missing").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET missing: %v", err)
	}
}
