package containertest_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wechatconf/wechatconf/core"
	pgstore "github.com/wechatconf/wechatconf/store/postgres"
)

// dmlRole creates a login role that may use the schema public but may not
// create in it (PostgreSQL 15's default for a role that does not own the
// schema; REVOKE CREATE ... FROM PUBLIC makes sure of it on older servers),
// and returns a pool configured to connect as that role. The role is
// dropped when t ends.
func dmlRole(t *testing.T, admin *pgxpool.Pool) (role string, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	role = fmt.Sprintf("wcnf_dml_%08x", mrand.Uint32())
	password := rand.Text()
	id := pgx.Identifier{role}.Sanitize()
	// CREATE ROLE takes no parameters: the password is a literal, made of
	// base32 characters only, and kept out of the error.
	if _, err := admin.Exec(ctx, `CREATE ROLE `+id+` LOGIN PASSWORD '`+password+`'`); err != nil {
		t.Fatalf("CREATE ROLE %s LOGIN PASSWORD ...: %v", id, err)
	}
	t.Cleanup(func() {
		mustExec(t, admin, `DROP OWNED BY `+id)
		mustExec(t, admin, `DROP ROLE `+id)
	})
	mustExec(t, admin, `REVOKE CREATE ON SCHEMA public FROM PUBLIC`)
	mustExec(t, admin, `GRANT USAGE ON SCHEMA public TO `+id)
	var canCreate, canUse bool
	if err := admin.QueryRow(ctx, `SELECT has_schema_privilege($1, 'public', 'CREATE'), has_schema_privilege($1, 'public', 'USAGE')`, role).Scan(&canCreate, &canUse); err != nil {
		t.Fatal(err)
	}
	if canCreate || !canUse {
		t.Fatalf("role %s on schema public: CREATE %v, USAGE %v; want USAGE without CREATE", role, canCreate, canUse)
	}
	pool = newPool(t, testDSN, func(c *pgxpool.Config) {
		c.ConnConfig.User = role
		c.ConnConfig.Password = password
	})
	return role, pool
}

// TestNewWithoutCreatePrivilege tests New for a role that may use an
// existing table but may not CREATE in its schema: with the table created
// by its owner and SELECT, INSERT and UPDATE granted, New (creating tables
// left on, the default) succeeds and the store works; with the table
// missing, New fails with an error that says to create it and use
// WithCreateTable(false), with the PostgreSQL error reachable.
func TestNewWithoutCreatePrivilege(t *testing.T) {
	needServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := newPool(t, testDSN, nil)
	role, pool := dmlRole(t, admin)
	roleID := pgx.Identifier{role}.Sanitize()

	t.Run("ExistingTable", func(t *testing.T) {
		for _, name := range []pgx.Identifier{
			{pgstore.DefaultTable},
			{fmt.Sprintf("granted_%08x", mrand.Uint32())},
			{"public", fmt.Sprintf("granted_%08x", mrand.Uint32())},
		} {
			// The owner creates the table (New does, as the admin role).
			newStoreOn(t, admin, pgstore.WithTable(name))
			if name[0] != pgstore.DefaultTable {
				t.Cleanup(func() { mustExec(t, admin, `DROP TABLE IF EXISTS `+name.Sanitize()) })
			}
			mustExec(t, admin, `GRANT SELECT, INSERT, UPDATE ON `+name.Sanitize()+` TO `+roleID)

			s, err := pgstore.New(ctx, pool, pgstore.WithTable(name), pgstore.WithLease(testLease))
			if err != nil {
				t.Fatalf("New(WithTable(%q)) as role %s, which may use the table but not CREATE in its schema: %v; want it to use the existing table", []string(name), role, err)
			}
			key := uniqueKey(t)
			if err := s.Set(ctx, key, tok("set-by-role")); err != nil {
				t.Errorf("Set(%q) as role %s: %v", key, role, err)
			}
			if got, err := s.Get(ctx, key); err != nil || got.Value != "set-by-role" {
				t.Errorf("Get(%q) as role %s = %+v, %v; want %q", key, role, got, err, "set-by-role")
			}
			n := 0
			got, err := s.Refresh(ctx, key, "set-by-role", func(context.Context) (core.Token, error) { n++; return tok("refreshed-by-role"), nil })
			if err != nil || n != 1 || got.Value != "refreshed-by-role" {
				t.Errorf("Refresh(%q) as role %s = %+v, %v, %d fetches; want the fetched token from 1 fetch", key, role, got, err, n)
			}
			if got, err := s.Get(ctx, key); err != nil || got.Value != "refreshed-by-role" {
				t.Errorf("Get(%q) as role %s after Refresh = %+v, %v; want %q", key, role, got, err, "refreshed-by-role")
			}
		}
	})

	t.Run("MissingTable", func(t *testing.T) {
		name := pgx.Identifier{fmt.Sprintf("missing_%08x", mrand.Uint32())}
		_, err := pgstore.New(ctx, pool, pgstore.WithTable(name), pgstore.WithLease(testLease))
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			t.Fatalf("New(WithTable(%q)) as role %s with no such table and no CREATE on the schema: nil error, want one", []string(name), role)
		case !strings.Contains(err.Error(), "WithCreateTable(false)"):
			t.Errorf("New(WithTable(%q)) as role %s with no such table: %v; want the error to name WithCreateTable(false)", []string(name), role, err)
		case !errors.As(err, &pgErr) || pgErr.Code != "42501":
			t.Errorf("New(WithTable(%q)) as role %s with no such table: %v; want the *pgconn.PgError 42501 (insufficient_privilege) reachable", []string(name), role, err)
		default:
			t.Logf("New as role %s with the table missing: %v", role, err)
		}
		var exists bool
		if err := admin.QueryRow(ctx, `SELECT to_regclass($1::text) IS NOT NULL`, name.Sanitize()).Scan(&exists); err != nil || exists {
			t.Errorf("table %q after the refused New: exists %v, %v; want none", []string(name), exists, err)
		}
	})
}
