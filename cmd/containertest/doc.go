// Package containertest holds the tests of the commands (module
// github.com/wechatconf/wechatconf/cmd) that need real store servers:
// wechatconf-tokenserver over Redis (two servers, one store), the
// wechatconf CLI's flows over Redis, PostgreSQL and etcd (clitest.Flow;
// on Redis also a refresh's held lock and the not-found hint that finds a
// key under another store prefix), and package
// storeurl opening every URL form against Redis (standalone, Sentinel,
// Cluster), PostgreSQL and etcd. The servers are started in Docker by
// github.com/wechatconf/wechatconf/conformance/containers (testcontainers-go).
//
// It is a module of its own so that testcontainers-go and the Docker client
// stay out of the module graph of the published cmd module (whose commands
// are installed with go install …@version, and whose package storeurl users
// import). The tests run the commands in-process through their internal
// packages (cmd/internal/…), which this module may import because its path
// is under cmd/. It is not published and has no API; it is listed in
// go.work, so scripts/test runs it with every other module.
package containertest
