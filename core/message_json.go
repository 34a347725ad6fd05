package core

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/url"
	"strconv"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// jsonHeader is the part of a JSON push that Message keeps, plus the
// ciphertext of an encrypted one.
type jsonHeader struct {
	ToUserName   string    `json:"ToUserName"`
	FromUserName string    `json:"FromUserName"`
	CreateTime   flexInt64 `json:"CreateTime"`
	MsgType      string    `json:"MsgType"`
	Event        string    `json:"Event"`
	MsgID        flexInt64 `json:"MsgId"`
	Encrypt      string    `json:"Encrypt"`
}

func (h jsonHeader) messageHeader() messageHeader {
	return messageHeader{ToUserName: h.ToUserName, FromUserName: h.FromUserName, CreateTime: int64(h.CreateTime), MsgType: h.MsgType, Event: h.Event, MsgID: h.msgID()}
}

func (h jsonHeader) msgID() string {
	if h.MsgID == 0 {
		return ""
	}
	return strconv.FormatInt(int64(h.MsgID), 10)
}

// flexInt64 reads a JSON number or a string holding a decimal integer, as
// CreateTime and MsgId may come either way.
type flexInt64 int64

func (n *flexInt64) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			return nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%.20q is not an integer", s)
	}
	*n = flexInt64(v)
	return nil
}

// isJSON reports whether a push body is in the JSON data format: its first
// non-space byte is '{'.
func isJSON(body []byte) bool {
	t := bytes.TrimLeft(body, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// readJSONMessage is readMessage for a body in the JSON data format; the
// signature of a plaintext push has been checked.
func (c *Conf) readJSONMessage(query url.Values, raw []byte, encrypted bool) (*Message, error) {
	var root jsonHeader
	if err := msgcrypt.DecodeJSON(raw, &root); err != nil {
		return nil, err
	}
	if !encrypted {
		m := c.newMessage(raw, root.messageHeader(), nil, false)
		m.JSON = true
		return m, nil
	}
	if root.Encrypt == "" {
		return nil, fmt.Errorf("%w: encrypt_type=aes but no \"Encrypt\"", msgcrypt.ErrNoEncrypt)
	}
	plain, used, previous, err := c.decryptPush(query, root.Encrypt)
	if err != nil {
		return nil, err
	}
	var inner jsonHeader
	if err := msgcrypt.DecodeJSON(plain, &inner); err != nil {
		return nil, fmt.Errorf("decrypted message: %w", err)
	}
	m := c.newMessage(plain, inner.messageHeader(), used, previous)
	m.JSON = true
	return m, nil
}

// Unmarshal decodes the plaintext message into v: with encoding/json for a
// push in the JSON data format (m.JSON), with encoding/xml otherwise.
func (m *Message) Unmarshal(v any) error {
	if m.JSON {
		return json.Unmarshal(m.XML, v)
	}
	return xml.Unmarshal(m.XML, v)
}
