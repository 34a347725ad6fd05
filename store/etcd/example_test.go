package etcdstore_test

import (
	"context"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wechatconf/wechatconf/core"
	etcdstore "github.com/wechatconf/wechatconf/store/etcd"
)

// A fleet of instances shares WeChat credentials through etcd: every
// instance builds the same Store over its own client, and whichever asks
// first refreshes the token for all of them.
func ExampleNew() {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{"http://etcd-0:2379", "http://etcd-1:2379", "http://etcd-2:2379"},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close() // the store never closes it

	store, err := etcdstore.New(cli,
		etcdstore.WithPrefix("myapp/wechat/"),
		etcdstore.WithLease(10*time.Second), // the longest a refresh may hold the lock
	)
	if err != nil {
		log.Fatal(err)
	}
	conf, err := core.New(core.Config{AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("secret"), Store: store})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := conf.AccessToken(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("access_token valid until %v", tok.ExpiresAt)
}

// Claims de-duplicate work across the fleet: the first Claim of a key wins,
// every other instance gets the winner's value back until the claim's
// lease runs out or its holder releases it. core.Dedup does this for
// WeChat's pushes; this is the store call underneath.
func ExampleStore_Claim() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://etcd-0:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	store, err := etcdstore.New(cli, etcdstore.WithPrefix("myapp/wechat/"))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	const key, me = "push/msg-1234567890", "instance-3/req-81"
	held, err := store.Claim(ctx, key, me, 30*time.Second) // on a lease of 31s
	if err != nil {
		log.Fatal(err) // the claim may or may not have been made: Claim again with me to know
	}
	if held != me {
		log.Printf("%s is being handled by %s", key, held)
		return
	}
	// … handle the push, then release the claim (or swap it for a longer-lived "done" marker).
	if _, err := store.CompareAndSwapClaim(ctx, key, me, "", 0); err != nil {
		log.Print(err) // the claim runs out with its lease anyway
	}
}
