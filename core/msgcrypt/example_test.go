package msgcrypt_test

import (
	"fmt"
	"log"
	"time"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// sampleEncrypt is the <Encrypt> of Tencent's published sample push
// (token spamtest, AppID wx2c2769f8efd9abc2).
const sampleEncrypt = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="

// The Token, EncodingAESKey and AppID come from the admin console
// (基本配置 → 服务器配置); here, Tencent's published sample.
func ExampleNew() {
	c, err := msgcrypt.New("spamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.AppID())

	_, err = msgcrypt.New("spamtest", "too short", "wx2c2769f8efd9abc2")
	fmt.Println(err)
	// Output:
	// wx2c2769f8efd9abc2
	// msgcrypt: EncodingAESKey must be 43 base64 characters decoding to 32 bytes
}

// Decrypting the <Encrypt> of Tencent's sample push.
func ExampleCrypter_Decrypt() {
	c, _ := msgcrypt.New("spamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2")
	msg, err := c.Decrypt(sampleEncrypt)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(msg))
	// Output:
	// <xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>
	// <FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>
	// <CreateTime>1409735668</CreateTime>
	// <MsgType><![CDATA[text]]></MsgType>
	// <Content><![CDATA[abcdteT]]></Content>
	// <MsgId>6054768590064713728</MsgId>
	// </xml>
}

// Encrypt uses a fresh random prefix each time; Decrypt reverses it.
func ExampleCrypter_Encrypt() {
	c, _ := msgcrypt.New("spamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2")
	enc, err := c.Encrypt([]byte("<xml><Content><![CDATA[你好]]></Content></xml>"))
	if err != nil {
		log.Fatal(err)
	}
	msg, _ := c.Decrypt(enc)
	fmt.Println(string(msg))
	// Output: <xml><Content><![CDATA[你好]]></Content></xml>
}

// With the random prefix fixed the ciphertext is reproducible: for tests only.
func ExampleCrypter_EncryptWithRandom() {
	c, _ := msgcrypt.New("spamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2")
	enc, _ := c.EncryptWithRandom([16]byte([]byte("0123456789abcdef")), []byte("hello"))
	fmt.Println(enc)
	// Output: Q3stYC6hdFzMh9T8HCvyDH0IImU4dvhWGYnkotL3c3VdfVoMBb5IWK0IqbHbqhJn3xaaj2JH3IURqum2/3Lkdw==
}

// DecryptMessage does what a server does with an encrypted push: read the
// <Encrypt> from the body, verify msg_signature, decrypt.
func ExampleCrypter_DecryptMessage() {
	c, _ := msgcrypt.New("spamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2")
	body := []byte("<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[" + sampleEncrypt + "]]></Encrypt></xml>")
	// From the push URL: ?signature=…&timestamp=1409735669&nonce=1320562132&encrypt_type=aes&msg_signature=5d19…
	msg, err := c.DecryptMessage("5d197aaffba7e9b25a30732f161a50dee96bd5fa", "1409735669", "1320562132", body)
	if err != nil {
		log.Fatal(err)
	}
	if err := msgcrypt.CheckTimestamp("1409735669", time.Unix(1409735700, 0), 5*time.Minute); err != nil {
		log.Fatal(err) // a replay
	}
	fmt.Println(len(msg), "bytes")

	_, err = c.DecryptMessage("0000000000000000000000000000000000000000", "1409735669", "1320562132", body)
	fmt.Println(err)
	// Output:
	// 280 bytes
	// msgcrypt: signature mismatch
}

// EncryptMessage builds the encrypted reply envelope.
func ExampleCrypter_EncryptMessage() {
	c, _ := msgcrypt.New("spamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2")
	out, err := c.EncryptMessage([]byte("<xml><MsgType><![CDATA[text]]></MsgType></xml>"), "1409735670", "1873460721")
	if err != nil {
		log.Fatal(err)
	}
	env, _ := msgcrypt.ParseEnvelope(out)
	ok := msgcrypt.VerifyMsgSignature("spamtest", env.TimeStamp, env.Nonce, env.Encrypt, env.MsgSignature)
	fmt.Println(env.TimeStamp, env.Nonce, ok)
	// Output: 1409735670 1873460721 true
}

// The URL signature of a push or a URL verification (vector E).
func ExampleSignature() {
	fmt.Println(msgcrypt.Signature("AAAAA", "1714037059", "486452656"))
	// Output: 899cf89e464efb63f54ddac96b0a0a235f53aa78
}

// The msg_signature of Tencent's sample push.
func ExampleMsgSignature() {
	fmt.Println(msgcrypt.MsgSignature("spamtest", "1409735669", "1320562132", sampleEncrypt))
	// Output: 5d197aaffba7e9b25a30732f161a50dee96bd5fa
}

// URL verification: check signature, then echo echostr.
func ExampleVerifySignature() {
	ok := msgcrypt.VerifySignature("spamtest", "1409735669", "1320562132", "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a")
	forged := msgcrypt.VerifySignature("spamtest", "1409735669", "1320562133", "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a")
	fmt.Println(ok, forged)
	// Output: true false
}

// VerifyMsgSignature checks an encrypted push's msg_signature.
func ExampleVerifyMsgSignature() {
	ok := msgcrypt.VerifyMsgSignature("spamtest", "1409735669", "1320562132", sampleEncrypt, "5d197aaffba7e9b25a30732f161a50dee96bd5fa")
	fmt.Println(ok)
	// Output: true
}

// Receiving Tencent's sample push during a key change: the Keyring tries
// the current key, then the previous one, and reports which worked.
func ExampleKeyring_Open() {
	old, _ := msgcrypt.New("spamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2")
	cur, _ := msgcrypt.New("spamtest", "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut", "wx2c2769f8efd9abc2")
	keys := msgcrypt.Keyring{
		Current: cur, Previous: old,
		Window: msgcrypt.DefaultTimestampWindow,
		Now:    func() time.Time { return time.Unix(1409735669, 0) }, // the push's time
	}
	// The query of the push: msg_signature, timestamp, nonce; the body's <Encrypt>.
	plain, used, previous, err := keys.Open("5d197aaffba7e9b25a30732f161a50dee96bd5fa", "1409735669", "1320562132", sampleEncrypt)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(plain) > 0, used == old, previous)

	// The reply goes out encrypted with the key that worked.
	reply, _ := used.EncryptMessage([]byte("<xml>…</xml>"), "1409735670", msgcrypt.NewNonce())
	env, _ := msgcrypt.ParseEnvelope(reply)
	fmt.Println(env.TimeStamp)
	// Output:
	// true true true
	// 1409735670
}
