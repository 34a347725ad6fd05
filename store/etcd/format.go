package etcdstore

import (
	"encoding/base64"
)

// Key layout under the store's prefix P. A user key K is encoded with
// unpadded base64url (alphabet A–Z a–z 0–9 - _, no "/"), so that
//
//	P + "token/" + enc(K)        holds K's token, and
//	P + "lock/" + enc(K) + "/"   is the prefix of K's mutex queue
//	                             (concurrency.Mutex adds the "/" and then
//	                             the waiter's lease ID in hex).
//	P + "claim/" + enc(K)        holds K's claim (core.ClaimStore), on
//	                             the lease that ends it.
//
// No key's queue prefix is a prefix of another key's: enc(K) never contains
// "/", so "P lock/enc(K)/" ends where enc(K) ends, whatever K looks like
// ("a" and "a/b", "{tag}" and "tag", 256-byte keys).
const (
	tokenSegment = "token/"
	lockSegment  = "lock/"
	claimSegment = "claim/"
)

// encodeKey maps a user key to the key-safe segment of its etcd keys.
func encodeKey(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }
