package sqlitestore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	"github.com/wechatconf/wechatconf/examples/customstore/sqlitestore"
)

// ─── Step 5: use it ─────────────────────────────────────────────────────────

// Two processes on one machine share their tokens through one SQLite file
// (here two Stores in one program, each with its own connections, as two
// processes would have). The first fetches the access_token; the second
// finds it in the file. In production leave BaseURL and Now unset.
func ExampleOpen() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "secret"})
	defer wechat.Close()
	dir, err := os.MkdirTemp("", "sqlitestore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tokens.db") // e.g. /var/lib/myapp/wechat-tokens.db

	for _, process := range []string{"web", "cron"} {
		store, err := sqlitestore.Open(path, sqlitestore.WithLease(10*time.Second))
		if err != nil {
			log.Fatal(err)
		}
		conf, err := core.New(core.Config{
			AppID:     "wx0123456789abcdef",
			AppSecret: core.NewSecret("secret"),
			Store:     store,
			BaseURL:   wechat.URL,
			Now:       wechat.Now,
		})
		if err != nil {
			log.Fatal(err)
		}
		tok, err := conf.AccessToken(context.Background())
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: token valid for %v\n", process, tok.ExpiresAt.Sub(wechat.Now()).Round(time.Second))
		store.Close()
	}
	fmt.Println("token fetches:", wechat.Calls(wxtest.PathStableToken))
	// Output:
	// web: token valid for 2h0m0s
	// cron: token valid for 2h0m0s
	// token fetches: 1
}

// A Store over a database the application already opened: New creates its
// two tables (wechatconf_tokens, wechatconf_locks) beside the
// application's own and never closes db.
func ExampleNew() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "secret"})
	defer wechat.Close()
	dir, err := os.MkdirTemp("", "sqlitestore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// busy_timeout is required, WAL recommended (see the package documentation).
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "app.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := sqlitestore.New(db)
	if err != nil {
		log.Fatal(err)
	}
	conf, err := core.New(core.Config{
		AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("secret"), Store: store,
		BaseURL: wechat.URL, Now: wechat.Now,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if _, err := conf.AccessToken(ctx); err != nil {
		log.Fatal(err)
	}
	// The fetch's record in the fleet's fetch ledger is written in the
	// background: wait for it before looking (and before db.Close).
	if err := conf.FlushLedger(ctx); err != nil {
		log.Fatal(err)
	}
	rows, err := db.Query(`SELECT key FROM wechatconf_tokens ORDER BY key`)
	if err != nil {
		log.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			log.Fatal(err)
		}
		fmt.Println("stored:", key)
	}
	// Output:
	// stored: wechatconf/wx0123456789abcdef/access_token
	// stored: wechatconf/wx0123456789abcdef/access_token/fetch_ledger
}
