package wxtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// Fault is a canned reply that [Server.InjectFault] serves instead of the
// normal handling of a request.
type Fault struct {
	// Status is the HTTP status code; 0 means 200.
	Status int
	// Body is the raw reply body. It is served as text/html when it starts
	// with "<" and as JSON otherwise.
	Body string
}

// Errcode returns a WeChat error reply: HTTP 200 with the body
// {"errcode":code,"errmsg":msg}. For example Errcode(40164, "invalid ip
// 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist rid: ...") simulates a
// caller outside the IP whitelist.
func Errcode(code int, msg string) Fault {
	b, err := json.Marshal(errorReply{Errcode: code, Errmsg: msg})
	if err != nil { // cannot happen: an int and a string always marshal
		panic(err)
	}
	return Fault{Status: http.StatusOK, Body: string(b)}
}

// Busy returns WeChat's "system busy" reply, Errcode(-1, "system error"),
// which callers are expected to retry.
func Busy() Fault { return Errcode(-1, "system error") }

// MalformedJSON returns HTTP 200 with a body that is not valid JSON (a reply
// cut short), which a client must treat as an error.
func MalformedJSON() Fault {
	return Fault{Status: http.StatusOK, Body: `{"access_token":"ACCESS_TOKEN","expires_in":72`}
}

// EmptyReply returns HTTP 200 with the body {}: neither a token nor an
// errcode. A client must treat it as an error, never as an empty token.
func EmptyReply() Fault { return Fault{Status: http.StatusOK, Body: "{}"} }

// HTTPStatus returns a reply with the given HTTP status code and the HTML
// error page a gateway would serve, for example HTTPStatus(502).
func HTTPStatus(code int) Fault {
	text := http.StatusText(code)
	if text == "" {
		text = "Error"
	}
	return Fault{Status: code, Body: fmt.Sprintf(
		"<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
		code, text, code, text)}
}

func (f Fault) write(w http.ResponseWriter) {
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	if strings.HasPrefix(strings.TrimSpace(f.Body), "<") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", jsonContentType)
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(f.Body))
}

type queuedFault struct {
	f Fault
	n int
}

// InjectFault makes the next n requests to path get f instead of their
// normal handling. The requests are still counted by [Server.Calls], and a
// held request takes its fault when its [Gate] releases it. Several calls
// queue in order: after InjectFault(p, Busy(), 2) and InjectFault(p,
// EmptyReply(), 1) the next three requests to p get busy, busy, empty. Any
// path may be given, known to the server or not. n <= 0 injects nothing.
func (s *Server) InjectFault(path string, f Fault, n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[path] = append(s.faults[path], queuedFault{f: f, n: n})
}

// takeFault consumes the next fault queued for path, if any.
func (s *Server) takeFault(path string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faults[path]
	if len(q) == 0 {
		return Fault{}, false
	}
	f := q[0].f
	if q[0].n--; q[0].n == 0 {
		q = q[1:]
	}
	if len(q) == 0 {
		delete(s.faults, path)
	} else {
		s.faults[path] = q
	}
	return f, true
}

// arrivedBuffer is the capacity of Gate.Arrived. Elements are empty structs,
// so the buffer costs no memory.
const arrivedBuffer = 1 << 16

// Gate holds the requests to one path until released; see [Server.Block].
type Gate struct {
	s        *Server
	path     string
	arrived  chan struct{}
	released chan struct{}
	once     sync.Once
	held     atomic.Int64
}

// Block makes every request to path that arrives from now on wait, after it
// has been counted by [Server.Calls] and delayed by the latency, and before
// any fault or normal handling, until the returned Gate is released, the
// request's context ends or the server is closed. It lets
// a test know that requests are in flight and decide when they complete,
// without sleeping. If path is already blocked, Block returns the existing
// Gate.
func (s *Server) Block(path string) *Gate {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.gates[path]; g != nil {
		return g
	}
	g := &Gate{
		s:        s,
		path:     path,
		arrived:  make(chan struct{}, arrivedBuffer),
		released: make(chan struct{}),
	}
	s.gates[path] = g
	return g
}

// Arrived returns a channel that receives one value for each request the
// gate holds, sent when the request starts waiting. The channel is buffered
// generously (65536 values) and the handler never blocks on it: values past a
// full buffer are dropped.
func (g *Gate) Arrived() <-chan struct{} { return g.arrived }

// Held returns how many requests the gate is holding right now.
func (g *Gate) Held() int { return int(g.held.Load()) }

// Release lets every held request through, and every later one: the path is
// no longer blocked (a later [Server.Block] creates a new Gate). Release is
// idempotent.
func (g *Gate) Release() {
	g.once.Do(func() {
		g.s.mu.Lock()
		if g.s.gates[g.path] == g {
			delete(g.s.gates, g.path)
		}
		g.s.mu.Unlock()
		close(g.released)
	})
}

// hold waits until the gate is released (true), or until ctx ends or the
// server closes (false).
func (g *Gate) hold(ctx context.Context, closing <-chan struct{}) bool {
	select {
	case <-g.released:
		return true
	default:
	}
	g.held.Add(1)
	defer g.held.Add(-1)
	select {
	case g.arrived <- struct{}{}:
	default:
	}
	select {
	case <-g.released:
		return true
	case <-ctx.Done():
		return false
	case <-closing:
		return false
	}
}
