package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

// selfSigned makes an ECDSA P-256 certificate for 127.0.0.1, PEM encoded.
func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// An https listener's private key is a secret like a password: no answer shows it — the
// resource, its listeners, the running balancer's kept versions, the audit log — nor does the
// database hold it in plain text; a GET-then-PUT keeps it, and the listener still serves TLS.
func TestBalancerTLSKeyIsASecret(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin, dir := "shk_tlskey0123456789abcdef", t.TempDir()
	c, _ := openCenter(t, ctx, dir, admin, config.Default().MaxArtifactBytes)
	root := rest{t, c.URL(), admin}
	team := newTenant(t, root, "team-a")
	grantLoopback(t, root, team.id)
	be := startBackend(t, "app", "127.0.0.1:0")
	certPEM, keyPEM := selfSigned(t)
	keyLine := strings.Split(keyPEM, "\n")[1] // a line of the key's base64, as it would appear anywhere
	port := freeTCP(t, "127.0.0.1")
	spec := map[string]any{"name": "tls", "address": "127.0.0.1",
		"listeners": []any{map[string]any{"name": "web", "port": port, "protocol": "https", "default_group": "app",
			"tls": map[string]any{"certificates": []any{map[string]any{"cert_pem": certPEM, "key_pem": keyPEM}}}}},
		"groups": []any{map[string]any{"name": "app", "servers": []any{map[string]any{"address": "127.0.0.1", "port": atoi(be.port())}}}}}
	var res struct{ ID string }
	raw := team.api.ok(201, "POST", "/api/v1/balancers", map[string]any{"spec": spec}, &res)
	base := "/api/v1/balancers/" + res.ID
	team.api.ok(200, "POST", base+"/push", nil, nil)

	var got struct{ Spec json.RawMessage }
	seen := []string{string(raw), string(team.api.ok(200, "GET", base, nil, &got)),
		string(team.api.ok(200, "GET", base+"/listeners", nil, nil)),
		string(team.api.ok(200, "GET", base+"/versions", nil, nil)),
		string(root.ok(200, "GET", "/api/v1/audit?kind=balancer", nil, nil))}
	for i, s := range seen {
		require.NotContains(t, s, keyLine, "answer %d shows the private key", i)
	}
	require.Contains(t, string(got.Spec), `"key_pem":"(hidden)"`)
	require.NotContains(t, string(rawStore(t, dir)), keyLine, "the database holds the key in plain text")

	// A GET-then-PUT keeps the key: the pushed listener still serves TLS.
	team.api.ok(200, "PUT", base, map[string]any{"spec": got.Spec}, nil)
	team.api.ok(200, "POST", base+"/push", nil, nil)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
}
