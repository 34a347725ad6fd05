package cli

import "github.com/wechatconf/wechatconf/core/tokenfile"

// SetAgentWritten makes agent call f after each write of its file, until
// the returned func restores the default. Not for parallel tests.
func SetAgentWritten(f func(tokenfile.Record)) (restore func()) {
	agentWritten = f
	return func() { agentWritten = nil }
}
