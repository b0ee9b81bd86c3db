package deploytest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/deploy"
)

// ExecutableArtifact returns an Artifact of kind executable holding content.
func ExecutableArtifact(project, app, version string, content []byte) deploy.Artifact {
	sum := sha256.Sum256(content)
	return deploy.Artifact{
		Project: project, App: app, Version: version, Kind: deploy.KindExecutable,
		Digest: deploy.Digest("sha256:" + hex.EncodeToString(sum[:])), Size: int64(len(content)),
		Open: func(context.Context) (io.ReadCloser, error) {
			return deploy.VerifyReader(bytes.NewReader(content), deploy.Digest("sha256:"+hex.EncodeToString(sum[:])), int64(len(content))), nil
		},
	}
}

// TestDriver is the conformance suite of node drivers. open returns a fresh
// driver of one node; exe is an executable the driver can run that keeps
// running until SIGTERM (the test app of BuildApp, for real drivers).
func TestDriver(t *testing.T, open func(t *testing.T) deploy.NodeDriver, exe []byte) {
	ctx := t.Context()
	app := deploy.AppConfig{
		Project: "conf", Name: "app", Kind: deploy.KindExecutable,
		Ports: []deploy.Port{{Name: "http"}}, StopGrace: deploy.Duration(5 * time.Second),
	}
	port := freePort(t)
	spec := func(a deploy.Artifact) deploy.InstanceSpec {
		return deploy.InstanceSpec{
			ID: deploy.InstanceID("conf", "app", "n1"), Project: "conf", App: app, Node: "n1",
			Version: a.Version, Digest: a.Digest, Ports: map[string]int{"http": port}, Host: "127.0.0.1",
		}
	}

	t.Run("lifecycle", func(t *testing.T) {
		d := open(t)
		defer d.Close()
		a := ExecutableArtifact("conf", "app", "v1", exe)
		if err := d.Install(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := d.Install(ctx, a); err != nil {
			t.Fatalf("second install of the same version: %v", err)
		}
		id := deploy.InstanceID("conf", "app", "n1")
		if _, err := d.Status(ctx, id); !errors.Is(err, deploy.ErrNotFound) {
			t.Fatalf("status of an instance never started: %v, want ErrNotFound", err)
		}
		st, err := d.Start(ctx, spec(a))
		if err != nil {
			t.Fatal(err)
		}
		if st.Ports["http"] != port {
			t.Errorf("start reports ports %v, want http=%d", st.Ports, port)
		}
		st, err = d.Status(ctx, id)
		if err != nil || st.State != deploy.StateRunning || st.Version != "v1" {
			t.Fatalf("status after start: %+v, %v; want running v1", st, err)
		}
		if err := d.Stop(ctx, id, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if st, err := d.Status(ctx, id); err != nil || st.State != deploy.StateStopped {
			t.Fatalf("status after stop: %+v, %v; want stopped", st, err)
		}
		if err := d.Stop(ctx, id, time.Second); err != nil {
			t.Fatalf("stop of a stopped instance: %v", err)
		}
		if _, err := d.Start(ctx, spec(a)); err != nil {
			t.Fatalf("start again: %v", err)
		}
		if err := d.Remove(ctx, id, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Status(ctx, id); !errors.Is(err, deploy.ErrNotFound) {
			t.Fatalf("status after remove: %v, want ErrNotFound", err)
		}
	})

	t.Run("checksum mismatch", func(t *testing.T) {
		d := open(t)
		defer d.Close()
		a := ExecutableArtifact("conf", "app", "bad", exe)
		corrupt := append([]byte(nil), exe...)
		corrupt[len(corrupt)/2] ^= 0xff
		a.Open = func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(corrupt)), nil
		}
		if err := d.Install(ctx, a); !errors.Is(err, deploy.ErrChecksum) {
			t.Fatalf("install of corrupted content: %v, want ErrChecksum", err)
		}
		if _, err := d.Start(ctx, spec(a)); err == nil {
			t.Fatal("start of a version whose install failed succeeded; want an error")
		}
	})
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
