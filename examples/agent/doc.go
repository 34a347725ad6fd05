// Package agent holds, in readers/, the PHP, Python and Node readers of the
// file `wechatconf agent` keeps a credential in (package core/tokenfile),
// as README.md shows them, and their test: each reads the file without
// pause while an agent keeps it through several refreshes, and must never
// see a partial file or a token within its margin of expiry.
package agent
