package core

import "fmt"

// Platform is the kind of WeChat account a credential belongs to: the
// "platform" attribute of every event a credential logs (and
// contrib/otel's "wechatconf.platform" on every metric). It tells apart
// credentials that share a kind name — an Official Account's access_token
// and a WeCom app's are both "access_token" — and, having a handful of
// values, keeps a metric split by it low in cardinality.
//
// A Conf cannot tell from its AppID whether it is an Official Account or a
// Mini Program: Config.Platform says so (default PlatformOfficialAccount).
// wecom.App and package openplatform set theirs; a credential of your own
// (NewCredential) sets CredentialConfig.Platform, default PlatformCustom.
// The platform changes nothing but the attribute: it selects no API.
type Platform string

// The platforms. The values are an interface (events and metrics are
// queried by them): they change only with a new major version.
const (
	// PlatformOfficialAccount is an Official Account (公众号): a Conf's
	// default.
	PlatformOfficialAccount Platform = "official_account"
	// PlatformMiniProgram is a Mini Program (小程序): a Conf with
	// Config.Platform set to it.
	PlatformMiniProgram Platform = "mini_program"
	// PlatformWeCom is a WeCom (企业微信) app's credentials (wecom.App).
	PlatformWeCom Platform = "wecom"
	// PlatformOpenPlatformComponent is an Open Platform component's own
	// credentials (第三方平台: component_access_token, its verify ticket).
	PlatformOpenPlatformComponent Platform = "open_platform_component"
	// PlatformOpenPlatformAuthorizer is an Open Platform authorizer's
	// credentials (authorizer_access_token and the tickets fetched with
	// it, whether the authorizer is an Official Account or a Mini
	// Program).
	PlatformOpenPlatformAuthorizer Platform = "open_platform_authorizer"
	// PlatformWeComSuite is a WeCom vendor's suite (企业微信服务商 third-party
	// or custom-developed app template): its suite_access_token and
	// suite_ticket (package wecomvendor).
	PlatformWeComSuite Platform = "wecom_suite"
	// PlatformWeComAuthCorp is a corp that installed a WeCom vendor's app:
	// the corp's access_token (get_corp_token, or gettoken with a
	// custom-developed app's permanent_code), its permanent_code record and
	// the tickets fetched with the token (package wecomvendor).
	PlatformWeComAuthCorp Platform = "wecom_auth_corp"
	// PlatformWeComProvider is a WeCom vendor's provider_access_token
	// (get_provider_token; package wecomvendor).
	PlatformWeComProvider Platform = "wecom_provider"
	// PlatformCustom is the default of CredentialConfig.Platform: a
	// credential of your own whose config does not say.
	PlatformCustom Platform = "custom"
)

// checkPlatform reports an error for a Config.Platform that is not one of
// the constants ("" is the default, and fine).
func checkPlatform(p Platform) error {
	switch p {
	case "", PlatformOfficialAccount, PlatformMiniProgram, PlatformWeCom,
		PlatformOpenPlatformComponent, PlatformOpenPlatformAuthorizer,
		PlatformWeComSuite, PlatformWeComAuthCorp, PlatformWeComProvider, PlatformCustom:
		return nil
	}
	return fmt.Errorf("wechatconf: unknown Config.Platform %q (a Conf is %q, the default, or %q; the others are set by wecom, openplatform and wecomvendor: %q, %q, %q, %q, %q, %q, %q)",
		string(p), PlatformOfficialAccount, PlatformMiniProgram, PlatformWeCom, PlatformOpenPlatformComponent, PlatformOpenPlatformAuthorizer,
		PlatformWeComSuite, PlatformWeComAuthCorp, PlatformWeComProvider, PlatformCustom)
}
