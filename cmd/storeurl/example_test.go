package storeurl_test

import (
	"fmt"

	"github.com/wechatconf/wechatconf/cmd/storeurl"
)

// Parse tells what a URL names without connecting, shows it with its
// password masked, and reports the password so that a command can refuse
// it in a flag. Open (or Spec.Open) connects and returns the store.
func ExampleParse() {
	for _, raw := range []string{
		"redis://s1:26379,s2:26379,s3:26379/0?master_name=mymaster&password=hunter2",
		"redis://n1:6379,n2:6379,n3:6379?prefix=team:",
		"host=db.internal port=5432 dbname=tokens user=wechat password='hunter 2'",
	} {
		s, err := storeurl.Parse(raw)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(s.Kind, s.Topology, s.Addrs, s.HasPassword())
		fmt.Println("  ", s)
	}
	// Output:
	// redis sentinel [s1:26379 s2:26379 s3:26379] true
	//    redis://s1:26379,s2:26379,s3:26379/0?master_name=mymaster&password=xxxxx
	// redis cluster [n1:6379 n2:6379 n3:6379] false
	//    redis://n1:6379,n2:6379,n3:6379?prefix=team:
	// postgres  [db.internal:5432] true
	//    host=db.internal port=5432 dbname=tokens user=wechat password=xxxxx
}
