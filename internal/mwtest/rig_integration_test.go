//go:build integration

package mwtest_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"golang.org/x/crypto/ssh"

	"github.com/shuanghuo/shuanghuo/internal/mwtest"
)

// broker is shared by this binary's tests through mwtest.Main, as a suite
// that needs the same middleware in many tests would share it.
var broker *mwtest.Service

func TestMain(m *testing.M) {
	os.Exit(mwtest.Main(m, mwtest.Config{}, func(ctx context.Context, r *mwtest.Rig) error {
		var err error
		broker, err = r.StartKafka(ctx, mwtest.CenterA, mwtest.KafkaOptions{})
		return err
	}))
}

func TestRedisReplicaAcrossLink(t *testing.T) {
	rig := mwtest.NewTestRig(t, mwtest.Config{})
	ctx := t.Context()
	const password = `pa ss"word`
	a, err := rig.StartRedis(ctx, mwtest.CenterA, mwtest.RedisOptions{Password: password})
	if err != nil {
		t.Fatal(err)
	}
	b, err := rig.StartRedis(ctx, mwtest.CenterB, mwtest.RedisOptions{Password: password})
	if err != nil {
		t.Fatal(err)
	}
	master, replica := redisClient(t, a, password), redisClient(t, b, password)

	host, port, err := net.SplitHostPort(a.LinkAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.ReplicaOf(ctx, host, port).Err(); err != nil {
		t.Fatalf("REPLICAOF %s on %v: %v", a.LinkAddr, b, err)
	}
	waitLink(t, replica, "up", 15*time.Second)

	if err := master.Set(ctx, "before-cut", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitKey(t, replica, "before-cut", 10*time.Second)

	if err := rig.CutLink(ctx); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	waitLink(t, replica, "down", 15*time.Second)
	t.Logf("replica saw the link down %v after the cut", time.Since(cut).Round(time.Millisecond))

	if err := master.Set(ctx, "during-cut", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := replica.Get(ctx, "during-cut").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET during-cut on the replica while the link is cut: err = %v, want redis.Nil", err)
	}

	if err := rig.RestoreLink(ctx); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	waitLink(t, replica, "up", 20*time.Second)
	t.Logf("replica saw the link up %v after the restore", time.Since(restored).Round(time.Millisecond))
	waitKey(t, replica, "during-cut", 10*time.Second)
}

func TestServiceStopStartPause(t *testing.T) {
	rig := mwtest.NewTestRig(t, mwtest.Config{})
	ctx := t.Context()
	s, err := rig.StartRedis(ctx, mwtest.CenterB, mwtest.RedisOptions{Name: "cache"})
	if err != nil {
		t.Fatal(err)
	}
	c := redisClient(t, s, "")
	ping := func() error {
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err()
	}

	if err := s.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err == nil {
		t.Fatalf("PING %v while paused: got an answer", s)
	}
	if err := s.Unpause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Fatalf("PING %v after unpause: %v", s, err)
	}

	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err == nil {
		t.Fatalf("PING %v while stopped: got an answer", s)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Fatalf("PING %v at %s after restart: %v", s, s.HostAddr, err)
	}
}

func TestKafkaFromHost(t *testing.T) {
	mwtest.Require(t)
	t.Logf("broker %v, image %s", broker, broker.Image)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	const topic = "mwtest-self-test"
	w := &kafka.Writer{
		Addr:                   kafka.TCP(broker.HostAddr),
		Topic:                  topic,
		AllowAutoTopicCreation: true,
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           10 * time.Millisecond,
	}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("hello from the host")}); err != nil {
		t.Fatalf("produce to %v: %v", broker, err)
	}

	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker.HostAddr}, Topic: topic, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	msg, err := rd.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("consume from %v: %v", broker, err)
	}
	if string(msg.Value) != "hello from the host" {
		t.Fatalf("consumed %q, want %q", msg.Value, "hello from the host")
	}
}

func redisClient(t *testing.T, s *mwtest.Service, password string) *redis.Client {
	t.Helper()
	// ContextTimeoutEnabled makes commands give up when their context does,
	// rather than after ReadTimeout, so that a PING to a paused server fails fast.
	c := redis.NewClient(&redis.Options{Addr: s.HostAddr, Password: password, DisableIdentity: true, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitLink waits until the replica's INFO replication says
// master_link_status:want.
func waitLink(t *testing.T, replica *redis.Client, want string, within time.Duration) {
	t.Helper()
	var info string
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		info, err = replica.Info(t.Context(), "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:"+want) {
			return
		}
	}
	t.Fatalf("master_link_status not %s within %v; INFO replication:\n%s", want, within, info)
}

// waitKey waits until key exists on the replica.
func waitKey(t *testing.T, replica *redis.Client, key string, within time.Duration) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = replica.Get(t.Context(), key).Err(); err == nil {
			return
		}
	}
	t.Fatalf("key %q not on the replica within %v: last GET: %v", key, within, err)
}

func TestStartReportsExit(t *testing.T) {
	rig := mwtest.NewTestRig(t, mwtest.Config{StartTimeout: 20 * time.Second})
	_, err := rig.StartRedis(t.Context(), mwtest.CenterA, mwtest.RedisOptions{Name: "broken", Config: []string{"no-such-directive yes"}})
	if err == nil {
		t.Fatal("Redis started with a bad directive")
	}
	t.Logf("the error, as expected:\n%v", err)
	for _, want := range []string{"center-a/broken", "exited with code 1", "no-such-directive"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestSSHD logs in to an SSH node at its center address and its host port,
// with the host key verified, and finds the utilities deploy/ssh runs there.
func TestSSHD(t *testing.T) {
	rig := mwtest.NewTestRig(t, mwtest.Config{})
	ctx := t.Context()
	hostKey, err := mwtest.NewSSHKey()
	if err != nil {
		t.Fatal(err)
	}
	client, err := mwtest.NewSSHKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := rig.StartSSHD(ctx, mwtest.CenterA, mwtest.SSHDOptions{HostKey: hostKey.PEM, AuthorizedKeys: client.AuthorizedKey})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := s.IP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(addr string, key ssh.Signer) (*ssh.Client, error) {
		return ssh.Dial("tcp", addr, &ssh.ClientConfig{
			User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(key)},
			HostKeyCallback: ssh.FixedHostKey(hostKey.Signer.PublicKey()), Timeout: 10 * time.Second,
		})
	}
	for _, addr := range []string{netip.AddrPortFrom(ip, 22).String(), s.HostAddr} {
		c, err := dial(addr, client.Signer)
		if err != nil {
			t.Fatalf("log in to %v at %s: %v", s, addr, err)
		}
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sess.CombinedOutput(`id -un; for c in sh cat mkdir mv rm chmod mkfifo sha256sum tar gzip setsid kill sleep date ps head tr sed wc touch; do command -v $c >/dev/null || echo "missing $c"; done`)
		c.Close()
		if err != nil || strings.TrimSpace(string(out)) != "root" {
			t.Fatalf("on %v at %s: %q, %v; want root and no missing utility", s, addr, out, err)
		}
	}
	other, err := mwtest.NewSSHKey()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := dial(s.HostAddr, other.Signer); err == nil {
		c.Close()
		t.Fatalf("%v let in a key it was not given", s)
	}
}
