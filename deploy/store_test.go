package deploy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shuanghuo/shuanghuo/deploy"
)

// testSecrets "seals" by encoding the value with what it is bound to, so that a test can
// see both that the file holds no plain secret and that the binding is checked.
type testSecrets struct{}

func (testSecrets) Seal(plain string, to ...string) (string, error) {
	return base64.StdEncoding.EncodeToString([]byte(strings.Join(to, "/") + "|" + plain)), nil
}

func (testSecrets) Open(sealed string, to ...string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	binding, plain, ok := strings.Cut(string(b), "|")
	if err != nil || !ok || binding != strings.Join(to, "/") {
		return "", errors.New("does not open")
	}
	return plain, nil
}

// A file store with Secrets never writes a node's SSH password in plain text, reads it back
// with the same Secrets, refuses to read it without them, and seals a file written before it
// had Secrets at its next write.
func TestFileStoreSealsNodePasswords(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	const pw = "ssh-pass-Charlie-1"
	node := deploy.Node{NodeConfig: deploy.NodeConfig{Name: "n1", Driver: "ssh", Host: "127.0.0.21",
		SSH: &deploy.SSHConfig{Addr: "127.0.0.21:22", User: "u", Password: pw, KnownHosts: "/nonexistent"}}}

	plain, err := deploy.OpenFileStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.PutNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !bytes.Contains(b, []byte(pw)) {
		t.Fatal("without Secrets the password is written as it is")
	}

	sealed, err := deploy.OpenFileStore(path, testSecrets{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := sealed.Node(ctx, "n1"); err != nil || n.SSH.Password != pw {
		t.Fatalf("an older plain file reads as it is: %+v, %v", n.SSH, err)
	}
	node.Host = "127.0.0.22"
	if err := sealed.PutNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(pw)) {
		t.Fatalf("the password is in the file in plain text: %s", b)
	}
	if n, _ := sealed.Node(ctx, "n1"); n.SSH.Password != pw {
		t.Fatalf("the store in memory keeps the plain password, got %q", n.SSH.Password)
	}

	again, err := deploy.OpenFileStore(path, testSecrets{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := again.Node(ctx, "n1"); err != nil || n.SSH.Password != pw || n.Host != "127.0.0.22" {
		t.Fatalf("reopened: %+v %+v, %v", n, n.SSH, err)
	}
	if _, err := deploy.OpenFileStore(path, nil); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("opened without Secrets: %v, want a refusal that says the password is sealed", err)
	}
}
