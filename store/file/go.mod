module github.com/wechatconf/wechatconf/store/file

go 1.25.0

require (
	github.com/gofrs/flock v0.13.0
	github.com/wechatconf/wechatconf/conformance v0.1.0
	github.com/wechatconf/wechatconf/core v0.1.0
	golang.org/x/sys v0.37.0
)

replace (
	github.com/wechatconf/wechatconf/conformance => ../../conformance
	github.com/wechatconf/wechatconf/core => ../../core
)
