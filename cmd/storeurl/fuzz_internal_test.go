package storeurl

import (
	"regexp"
	"strings"
	"testing"
)

var Words = regexp.MustCompile(`[A-Za-z_]+=|[A-Za-z.]+:/*|storeurl\.Spec|xxxxx`)

// FuzzPasswordNotShown: for any store URL Parse accepts, the
// password the client library will send (pgx's, go-redis's for every
// topology, etcd's) is reported by HasPassword and shown by neither String
// nor GoString. A password of fewer than 4 bytes, or one that is part of
// the rest of the shown URL's host names, is too short to judge.
func FuzzPasswordNotShown(f *testing.F) {
	for _, s := range []string{
		"postgres://u:pw1234@h/db", "postgres://h/db?password=pw1234", "host=h password='a b c d'",
		"host=h password=a\\ bcd", "redis://:pw1234@h:1/0", "redis://h:1?master_name=m&password=pw1234",
		"redis://u:pw1234@h1,h2", "etcd://u:pw1234@h:1", "postgres://u:p@ss1234@h/db",
		"postgres://h:1?password=x@abcd1234", "host=h PASSWORD=abcd1234",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := Parse(raw)
		if err != nil {
			return
		}
		var pws []string
		if s.pg != nil {
			pws = append(pws, s.pg.ConnConfig.Password)
		}
		if s.redis != nil {
			pws = append(pws, s.redis.Password)
		}
		if s.failover != nil {
			pws = append(pws, s.failover.Password, s.failover.SentinelPassword)
		}
		if s.cluster != nil {
			pws = append(pws, s.cluster.Password)
		}
		pws = append(pws, s.etcdPass.Reveal())
		// The keys and schemes shown are not the password's.
		shown := Words.ReplaceAllString(s.String()+" "+s.GoString(), " ")
		hosts := strings.Join(s.Addrs, " ") + strings.Join(s.Endpoints, " ") + s.Database + s.MasterName + s.Prefix
		for _, pw := range pws {
			if pw == "" {
				continue
			}
			if !s.HasPassword() {
				t.Errorf("Parse(%q): the client's password %q, HasPassword false", raw, pw)
			}
			if len(pw) >= 4 && strings.Contains(shown, pw) && !strings.Contains(hosts, pw) {
				t.Errorf("Parse(%q): String %q shows the client's password %q", raw, s.String(), pw)
			}
		}
	})
}
