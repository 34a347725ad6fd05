package childproc_test

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/conformance/containers/childproc"
)

const childEnv = "WECHATCONF_CHILDPROC_TEST_CHILD"

// Three children of a subtest answer each command with a protocol line,
// their other output is kept apart, and each exits cleanly when its stdin
// closes.
func TestChildren(t *testing.T) {
	t.Run("echo", func(t *testing.T) {
		if id, ok := os.LookupEnv(childEnv); ok {
			fmt.Println("ready " + id)
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				fmt.Println("log: got " + sc.Text())    // not a protocol line
				fmt.Println("proto: " + sc.Text() + id) // the answer
			}
			fmt.Fprintln(os.Stderr, "bye from "+id)
			return
		}
		children := childproc.Start(t, 3, childproc.Options{
			Test:   t.Name(),
			Prefix: "proto: ",
			EnvOf:  func(i int) []string { return []string{fmt.Sprintf("%s=%d", childEnv, i)} },
		})
		for _, c := range children {
			c.Send("ping %d-", 7)
		}
		for _, c := range children {
			c.Expect(fmt.Sprintf("ping 7-%d", c.Index))
		}
		for _, c := range children {
			if err := c.Wait(); err != nil {
				t.Fatalf("child %d: %v\n%s", c.Index, err, c.Output())
			}
			out := c.Output()
			for _, want := range []string{fmt.Sprintf("ready %d", c.Index), "log: got ping 7-", fmt.Sprintf("bye from %d", c.Index)} {
				if !strings.Contains(out, want) {
					t.Errorf("child %d: output lacks %q:\n%s", c.Index, want, out)
				}
			}
			if strings.Contains(out, "proto: ") {
				t.Errorf("child %d: a protocol line in the output:\n%s", c.Index, out)
			}
		}
	})
}

func TestRunPattern(t *testing.T) {
	if got, want := childproc.RunPattern("TestA/b c+"), "^TestA$/^b c\\+$"; got != want {
		t.Errorf("RunPattern = %q, want %q", got, want)
	}
}
