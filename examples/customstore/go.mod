module github.com/wechatconf/wechatconf/examples/customstore

go 1.25.0

require (
	github.com/wechatconf/wechatconf/conformance v0.1.0
	github.com/wechatconf/wechatconf/core v0.1.0
	modernc.org/sqlite v1.59.0
)

require (
	github.com/dustin/go-humanize v1.0.1 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/mattn/go-isatty v0.0.24 // indirect
	github.com/ncruces/go-strftime v1.0.0 // indirect
	github.com/remyoudompheng/bigfft v0.0.0-20230129092748-24d4a6f8daec // indirect
	golang.org/x/sys v0.47.0 // indirect
	modernc.org/libc v1.75.7 // indirect
	modernc.org/mathutil v1.7.1 // indirect
	modernc.org/memory v1.12.1 // indirect
)

replace (
	github.com/wechatconf/wechatconf/conformance => ../../conformance
	github.com/wechatconf/wechatconf/core => ../../core
)
