package gateway_test

import (
	"errors"
	"testing"

	"github.com/shuanghuo/shuanghuo/gateway"
)

// FuzzParseAuthorization: the parser never panics, and what it accepts
// prints back to a header that parses to the same value.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("SH-HMAC-SHA256 AppKey=hosp-0001, Timestamp=1767225600, Nonce=3f9a1c2b7d4e8f60, SignedHeaders=content-type;host, Signature=" + exampleSig)
	f.Add("SH-HMAC-SHA256 Signature=" + exampleSig + ",SignedHeaders=,Nonce=abcdefgh,Timestamp=0,AppKey=abcdefgh")
	f.Add("SH-HMAC-SHA256 AppKey=a,,,")
	f.Fuzz(func(t *testing.T, v string) {
		a, err := gateway.ParseAuthorization(v)
		if err != nil {
			if !errors.Is(err, gateway.ErrBadAuthorization) {
				t.Fatalf("error %v does not wrap ErrBadAuthorization", err)
			}
			return
		}
		b, err := gateway.ParseAuthorization(a.String())
		if err != nil || b.String() != a.String() {
			t.Fatalf("%q: reparse gave %+v, %v", v, b, err)
		}
	})
}

// FuzzCanonicalQuery: canonicalisation never panics and is idempotent, so
// a client and the gateway that canonicalise the same query agree.
func FuzzCanonicalQuery(f *testing.F) {
	for _, s := range []string{"psn_no=1001&insuplc=320100&fee=35.50", "a=%E4%B8%AD&b=+", "&&x", "k%3D=v%26", "a=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := gateway.CanonicalQuery(raw)
		if err != nil {
			if !errors.Is(err, gateway.ErrBadQuery) {
				t.Fatalf("error %v does not wrap ErrBadQuery", err)
			}
			return
		}
		again, err := gateway.CanonicalQuery(out)
		if err != nil || again != out {
			t.Fatalf("%q -> %q -> %q, %v", raw, out, again, err)
		}
		c := gateway.Canonical{Method: "POST", Path: "/" + raw, RawQuery: raw, Nonce: "nnnnnnnn", BodySHA256: gateway.EmptyBodySHA256}
		if _, err := c.String(); err != nil {
			t.Fatal(err)
		}
	})
}
