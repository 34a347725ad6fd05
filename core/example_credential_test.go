package core_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/wechatconf/wechatconf/core"
)

// A credential kind of your own, on the engine every kind runs on: its
// key, its fetch and what its API says when it rejects a token. Here the
// kind is a token of a made-up "partner" API (an httptest server) that
// answers errcode 401001 for a token it no longer accepts; the same three
// steps make WeCom's access_token (package wecom) or any other WeChat
// token. Two Credentials on one store stand for two processes of a fleet.
func ExampleNewCredential() {
	partner := newPartnerAPI()
	defer partner.Close()
	ctx := context.Background()

	// 1. What the API's errcodes mean.
	codes := &core.Codes{Platform: "partner", InvalidCredential: core.CodeSet{401001}, Temporary: core.CodeSet{503001}}
	secret := core.NewSecret("partner-client-secret")
	api, err := core.NewAPI(core.APIConfig{BaseURL: partner.URL, Codes: codes, Secrets: []core.Secret{secret}})
	if err != nil {
		panic(err)
	}
	store := core.NewMemoryStore() // shared by the fleet: Redis, PostgreSQL, etcd, …

	newProcess := func() *core.API {
		// 2. The key and the fetch.
		cred, err := core.NewCredential(core.CredentialConfig{
			Name:  "partner_token",
			Key:   "wechatconf/partner/client-42/partner_token",
			Store: store,
			Fetch: func(ctx context.Context, _ core.FetchRequest) (core.Token, error) {
				return api.Issue(ctx, http.MethodGet, "/oauth/token", url.Values{"client_secret": {secret.Reveal()}}, nil, "access_token")
			},
			// 3. Rejects is left nil: core.IsInvalidCredential, which
			// follows codes through the *APIError.
		})
		if err != nil {
			panic(err)
		}
		return api.WithCredential(cred, "access_token")
	}
	fleet := []*core.API{newProcess(), newProcess()}

	var wg sync.WaitGroup
	for _, p := range fleet {
		for range 100 {
			wg.Go(func() {
				if err := p.Do(ctx, http.MethodGet, "/v1/me", nil, nil, nil); err != nil {
					fmt.Println(err)
				}
			})
		}
	}
	wg.Wait()
	fmt.Println("token fetches for 200 calls in two processes:", partner.fetches.Load())

	partner.revokeAll() // the partner ends every token early
	for _, p := range fleet {
		if err := p.Do(ctx, http.MethodGet, "/v1/me", nil, nil, nil); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("after a rejection:", partner.fetches.Load())
	// Output:
	// token fetches for 200 calls in two processes: 1
	// after a rejection: 2
}

// partnerAPI is the made-up API of ExampleNewCredential.
type partnerAPI struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	valid   map[string]bool
}

func newPartnerAPI() *partnerAPI {
	p := &partnerAPI{valid: map[string]bool{}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch r.URL.Path {
		case "/oauth/token":
			tok := "partner-token-" + strconv.FormatInt(p.fetches.Add(1), 10)
			p.valid[tok] = true
			fmt.Fprintf(w, `{"access_token":%q,"expires_in":3600}`, tok)
		case "/v1/me":
			if !p.valid[r.URL.Query().Get("access_token")] {
				fmt.Fprint(w, `{"errcode":401001,"errmsg":"token revoked"}`)
				return
			}
			fmt.Fprint(w, `{"errcode":0,"name":"client-42"}`)
		}
	}))
	return p
}

func (p *partnerAPI) revokeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.valid)
}
