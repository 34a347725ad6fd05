package wxtest_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Example fetches a classic access_token from the simulated API over HTTP,
// uses it, and lets the simulated clock run past its expiry.
func Example() {
	s := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "s3cret"})
	defer s.Close()

	// A client pointed at s.URL instead of https://api.weixin.qq.com.
	get := func(path string, q url.Values) map[string]any {
		resp, err := s.Client().Get(s.URL + path + "?" + q.Encode())
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		var reply map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
			panic(err)
		}
		return reply
	}

	reply := get(wxtest.PathToken, url.Values{
		"grant_type": {"client_credential"},
		"appid":      {"wx0123456789abcdef"},
		"secret":     {"s3cret"},
	})
	token := reply["access_token"].(string)
	fmt.Println("expires_in:", reply["expires_in"])
	fmt.Println("token valid:", s.TokenValid(token))
	fmt.Println("callback IPs:", get(wxtest.PathAPI, url.Values{"access_token": {token}})["ip_list"])

	s.Advance(2 * time.Hour) // the simulated clock moves only when told to
	fmt.Println("errcode after 2h:", get(wxtest.PathAPI, url.Values{"access_token": {token}})["errcode"])
	fmt.Println("tokens issued:", s.TokensIssued())

	// Output:
	// expires_in: 7200
	// token valid: true
	// callback IPs: [127.0.0.1]
	// errcode after 2h: 42001
	// tokens issued: 1
}

// ExampleServer_InjectFault makes the next token request fail as if WeChat
// were busy; the one after it succeeds.
func ExampleServer_InjectFault() {
	s := wxtest.New(wxtest.Options{})
	defer s.Close()
	s.InjectFault(wxtest.PathToken, wxtest.Busy(), 1)

	u := s.URL + wxtest.PathToken + "?grant_type=client_credential&appid=wx1&secret=x"
	for range 2 {
		resp, err := s.Client().Get(u)
		if err != nil {
			panic(err)
		}
		var reply struct {
			Errcode     int    `json:"errcode"`
			AccessToken string `json:"access_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&reply)
		resp.Body.Close()
		if err != nil {
			panic(err)
		}
		fmt.Printf("errcode %d, got a token: %v\n", reply.Errcode, reply.AccessToken != "")
	}
	fmt.Println("calls:", s.Calls(wxtest.PathToken), "tokens issued:", s.TokensIssued())

	// Output:
	// errcode -1, got a token: false
	// errcode 0, got a token: true
	// calls: 2 tokens issued: 1
}

// ExampleServer_Block holds a token request until the test lets it go,
// synchronised by channels rather than sleeps.
func ExampleServer_Block() {
	s := wxtest.New(wxtest.Options{})
	defer s.Close()
	g := s.Block(wxtest.PathToken)

	done := make(chan int)
	go func() {
		resp, err := s.Client().Get(s.URL + wxtest.PathToken + "?grant_type=client_credential&appid=wx1&secret=x")
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()

	<-g.Arrived() // the request is in flight, counted, and held
	fmt.Println("held:", g.Held(), "tokens issued:", s.TokensIssued())
	g.Release()
	fmt.Println("status:", <-done, "tokens issued:", s.TokensIssued())

	// Output:
	// held: 1 tokens issued: 0
	// status: 200 tokens issued: 1
}
