module github.com/wechatconf/wechatconf/contrib/silenceper

go 1.25.0

require (
	github.com/silenceper/wechat/v2 v2.1.10
	github.com/wechatconf/wechatconf/core v0.1.0
)

require (
	github.com/bradfitz/gomemcache v0.0.0-20220106215444-fb4bf637b56d // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	github.com/go-redis/redis/v8 v8.11.5 // indirect
	github.com/sirupsen/logrus v1.9.4 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/tidwall/gjson v1.14.1 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.0 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)

replace (
	github.com/wechatconf/wechatconf/conformance => ../../conformance
	github.com/wechatconf/wechatconf/conformance/containers => ../../conformance/containers
	github.com/wechatconf/wechatconf/core => ../../core
	github.com/wechatconf/wechatconf/store/redis => ../../store/redis
)
