package conformance

import (
	"fmt"
	"slices"
	"strings"
)

// pfLine is one line of a PushFleet child's history, as the parent
// recorded it: which process printed it (proc, the parent's number for
// the process), when (ts, the child's wall clock in Unix nanoseconds, the
// same clock for every process on the machine), what (kind: start,
// finish, answered, event) and for which delivery of which push; arg is
// the rest ("ok" or "err" for finish, the outcome for answered, the event
// and its stage for event).
type pfLine struct {
	proc     int
	ts       int64
	kind     string
	push     int
	delivery int
	arg      string
}

// Kinds of history lines.
const (
	pfStart    = "start"
	pfFinish   = "finish"
	pfAnswered = "answered"
	pfEvent    = "event"
)

// pfStartRec is one handler start and what became of it.
type pfStartRec struct {
	proc, delivery int
	ts             int64
	finish         string // "", "ok" or "err"
	answered       string // the delivery's outcome, "" if never answered
	lost           string // the stage of a claim-lost event of this delivery
	unguarded      bool   // the handler ran without a claim (the store failed)
	killed         bool   // its process was killed by the parent
}

// class is why a start may be followed by another start of its push:
// "failed", "crashed", "lost", "unguarded", or "" when it may not (it
// finished and its push was recorded as handled), or "hung" when its
// handler never finished in a process that was not killed.
func (s *pfStartRec) class() string {
	switch {
	case s.finish == "err":
		return "failed"
	case s.unguarded:
		return "unguarded"
	case s.lost != "":
		return "lost"
	case s.killed && (s.finish == "" || s.answered == ""):
		return "crashed"
	case s.finish == "":
		return "hung"
	case s.answered == "":
		return "unanswered"
	}
	return ""
}

func (s *pfStartRec) String() string {
	fin := s.finish
	if fin == "" {
		fin = "none"
	}
	ans := s.answered
	if ans == "" {
		ans = "none"
	}
	st := fmt.Sprintf("process %d delivery %d: finish %s, answered %s", s.proc, s.delivery, fin, ans)
	if s.killed {
		st += ", process killed"
	}
	if s.lost != "" {
		st += ", claim lost while " + s.lost
	}
	if s.unguarded {
		st += ", unguarded"
	}
	return st
}

// pfCounts is what the checker counts over a history.
type pfCounts struct {
	Pushes    int
	Starts    int
	Handled   int            // pushes with a finished handler
	Outcomes  map[string]int // answered deliveries by outcome
	Dups      map[string]int // starts after the first, by the class of the start before
	Violating int            // starts that break rule (b)
}

// checkPushHistory checks a PushFleet history of pushes pushes (numbered
// from 0) whose processes in killed were killed by the parent:
//
//	(a) every push has a handler that finished ("finish ok");
//	(b) a push is started again only when every earlier start of it (by
//	    the children's clock) failed, crashed (its process was killed
//	    before it answered), lost its claim or ran unguarded (the last two
//	    are Dedup's documented limits, shown by its own events), or when
//	    the later start itself ran unguarded;
//
// and that every handler in a process still alive finished and answered.
// It returns the counts and one message per violation.
func checkPushHistory(pushes int, lines []pfLine, killed map[int]bool) (pfCounts, []string) {
	type dk struct{ proc, push, delivery int }
	starts := map[dk]*pfStartRec{}
	byPush := make([][]*pfStartRec, pushes)
	var bad []string
	c := pfCounts{Pushes: pushes, Outcomes: map[string]int{}, Dups: map[string]int{}}
	for _, l := range lines {
		if l.kind != pfStart {
			continue
		}
		if l.push < 0 || l.push >= pushes {
			bad = append(bad, fmt.Sprintf("process %d started push %d, which was never sent", l.proc, l.push))
			continue
		}
		k := dk{l.proc, l.push, l.delivery}
		if starts[k] != nil {
			bad = append(bad, fmt.Sprintf("push %d: process %d started delivery %d twice", l.push, l.proc, l.delivery))
			continue
		}
		s := &pfStartRec{proc: l.proc, delivery: l.delivery, ts: l.ts, killed: killed[l.proc]}
		starts[k] = s
		byPush[l.push] = append(byPush[l.push], s)
		c.Starts++
	}
	for _, l := range lines {
		s := starts[dk{l.proc, l.push, l.delivery}]
		switch l.kind {
		case pfAnswered:
			c.Outcomes[l.arg]++
		case pfFinish:
			if s == nil {
				bad = append(bad, fmt.Sprintf("push %d: process %d finished delivery %d, which it never started", l.push, l.proc, l.delivery))
				continue
			}
			s.finish = l.arg
		case pfEvent:
			if s == nil {
				continue
			}
			switch {
			case strings.HasPrefix(l.arg, "claim_lost "):
				s.lost = strings.TrimPrefix(l.arg, "claim_lost ")
			case strings.HasPrefix(l.arg, "unguarded"):
				s.unguarded = true
			}
		}
		if l.kind == pfAnswered && s != nil {
			s.answered = l.arg
		}
	}
	for p, ss := range byPush {
		slices.SortStableFunc(ss, func(a, b *pfStartRec) int {
			switch {
			case a.ts < b.ts:
				return -1
			case a.ts > b.ts:
				return 1
			}
			return 0
		})
		handled := false
		for _, s := range ss {
			handled = handled || s.finish == "ok"
			switch s.class() {
			case "hung":
				bad = append(bad, fmt.Sprintf("push %d: a handler never finished (%v)", p, s))
			case "unanswered":
				bad = append(bad, fmt.Sprintf("push %d: a handler finished but its delivery was never answered (%v)", p, s))
			}
		}
		if handled {
			c.Handled++
		} else {
			bad = append(bad, fmt.Sprintf("push %d was never handled (rule a): %s", p, describeStarts(ss)))
		}
		for i := 1; i < len(ss); i++ {
			if ss[i].unguarded {
				c.Dups["unguarded"]++
				continue
			}
			ok := true
			for _, e := range ss[:i] {
				if cl := e.class(); cl == "" || cl == "hung" || cl == "unanswered" {
					ok = false
				}
			}
			if !ok {
				c.Violating++
				c.Dups["other"]++
				bad = append(bad, fmt.Sprintf("push %d handled again after a handler that finished (rule b): %s", p, describeStarts(ss[:i+1])))
				continue
			}
			c.Dups[ss[i-1].class()]++
		}
	}
	return c, bad
}

func describeStarts(ss []*pfStartRec) string {
	if len(ss) == 0 {
		return "no handler started"
	}
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = "[" + s.String() + "]"
	}
	return strings.Join(parts, " then ")
}
