package core

import (
	"fmt"
	"strings"
)

// Every error this package returns starts with "wechatconf: " once, however
// deep the chain: wrapErr drops the wrapped error's own prefix from the
// text (the error itself stays in the chain for errors.Is and errors.As),
// and the sentinels and errors that stores wrap (ErrNotFound, ErrLockLost,
// ErrCorrupt, ErrEmptyToken, key errors, *LimitError) carry no prefix, so a
// chain through a store reads "wechatconf: refresh access_token:
// redisstore: refresh \"key\": refresh lock lost before the write".

// prefix starts the text of every error this package returns.
const prefix = "wechatconf: "

// wrapErr returns an error reading "wechatconf: <op>: <err>" (or
// "wechatconf: <err>" when op is "") that wraps err.
func wrapErr(err error, op string, args ...any) error {
	if len(args) > 0 {
		op = fmt.Sprintf(op, args...)
	}
	return &opError{op: op, err: err}
}

// opError is the error of one operation of this package.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string {
	inner := strings.TrimPrefix(e.err.Error(), prefix)
	if e.op == "" {
		return prefix + inner
	}
	return prefix + e.op + ": " + inner
}

func (e *opError) Unwrap() error { return e.err }
