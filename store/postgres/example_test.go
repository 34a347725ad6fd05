package pgstore_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wechatconf/wechatconf/core"
	pgstore "github.com/wechatconf/wechatconf/store/postgres"
)

// Every instance of the fleet builds its Conf over the same database: the
// access token is fetched by one of them and shared by all.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close() // the store never closes the pool

	store, err := pgstore.New(ctx, pool, pgstore.WithLease(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	conf, err := core.New(core.Config{
		AppID:     os.Getenv("WECHAT_APPID"),
		AppSecret: core.NewSecret(os.Getenv("WECHAT_APPSECRET")),
		Store:     store,
	})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := conf.AccessToken(ctx)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("access token valid until %v", tok.ExpiresAt)
}

// A team that manages its schema with migrations creates the table itself
// (with the DDL of the package documentation), in a schema of its own, and
// tells New not to create it; behind PgBouncer in transaction mode, pgx is
// told not to cache prepared statements.
func ExampleWithTable() {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	store, err := pgstore.New(ctx, pool,
		pgstore.WithTable(pgx.Identifier{"wechat", "tokens"}),
		pgstore.WithCreateTable(false))
	if err != nil {
		log.Fatal(err) // e.g. the table is missing: the error says so
	}
	_ = store
}

// A claim is made once across the fleet, whichever instance asks first,
// and released (or left to expire) when its work is done. core.Dedup does
// this for WeChat's pushes; with a Store it uses these native claims.
func ExampleStore_Claim() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(ctx, pool) // the claims table is created by the first claim
	if err != nil {
		log.Fatal(err)
	}

	const me = "instance-1/42"
	held, err := store.Claim(ctx, "push/msg-1234", me, 30*time.Second)
	switch {
	case err != nil:
		log.Fatal(err) // nothing is known: Claim again with the same value to find out
	case held != me:
		log.Printf("another instance holds it: %s", held)
		return
	}
	// ... the work, once across the fleet ...
	if _, err := store.CompareAndSwapClaim(ctx, "push/msg-1234", me, "", 0); err != nil {
		log.Printf("release: %v (the claim expires after 30s anyway)", err)
	}
}
