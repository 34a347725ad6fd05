package conformance

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestCheckNames tests that the subtest names are unique CamelCase and that
// Run's documentation lists every one of them, in order.
func TestCheckNames(t *testing.T) {
	src, err := os.ReadFile("harness.go")
	if err != nil {
		t.Fatal(err)
	}
	camel := regexp.MustCompile(`^[A-Z][A-Za-z]+$`)
	doc := string(src)
	seen := map[string]bool{}
	last := 0
	for _, c := range checks {
		if !camel.MatchString(c.name) {
			t.Errorf("check name %q is not CamelCase", c.name)
		}
		if seen[c.name] {
			t.Errorf("check name %q is used twice", c.name)
		}
		seen[c.name] = true
		i := strings.Index(doc, "//   - "+c.name+": ")
		if i < 0 {
			t.Errorf("Run's documentation does not list %s", c.name)
			continue
		}
		if i < last {
			t.Errorf("Run's documentation lists %s out of order", c.name)
		}
		last = i
	}
}
