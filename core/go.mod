module github.com/wechatconf/wechatconf/core

go 1.25.0
