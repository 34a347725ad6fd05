module github.com/wechatconf/wechatconf/tools/benchreport

go 1.25.0
