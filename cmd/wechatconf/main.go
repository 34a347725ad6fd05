// Command wechatconf is the operator's view of the WeChat credentials a
// fleet keeps in its shared store (file, Redis, PostgreSQL, etcd): read,
// list, inspect, watch, refresh or rotate them, by AppID or raw key,
// without printing a value unless asked. It opens any store by URL, with
// the token server's parser (package cmd/storeurl).
//
//	wechatconf get     APPID [access_token|jsapi_ticket|wx_card_ticket] | --key KEY [--reveal]
//	wechatconf ls      [ACCOUNT] [--all-prefixes]         credentials by AppID, kind, platform; never values
//	wechatconf inspect APPID | --wecom CORPID/AGENTID | --component COMPONENT_APPID [APPID]
//	                   | --suite SUITE_ID [CORPID] | --provider CORPID
//	wechatconf watch   APPID [KIND] | --key KEY [--interval 2s] [--count N]
//	wechatconf refresh APPID [--yes]                      fetch if absent or expired; a valid one only with --yes
//	wechatconf force   APPID --yes                        rotate: the old token stops working at once
//	wechatconf agent   APPID --out PATH [--kind KIND]     keep a credential in a file for PHP, Python, Node
//	wechatconf completion bash|zsh|fish|powershell        shell completion script
//	wechatconf help [COMMAND]
//
// Global flags, before or after the command: --store URL (or
// WECHATCONF_STORE; no password in a flag), --prefix KEYPREFIX (default
// wechatconf), --base-url URL, --classic, --timeout 30s, --json.
// WECHAT_APPSECRET (refresh, force, agent) comes from the environment only.
//
// Exit codes: 0 done, 1 expired, 2 usage error or failure, 3 not found or
// withdrawn (the error says where it looked and what is nearby), 4 held
// back by a limit (retry later). The commands, their flags and the exit
// codes in full: the package documentation of cmd/internal/cli, and
// wechatconf help.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
