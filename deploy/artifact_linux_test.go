package deploy_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/shuanghuo/shuanghuo/deploy"
)

// tmpfs refuses direct I/O; the store writes through the page cache there.
func TestDirStorePutOnTmpfs(t *testing.T) {
	dir, err := os.MkdirTemp("/dev/shm", "deploy-test-")
	if err != nil {
		t.Fatalf("Linux has /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := deploy.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(5<<20+3, 9)
	d, n, err := s.Put(context.Background(), bytes.NewReader(data), digestOf(data), 0)
	if err != nil || n != int64(len(data)) || d != digestOf(data) {
		t.Fatalf("Put on tmpfs = %s, %d, %v", d, n, err)
	}
	rc, _, err := s.Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(rc); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Errorf("read back: %v, equal %v", err, bytes.Equal(got.Bytes(), data))
	}
}
