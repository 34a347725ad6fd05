package wxtest

import (
	"bytes"
	"encoding/xml"
	"net/url"
	"strconv"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// EncryptPush returns the query parameters and body of a message push in
// XML, encrypted (safe mode, 安全模式), as WeChat sends it to the server
// URL of an Official Account or Mini Program, or to an Open Platform
// component's message URL for one of its authorizers: the body is
// <xml><ToUserName>…</ToUserName><Encrypt>…</Encrypt></xml> and the query
// carries signature, timestamp, nonce, encrypt_type=aes and
// msg_signature. plaintext is the XML message (<xml> with ToUserName,
// FromUserName, CreateTime, MsgType, …), whose ToUserName is copied into
// the envelope; token and encodingAESKey are the server configuration's;
// receiveID is the AppID the plaintext names at its end (the account's
// AppID, or the component_appid for an authorizer's push). timestamp is
// Unix seconds, e.g. Server.Now().Unix(); nonce is any string
// (msgcrypt.NewNonce). WeChat sends every retry of a push with the same
// query and body. It fails only on a malformed encodingAESKey.
func EncryptPush(token, encodingAESKey, receiveID string, plaintext []byte, timestamp int64, nonce string) (query url.Values, body []byte, err error) {
	enc, head, err := encryptXML(token, encodingAESKey, receiveID, plaintext)
	if err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	b.WriteString("<xml><ToUserName><![CDATA[")
	xml.EscapeText(&b, []byte(head.ToUserName)) // a bytes.Buffer never fails
	b.WriteString("]]></ToUserName><Encrypt><![CDATA[")
	b.WriteString(enc) // base64: nothing to escape
	b.WriteString("]]></Encrypt></xml>")
	ts := strconv.FormatInt(timestamp, 10)
	query = url.Values{
		"signature":     {msgcrypt.Signature(token, ts, nonce)},
		"timestamp":     {ts},
		"nonce":         {nonce},
		"encrypt_type":  {"aes"},
		"msg_signature": {msgcrypt.MsgSignature(token, ts, nonce, enc)},
	}
	return query, b.Bytes(), nil
}

// EncryptWeComCallback returns the query parameters and body of a WeCom
// (企业微信) callback, as WeCom sends it to a self-built app's callback URL
// (every callback is encrypted): the body is
// <xml><ToUserName>…</ToUserName><Encrypt>…</Encrypt><AgentID>…</AgentID></xml>
// and the query carries msg_signature, timestamp and nonce. plaintext is
// the XML callback (<xml> with ToUserName — the CorpID —, FromUserName,
// CreateTime, MsgType, AgentID, …), whose ToUserName and AgentID are
// copied into the envelope; token and encodingAESKey are the app's
// callback settings; receiveID is the CorpID (or a third-party app's
// SuiteID). timestamp is Unix seconds; nonce is any string. It fails only
// on a malformed encodingAESKey.
func EncryptWeComCallback(token, encodingAESKey, receiveID string, plaintext []byte, timestamp int64, nonce string) (query url.Values, body []byte, err error) {
	enc, head, err := encryptXML(token, encodingAESKey, receiveID, plaintext)
	if err != nil {
		return nil, nil, err
	}
	query, body = weComEnvelope(token, enc, head.ToUserName, head.AgentID, timestamp, nonce)
	return query, body, nil
}

// weComEnvelope wraps the ciphertext enc in WeCom's callback envelope
// <xml><ToUserName>…</ToUserName><Encrypt>…</Encrypt><AgentID>…</AgentID></xml>
// and returns it with its query: msg_signature, timestamp and nonce. It is
// shared by EncryptWeComCallback and the vendor pushes (wecomvendor.go).
func weComEnvelope(token, enc, toUserName, agentID string, timestamp int64, nonce string) (url.Values, []byte) {
	var b bytes.Buffer
	b.WriteString("<xml><ToUserName><![CDATA[")
	xml.EscapeText(&b, []byte(toUserName)) // a bytes.Buffer never fails
	b.WriteString("]]></ToUserName><Encrypt><![CDATA[")
	b.WriteString(enc) // base64: nothing to escape
	b.WriteString("]]></Encrypt><AgentID><![CDATA[")
	xml.EscapeText(&b, []byte(agentID))
	b.WriteString("]]></AgentID></xml>")
	ts := strconv.FormatInt(timestamp, 10)
	query := url.Values{
		"msg_signature": {msgcrypt.MsgSignature(token, ts, nonce, enc)},
		"timestamp":     {ts},
		"nonce":         {nonce},
	}
	return query, b.Bytes()
}

// pushHead is the part of a plaintext push the envelopes copy.
type pushHead struct {
	ToUserName string `xml:"ToUserName"`
	AgentID    string `xml:"AgentID"`
}

// encryptXML encrypts plaintext for receiveID and reads the fields the
// envelope copies (left empty when plaintext is not XML: it may be
// anything).
func encryptXML(token, encodingAESKey, receiveID string, plaintext []byte) (string, pushHead, error) {
	c, err := msgcrypt.New(token, encodingAESKey, receiveID)
	if err != nil {
		return "", pushHead{}, err
	}
	var head pushHead
	_ = xml.Unmarshal(plaintext, &head)
	enc, err := c.Encrypt(plaintext)
	if err != nil {
		return "", pushHead{}, err
	}
	return enc, head, nil
}
