package gateway_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/gateway"
)

// The worked example of doc.go: a known-answer vector, checked also with
//
//	printf '<string to sign>' | openssl dgst -sha256 -hmac 2b6f0c8e4a1d7b3f9e5c0a2d4f6b8e1c
const (
	exampleSecret = "2b6f0c8e4a1d7b3f9e5c0a2d4f6b8e1c"
	exampleBody   = `{"psn_no":"1001","amount":"35.50"}`
	exampleSTS    = "SH-HMAC-SHA256\nPOST\n/api/outpatient/settle\nfee=35.50&insuplc=320100&psn_no=1001\n1767225600\n3f9a1c2b7d4e8f60\n" +
		"aba7628f2a676de613c6cc9ea7540181c2ad487dcb3dc61c591134c479222855\ncontent-type;host\ncontent-type:application/json\nhost:gw.ybj.example:8443"
	exampleSig = "3a4bcffa02e102f0f1c0816e13758f7eeffff96370c5f22b50e56b72577e270a"
)

func TestWorkedExample(t *testing.T) {
	c := gateway.Canonical{
		Method: "POST", Path: "/api/outpatient/settle", RawQuery: "psn_no=1001&insuplc=320100&fee=35.50",
		Timestamp: 1767225600, Nonce: "3f9a1c2b7d4e8f60", BodySHA256: gateway.BodySHA256([]byte(exampleBody)),
		SignedHeaders: []string{"content-type", "host"}, HeaderValues: []string{"application/json", "gw.ybj.example:8443"},
	}
	sts, err := c.String()
	if err != nil {
		t.Fatal(err)
	}
	if sts != exampleSTS {
		t.Fatalf("string to sign:\n%s\nwant:\n%s", sts, exampleSTS)
	}
	if sig := gateway.Sign(exampleSecret, sts); sig != exampleSig {
		t.Fatalf("signature %s, want %s", sig, exampleSig)
	}

	// The shipped Signer produces the same header for the same request.
	req, _ := http.NewRequest("POST", "http://gw.ybj.example:8443/api/outpatient/settle?psn_no=1001&insuplc=320100&fee=35.50", strings.NewReader(exampleBody))
	req.Header.Set("Content-Type", "application/json")
	s := &gateway.Signer{AppKey: "hosp-0001", Secret: exampleSecret,
		Now: func() time.Time { return time.Unix(1767225600, 0) }, Nonce: func() string { return "3f9a1c2b7d4e8f60" }}
	if err := s.Sign(req); err != nil {
		t.Fatal(err)
	}
	want := "SH-HMAC-SHA256 AppKey=hosp-0001, Timestamp=1767225600, Nonce=3f9a1c2b7d4e8f60, SignedHeaders=content-type;host, Signature=" + exampleSig
	if got := req.Header.Get("Authorization"); got != want {
		t.Fatalf("Authorization:\n%s\nwant:\n%s", got, want)
	}
	body, _ := io.ReadAll(req.Body)
	if string(body) != exampleBody {
		t.Fatalf("body after signing %q", body)
	}
}

func TestCanonicalQuery(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"", ""},
		{"b=2&a=1", "a=1&b=2"},
		{"a=2&a=1&a=10", "a=1&a=10&a=2"},
		{"a", "a="},
		{"a=", "a="},
		{"&&a=1&", "a=1"},
		{"q=a+b", "q=a%20b"},
		{"q=a%20b", "q=a%20b"},
		{"q=%e4%b8%ad", "q=%E4%B8%AD"},
		{"q=中", "q=%E4%B8%AD"},
		{"k%3D=v%26", "k%3D=v%26"},
		{"x=~-._", "x=~-._"},
		{"x=a=b", "x=a%3Db"},
		{"B=1&a=1", "B=1&a=1"},
	} {
		got, err := gateway.CanonicalQuery(tc.raw)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalQuery(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
	for _, raw := range []string{"a=%", "a=%zz", "%g=1"} {
		if _, err := gateway.CanonicalQuery(raw); !errors.Is(err, gateway.ErrBadQuery) {
			t.Errorf("CanonicalQuery(%q) error %v, want ErrBadQuery", raw, err)
		}
	}
}

func TestCanonicalString(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    gateway.Canonical
		want string
	}{
		{"empty path and no headers", gateway.Canonical{Method: "get", Timestamp: 1, Nonce: "nnnnnnnn", BodySHA256: gateway.EmptyBodySHA256},
			"SH-HMAC-SHA256\nGET\n/\n\n1\nnnnnnnnn\n" + gateway.EmptyBodySHA256 + "\n"},
		{"header values trimmed", gateway.Canonical{Method: "POST", Path: "/a%2Fb", Timestamp: 2, Nonce: "nnnnnnnn", BodySHA256: "x",
			SignedHeaders: []string{"x-a"}, HeaderValues: []string{" v1,v2\t"}},
			"SH-HMAC-SHA256\nPOST\n/a%2Fb\n\n2\nnnnnnnnn\nx\nx-a\nx-a:v1,v2"},
	} {
		got, err := tc.c.String()
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v\nwant %q", tc.name, got, err, tc.want)
		}
	}
}

func TestParseAuthorization(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	good := "SH-HMAC-SHA256 AppKey=hosp-0001, Timestamp=1767225600, Nonce=3f9a1c2b7d4e8f60, SignedHeaders=content-type;host, Signature=" + sig
	a, err := gateway.ParseAuthorization(good)
	if err != nil {
		t.Fatal(err)
	}
	if a.AppKey != "hosp-0001" || a.Timestamp != 1767225600 || a.Nonce != "3f9a1c2b7d4e8f60" ||
		strings.Join(a.SignedHeaders, ";") != "content-type;host" || a.Signature != sig || a.String() != good {
		t.Fatalf("parsed %+v", a)
	}
	// Any order, no spaces.
	if _, err := gateway.ParseAuthorization("SH-HMAC-SHA256 Signature=" + sig + ",SignedHeaders=,Nonce=abcdefgh,Timestamp=0,AppKey=abcdefgh"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"",
		"Bearer x",
		"SH-HMAC-SHA256",
		strings.Replace(good, "AppKey=hosp-0001", "AppKey=short", 1),
		strings.Replace(good, "Timestamp=1767225600", "Timestamp=-1", 1),
		strings.Replace(good, "Timestamp=1767225600", "Timestamp=+1", 1),
		strings.Replace(good, "Timestamp=1767225600", "Timestamp=1e9", 1),
		strings.Replace(good, "Nonce=3f9a1c2b7d4e8f60", "Nonce=short", 1),
		strings.Replace(good, "Nonce=3f9a1c2b7d4e8f60", "Nonce=has space!", 1),
		strings.Replace(good, "content-type;host", "host;content-type", 1),
		strings.Replace(good, "content-type;host", "Host", 1),
		strings.Replace(good, "content-type;host", "host;host", 1),
		strings.Replace(good, "content-type;host", "a;;b", 1),
		strings.Replace(good, sig, strings.ToUpper(sig), 1),
		strings.Replace(good, sig, sig[:62], 1),
		strings.Replace(good, sig, strings.Repeat("zz", 32), 1),
		good + ", Nonce=abcdefgh",
		good + ", Extra=1",
		good + ", novalue",
		strings.Replace(good, ", Signature="+sig, "", 1),
	} {
		if _, err := gateway.ParseAuthorization(bad); !errors.Is(err, gateway.ErrBadAuthorization) {
			t.Errorf("ParseAuthorization(%q) = %v, want ErrBadAuthorization", bad, err)
		}
	}
}

func TestSignerTransport(t *testing.T) {
	var got http.Header
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		b, _ := io.ReadAll(r.Body)
		body = string(b)
	}))
	defer srv.Close()
	s := &gateway.Signer{AppKey: "hosp-0001", Secret: exampleSecret}
	c := &http.Client{Transport: s.Transport(nil)}
	req, _ := http.NewRequest("PUT", srv.URL+"/x?b=1&a=2", strings.NewReader("payload"))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.Header.Get("Authorization") != "" {
		t.Fatal("the caller's request was modified")
	}
	a, err := gateway.ParseAuthorization(got.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if body != "payload" || strings.Join(a.SignedHeaders, ";") != "content-type;host" {
		t.Fatalf("body %q, signed %v", body, a.SignedHeaders)
	}
	// The server side recomputes the same signature.
	cn := gateway.Canonical{Method: "PUT", Path: "/x", RawQuery: "b=1&a=2", Timestamp: a.Timestamp, Nonce: a.Nonce,
		BodySHA256: gateway.BodySHA256([]byte("payload")), SignedHeaders: a.SignedHeaders,
		HeaderValues: []string{"text/plain", strings.TrimPrefix(srv.URL, "http://")}}
	sts, _ := cn.String()
	if gateway.Sign(exampleSecret, sts) != a.Signature {
		t.Fatal("signature does not verify")
	}
}
