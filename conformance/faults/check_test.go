package faults

import (
	"os"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// ms is a timestamp in milliseconds, for readable synthetic histories.
func ms(n int64) int64 { return n * int64(time.Millisecond) }

func TestCheckLegal(t *testing.T) {
	history := []Op{
		{Client: 0, Kind: Read, Value: 0, Call: ms(0), Return: ms(1)},
		{Client: 0, Kind: Write, Value: 1, Call: ms(2), Return: ms(10), Known: true},
		// Concurrent with the write: may see either value.
		{Client: 1, Kind: Read, Value: 0, Call: ms(3), Return: ms(4)},
		{Client: 2, Kind: Read, Value: 1, Call: ms(5), Return: ms(6)},
		// A holder that lost its lease: its older token was refused.
		{Client: 1, Kind: Write, Value: 2, Call: ms(5), Known: false},
		{Client: 2, Kind: Write, Value: 3, Call: ms(11), Return: ms(20), Known: true},
		{Client: 0, Kind: Read, Value: 3, Call: ms(21), Return: ms(22)},
		// An unknown write that did land, seen by a later read.
		{Client: 0, Kind: Write, Value: 4, Call: ms(23), Known: false},
		{Client: 1, Kind: Read, Value: 3, Call: ms(24), Return: ms(25)},
		{Client: 2, Kind: Read, Value: 4, Call: ms(30), Return: ms(31)},
		// An unknown write never seen by anyone.
		{Client: 1, Kind: Write, Value: 5, Call: ms(32), Known: false},
		{Client: 0, Kind: Read, Value: 4, Call: ms(40), Return: ms(41)},
	}
	r, err := Check(history, 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r.Result != porcupine.Ok || r.Ops != len(history) {
		t.Fatalf("Check(legal history) = %+v, want Ok over %d operations", r, len(history))
	}
}

func TestCheckIllegal(t *testing.T) {
	for name, history := range map[string][]Op{
		// The fault the proof is about: a plain Set of an older token after
		// a newer one was written and read.
		"older token written": {
			{Client: 0, Kind: Write, Value: 2, Call: ms(0), Return: ms(5), Known: true},
			{Client: 1, Kind: Read, Value: 2, Call: ms(6), Return: ms(7)},
			{Client: 2, Kind: Write, Value: 1, Call: ms(8), Return: ms(9), Known: true},
		},
		"older token read back": {
			{Client: 0, Kind: Write, Value: 1, Call: ms(0), Return: ms(5), Known: true},
			{Client: 1, Kind: Write, Value: 2, Call: ms(6), Known: false},
			{Client: 2, Kind: Read, Value: 2, Call: ms(10), Return: ms(11)},
			{Client: 0, Kind: Read, Value: 1, Call: ms(12), Return: ms(13)},
		},
		"token vanished": {
			{Client: 0, Kind: Write, Value: 1, Call: ms(0), Return: ms(5), Known: true},
			{Client: 1, Kind: Read, Value: 0, Call: ms(6), Return: ms(7)},
		},
		"same token written twice": {
			{Client: 0, Kind: Write, Value: 1, Call: ms(0), Return: ms(5), Known: true},
			{Client: 1, Kind: Write, Value: 1, Call: ms(6), Return: ms(7), Known: true},
		},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := Check(history, 3, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if r.Result != porcupine.Illegal {
				t.Fatalf("Check = %+v, want Illegal", r)
			}
			if fi, err := os.Stat(r.Visualization); err != nil || fi.Size() == 0 {
				t.Errorf("visualization %q: %v", r.Visualization, err)
			} else {
				os.Remove(r.Visualization)
			}
		})
	}
}
