package redisstore

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts, each wrapped once: Script.Run sends EVALSHA and falls
// back to EVAL when the server does not have the script cached (NOSCRIPT),
// after a restart or a failover for example. Every script touches only keys
// of one hash tag, so it runs on one Cluster slot. Each file's header says
// what its KEYS and ARGV are.
var (
	//go:embed lua/acquire.lua
	acquireLua    string
	acquireScript = redis.NewScript(acquireLua)

	//go:embed lua/write.lua
	writeLua    string
	writeScript = redis.NewScript(writeLua)

	//go:embed lua/set.lua
	setLua    string
	setScript = redis.NewScript(setLua)

	//go:embed lua/release.lua
	releaseLua    string
	releaseScript = redis.NewScript(releaseLua)
)

// The claim scripts (see claims.go). claim.lua only runs on a server that
// refuses SET … NX PX … GET, which does the same in one command.
var (
	//go:embed lua/claim.lua
	claimLua    string
	claimScript = redis.NewScript(claimLua)

	//go:embed lua/swapclaim.lua
	swapClaimLua    string
	swapClaimScript = redis.NewScript(swapClaimLua)
)
