package storeurl

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgKeywordStart matches the start of a libpq keyword/value DSN
// ("host=… dbname=…"). No URL starts so: a scheme cannot hold '=' or a
// space.
var pgKeywordStart = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*[ \t\n\r\v\f]*=`)

// pgSpaces are the characters libpq (and pgx) treat as white space in a
// keyword/value DSN.
const pgSpaces = " \t\n\r\v\f"

// pgKeyword is one keyword=value pair of a keyword/value DSN.
type pgKeyword struct {
	key, val string // val unescaped
	raw      string // val as written, without its quotes
}

// errPGKeywords is the error of a keyword/value DSN pgx would not parse. It
// quotes nothing of the DSN: the pair boundaries are in doubt, and with
// them where a password ends.
var errPGKeywords = errors.New("not a valid keyword/value DSN: want key=value pairs separated by spaces, " +
	"a value with spaces, quotes or backslashes in single quotes (password='a b'), ' and \\ inside them escaped with \\")

// parsePGKeywords splits a keyword/value DSN into its pairs exactly as
// pgconn's parseKeywordValueSettings does (which mirrors libpq), so that the
// password found here is the one pgx reads.
func parsePGKeywords(s string) ([]pgKeyword, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, errPGKeywords
	}
	var kws []pgKeyword
	s = strings.TrimLeft(s, pgSpaces)
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, errPGKeywords
		}
		key := strings.Trim(s[:eq], pgSpaces)
		if key == "" || strings.ContainsAny(key, pgSpaces) {
			return nil, errPGKeywords
		}
		s = strings.TrimLeft(s[eq+1:], pgSpaces)
		var raw string
		switch {
		case s == "":
		case s[0] != '\'':
			end := 0
			for ; end < len(s); end++ {
				if strings.IndexByte(pgSpaces, s[end]) >= 0 {
					break
				}
				if s[end] == '\\' {
					end++
					if end == len(s) {
						break
					}
				}
			}
			end = min(end, len(s))
			raw, s = s[:end], strings.TrimLeft(s[end:], pgSpaces)
		default:
			s = s[1:]
			end := 0
			for ; end < len(s) && s[end] != '\''; end++ {
				if s[end] == '\\' {
					end++
				}
			}
			if end >= len(s) {
				return nil, errPGKeywords // unterminated quoted value
			}
			raw, s = s[:end], strings.TrimLeft(s[end+1:], pgSpaces)
		}
		kws = append(kws, pgKeyword{key: key, val: pgUnescape(raw), raw: raw})
	}
	return kws, nil
}

// pgUnescape drops the backslash of each \x in a keyword value.
func pgUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// pgQuote writes a keyword value back, quoted when it must be.
func pgQuote(v string) string {
	if v != "" && !strings.ContainsAny(v, pgSpaces+`'\`) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// redactPGKeywords returns the DSN written back with every secret value
// masked, the secrets, and whether a host is named.
func redactPGKeywords(raw string) (string, []string, bool, error) {
	kws, err := parsePGKeywords(raw)
	if err != nil {
		return "", nil, false, err
	}
	var (
		parts   []string
		secrets []string
		host    bool
	)
	for _, kw := range kws {
		v := pgQuote(kw.val)
		if isSecretKey(kw.key) && kw.val != "" {
			secrets = append(secrets, kw.val, kw.raw)
			v = mask
		}
		if (kw.key == "host" || kw.key == "hostaddr") && kw.val != "" {
			host = true
		}
		parts = append(parts, kw.key+"="+v)
	}
	return strings.Join(parts, " "), secrets, host, nil
}

// redactPGURL returns a postgres:// or postgresql:// URL with its password
// (userinfo, ?password=, ?sslpassword=) masked, the secrets, and whether a
// host is named. It splits the URL as pgconn's parseURLSettings does (which
// mirrors libpq, not net/url): the userinfo ends at the first '@' found
// before any '/', the password at the first ':' in it; the query starts at
// the first '?' after the userinfo. ambiguous reports an unencoded '@' or
// '?' that leaves where a password ends in doubt: a second '@' before the
// path (pgx's host then holds the rest of the password the writer meant),
// or a '?' before the userinfo's '@' (a '@' in a query password of a URL
// without a path, which pgx reads as the end of a userinfo).
func redactPGURL(raw string) (red string, secrets []string, host, ambiguous bool) {
	var b strings.Builder
	p := raw
	for _, prefix := range []string{"postgresql://", "postgres://"} {
		if rest, ok := strings.CutPrefix(raw, prefix); ok {
			b.WriteString(prefix)
			p = rest
			break
		}
	}
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		if strings.Contains(p[:i], "?") {
			ambiguous = true // a '@' in what a reader takes for the query
		}
		user, pw, has := strings.Cut(p[:i], ":")
		b.WriteString(user)
		switch {
		case has && pw != "":
			b.WriteString(":" + mask)
			secrets = append(secrets, pw)
			if d, err := url.PathUnescape(pw); err == nil {
				secrets = append(secrets, d)
			}
		case has:
			b.WriteString(":")
		}
		b.WriteByte('@')
		p = p[i+1:]
	}
	netloc := p
	if i := strings.IndexAny(p, "/?"); i >= 0 {
		netloc = p[:i]
	}
	host = strings.Trim(netloc, ",:") != ""
	if strings.Contains(netloc, "@") {
		ambiguous = true // a second '@': the password runs into the host
	}
	path, query, hasQuery := strings.Cut(p, "?")
	b.WriteString(path)
	if hasQuery {
		q, qs := redactQuery(query, url.PathUnescape)
		secrets = append(secrets, qs...)
		b.WriteString("?" + q)
		for pair := range strings.SplitSeq(query, "&") {
			k, v, _ := strings.Cut(pair, "=")
			if (k == "host" || k == "hostaddr") && v != "" {
				host = true
			}
		}
	}
	return b.String(), secrets, host, ambiguous
}

// errPGAmbiguous ends the error of a PostgreSQL URL that is not shown.
const errPGAmbiguous = "the URL is not shown, since it may hold a password: " +
	"percent-encode @ : / ? # and blanks in a user name or password (@ is %40)"

// pgQuoted matches a double-quoted piece of a pgx error.
var pgQuoted = regexp.MustCompile(`"[^"]*"`)

// parsePostgres parses a PostgreSQL URL (keyword false) or keyword/value
// DSN into s, whose redacted and secrets it sets.
func parsePostgres(s *Spec, raw string, keyword bool) error {
	var host bool
	if keyword {
		red, secrets, h, err := redactPGKeywords(raw)
		if err != nil {
			s.redacted = "(PostgreSQL keyword/value DSN)"
			return err
		}
		s.redacted, s.secrets, host = red, &secrets, h
		if !host {
			return errors.New("no host: write host=db.internal port=5432 dbname=… user=…")
		}
	} else {
		var (
			secrets   []string
			ambiguous bool
		)
		s.redacted, secrets, host, ambiguous = redactPGURL(raw)
		s.secrets = &secrets
		if ambiguous {
			s.redacted = "(PostgreSQL URL)"
			return errors.New(errPGAmbiguous)
		}
		if !host {
			return errors.New("no host: write postgres://user@host:5432/dbname")
		}
	}
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		msg := err.Error()
		if !keyword {
			// pgx refused the URL: where its password ends is in doubt
			// (postgres://app@server:pw@host/db reads the port
			// "pw@host"), and pgx's reason may quote a piece of it
			// (unexpected spaces found in "…"). Quote none of either.
			s.redacted = "(PostgreSQL URL)"
			msg = pgQuoted.ReplaceAllLiteralString(msg, `"…"`) + "; " + errPGAmbiguous
		}
		var pce *pgconn.ParseConfigError
		if errors.As(err, &pce) {
			// "cannot parse `DSN`: why": pgx's own redaction of DSN is
			// best effort; keep only why (s.redacted names the DSN).
			if i := strings.LastIndex(msg, "`: "); i >= 0 {
				msg = msg[i+len("`: "):]
			}
		}
		return errors.New(scrub(msg, s.secretList()))
	}
	cc := cfg.ConnConfig
	s.Addrs = []string{pgAddr(cc.Host, cc.Port)}
	for _, f := range cc.Fallbacks {
		if a := pgAddr(f.Host, f.Port); !slices.Contains(s.Addrs, a) {
			s.Addrs = append(s.Addrs, a)
		}
	}
	s.Database, s.Kind, s.pg = cc.Database, Postgres, cfg
	return nil
}

// pgAddr is host:port, or the socket directory and port of a Unix socket.
func pgAddr(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return fmt.Sprintf("%s:%d", host, port)
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}
