module github.com/wechatconf/wechatconf/conformance

go 1.25.0

require github.com/wechatconf/wechatconf/core v0.1.0

replace github.com/wechatconf/wechatconf/core => ../core
