package containers

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/lib/pq"
	"github.com/redis/go-redis/v9"
)

// ---- a tiny RESP client over raw TCP ------------------------------------------

// respDo sends one command and returns the reply flattened to a string
// (arrays joined with "\n"); an error reply is returned as an error.
func respDo(conn net.Conn, args ...string) (string, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write(b.Bytes()); err != nil {
		return "", err
	}
	return readRESP(bufio.NewReader(conn))
}

func readRESP(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty RESP line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis error: %s", line[1:])
	case '$', '=', '!':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err // nil bulk: ""
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			s, err := readRESP(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected RESP line %q", line)
}

// redisCmd dials addr, runs one command and closes the connection.
func redisCmd(addr string, timeout time.Duration, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	return respDo(conn, args...)
}

func mustRedis(t *testing.T, addr string, want string, args ...string) {
	t.Helper()
	got, err := redisCmd(addr, 5*time.Second, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", addr, args, err)
	}
	if want != "" && got != want {
		t.Fatalf("%s %v = %q, want %q", addr, args, got, want)
	}
}

// ---- tests -------------------------------------------------------------------

func TestRedis(t *testing.T) {
	r := StartRedis(t)
	mustRedis(t, r.Addr, "PONG", "PING")
	mustRedis(t, r.Addr, "OK", "SET", "conformance:k", "v1")
	mustRedis(t, r.Addr, "v1", "GET", "conformance:k")

	t.Run("restart", func(t *testing.T) {
		begin := time.Now()
		Stop(t, r.Container)
		if _, err := redisCmd(r.Addr, time.Second, "PING"); err == nil {
			t.Fatalf("PING to stopped redis at %s succeeded", r.Addr)
		}
		Start(t, r.Container)
		t.Logf("redis stop+start took %v", time.Since(begin).Round(time.Millisecond))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if addr, err := MappedAddr(ctx, r.Container, "6379/tcp"); err != nil || addr != r.Addr {
			t.Fatalf("address after restart = %q, %v; want %q", addr, err, r.Addr)
		}
		mustRedis(t, r.Addr, "PONG", "PING")
		// No persistence: the data is gone, the address is the same.
		mustRedis(t, r.Addr, "", "GET", "conformance:k")
	})

	t.Run("pause", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", r.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := respDo(conn, "PING"); err != nil {
			t.Fatal(err)
		}
		Pause(t, r.Container)
		_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if got, err := respDo(conn, "PING"); err == nil {
			t.Fatalf("PING to paused redis answered %q", got)
		}
		Unpause(t, r.Container)
		mustRedis(t, r.Addr, "PONG", "PING")
	})
}

func TestPostgres(t *testing.T) {
	pg := StartPostgres(t)
	db, err := sql.Open("postgres", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 over %s = %d, %v", pg.DSN, one, err)
	}
	var user, dbname, version string
	if err := db.QueryRowContext(ctx, "SELECT current_user, current_database(), current_setting('server_version')").
		Scan(&user, &dbname, &version); err != nil {
		t.Fatal(err)
	}
	if user != PostgresUser || dbname != PostgresDB || !strings.HasPrefix(version, "15.") {
		t.Fatalf("got user=%q db=%q version=%q", user, dbname, version)
	}
	t.Logf("postgres %s as %s on %s", version, user, dbname)
}

// etcdJSON posts a request to etcd's v3 JSON gateway and decodes the reply.
func etcdJSON(t *testing.T, endpoint, path string, req, resp any) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Post(endpoint+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s%s: %v", endpoint, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s%s: %s: %s", endpoint, path, res.Status, b)
	}
	if err := json.Unmarshal(b, resp); err != nil {
		t.Fatalf("POST %s%s: decode %s: %v", endpoint, path, b, err)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func etcdPut(t *testing.T, endpoint, key, value string) {
	t.Helper()
	var resp map[string]any
	etcdJSON(t, endpoint, "/v3/kv/put", map[string]string{"key": b64(key), "value": b64(value)}, &resp)
}

func etcdGet(t *testing.T, endpoint, key string) string {
	t.Helper()
	var resp struct {
		Kvs []struct{ Value string } `json:"kvs"`
	}
	etcdJSON(t, endpoint, "/v3/kv/range", map[string]string{"key": b64(key)}, &resp)
	if len(resp.Kvs) != 1 {
		t.Fatalf("range %q on %s: %d kvs", key, endpoint, len(resp.Kvs))
	}
	v, err := base64.StdEncoding.DecodeString(resp.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func TestEtcd(t *testing.T) {
	e := StartEtcd(t)
	res, err := (&http.Client{Timeout: 10 * time.Second}).Get(e.Endpoints[0] + "/health")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `"health":"true"`) {
		t.Fatalf("/health = %s", b)
	}
	etcdPut(t, e.Endpoints[0], "conformance/k", "v1")
	if got := etcdGet(t, e.Endpoints[0], "conformance/k"); got != "v1" {
		t.Fatalf("get = %q", got)
	}
}

func TestEtcdCluster(t *testing.T) {
	cl := StartEtcdCluster(t, 3)
	if len(cl.Members) != 3 || len(cl.Endpoints) != 3 {
		t.Fatalf("members=%d endpoints=%d", len(cl.Members), len(cl.Endpoints))
	}
	var list struct {
		Members []struct {
			Name       string   `json:"name"`
			ClientURLs []string `json:"clientURLs"`
		} `json:"members"`
	}
	etcdJSON(t, cl.Endpoints[1], "/v3/cluster/member/list", map[string]any{}, &list)
	if len(list.Members) != 3 {
		t.Fatalf("member list has %d members: %+v", len(list.Members), list.Members)
	}
	for _, m := range list.Members {
		if len(m.ClientURLs) != 1 || !strings.HasPrefix(m.ClientURLs[0], "http://127.0.0.1:") {
			t.Fatalf("member %s advertises %v, want a host URL", m.Name, m.ClientURLs)
		}
	}
	etcdPut(t, cl.Endpoints[0], "conformance/cluster", "written-on-0")
	if got := etcdGet(t, cl.Endpoints[2], "conformance/cluster"); got != "written-on-0" {
		t.Fatalf("read on member 2 = %q", got)
	}

	t.Run("one member down", func(t *testing.T) {
		Stop(t, cl.Members[2].Container)
		etcdPut(t, cl.Endpoints[0], "conformance/quorum", "2-of-3")
		if got := etcdGet(t, cl.Endpoints[1], "conformance/quorum"); got != "2-of-3" {
			t.Fatalf("read on member 1 = %q", got)
		}
		Start(t, cl.Members[2].Container)
		if got := etcdGet(t, cl.Endpoints[2], "conformance/quorum"); got != "2-of-3" {
			t.Fatalf("read on restarted member 2 = %q", got)
		}
	})
}

func TestRedisCluster(t *testing.T) {
	rc := StartRedisCluster(t)
	if len(rc.Nodes) < 3 {
		t.Fatalf("%d nodes", len(rc.Nodes))
	}
	for _, n := range rc.Nodes {
		info, err := redisCmd(n.Addr, 5*time.Second, "CLUSTER", "INFO")
		if err != nil {
			t.Fatalf("CLUSTER INFO on %s: %v", n.Addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
			t.Fatalf("CLUSTER INFO on %s:\n%s", n.Addr, info)
		}
		mustRedis(t, n.Addr, "PONG", "PING")
	}
	// The announced addresses (CLUSTER SLOTS) are the ones we dial.
	slots, err := redisCmd(rc.Addrs[0], 5*time.Second, "CLUSTER", "SLOTS")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range rc.Addrs {
		_, port, _ := strings.Cut(a, ":")
		if !strings.Contains(slots, "127.0.0.1\n"+port) {
			t.Fatalf("CLUSTER SLOTS does not announce %s:\n%s", a, slots)
		}
	}

	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 30 { // keys spread over all three masters
		k := fmt.Sprintf("conformance:%d", i)
		if err := rdb.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		if got, err := rdb.Get(ctx, k).Int(); err != nil || got != i {
			t.Fatalf("GET %s = %d, %v", k, got, err)
		}
	}
	var masters atomic.Int32
	if err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := c.DBSize(ctx).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("master %s holds no key", c.Options().Addr)
		}
		masters.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if masters.Load() != 3 {
		t.Fatalf("ForEachMaster visited %d masters", masters.Load())
	}
}
