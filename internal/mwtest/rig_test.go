package mwtest

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests need no Docker; rig_integration_test.go has those that do.

func TestRedisConf(t *testing.T) {
	conf, err := redisConf(RedisOptions{Password: `a "b"\c`, Config: []string{"maxmemory 64mb", `save ""`}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"protected-mode no\n",
		"save \"\"\n",
		"appendonly no\n",
		"repl-diskless-sync-delay 0\n",
		"repl-timeout 5\n",
		`requirepass "a \"b\"\\c"` + "\n",
		`masterauth "a \"b\"\\c"` + "\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if !strings.HasSuffix(conf, "repl-timeout 5\nrequirepass \"a \\\"b\\\"\\\\c\"\nmasterauth \"a \\\"b\\\"\\\\c\"\nmaxmemory 64mb\nsave \"\"\n") {
		t.Errorf("extra directives do not come last:\n%s", conf)
	}

	if _, err := redisConf(RedisOptions{Config: []string{"maxmemory 1mb\nrequirepass x"}}); err == nil {
		t.Error("a directive with a line break was accepted")
	}
	conf, err = redisConf(RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(conf, "requirepass") {
		t.Errorf("config without a password sets one:\n%s", conf)
	}
}

func TestRedisQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":          `""`,
		"plain":     `"plain"`,
		"sp ace":    `"sp ace"`,
		`q"b\`:      `"q\"b\\"`,
		"tab\tnl\n": `"tab\x09nl\x0a"`,
		"é":         `"\xc3\xa9"`,
	} {
		if got := redisQuote(in); got != want {
			t.Errorf("redisQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestRedisPing(t *testing.T) {
	for _, tc := range []struct {
		name, password string
		replies        []string // one per request
		wantErr        string
	}{
		{name: "no password", replies: []string{"+PONG"}},
		{name: "password", password: "p w", replies: []string{"+OK", "+PONG"}},
		{name: "wrong password", password: "x", replies: []string{"-WRONGPASS invalid"}, wantErr: `AUTH: redis answered "-WRONGPASS invalid"`},
		{name: "loading", replies: []string{"-LOADING Redis is loading the dataset in memory"}, wantErr: "PING: redis answered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := fakeRedis(t, tc.replies)
			err := redisPing(t.Context(), addr, tc.password)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("redisPing: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("redisPing error = %v, want one containing %q", err, tc.wantErr)
			}
			if tc.password != "" {
				want := "*2\r\n$4\r\nAUTH\r\n$" + strconv.Itoa(len(tc.password)) + "\r\n" + tc.password + "\r\n"
				if first := <-got; first != want {
					t.Errorf("first request = %q, want %q", first, want)
				}
			}
		})
	}
}

// fakeRedis serves one connection, answering its requests with replies in
// order, and sends each request's bytes on the returned channel.
func fakeRedis(t *testing.T, replies []string) (string, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, len(replies))
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		rd := bufio.NewReader(conn)
		for _, reply := range replies {
			req, err := readRESPArray(rd)
			if err != nil {
				return
			}
			got <- req
			if _, err := conn.Write([]byte(reply + "\r\n")); err != nil {
				return
			}
		}
	}()
	return ln.Addr().String(), got
}

// readRESPArray reads one array of bulk strings, as clients send commands,
// and returns its bytes.
func readRESPArray(rd *bufio.Reader) (string, error) {
	head, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	n := int(head[1] - '0')
	req := head
	for range 2 * n {
		line, err := rd.ReadString('\n')
		if err != nil {
			return "", err
		}
		req += line
	}
	return req, nil
}

func TestKafkaEnv(t *testing.T) {
	env := kafkaEnv(40123, 3)
	for k, want := range map[string]string{
		"KAFKA_LISTENERS":                 "PLAINTEXT://:40123,CONTROLLER://:9093",
		"KAFKA_ADVERTISED_LISTENERS":      "PLAINTEXT://127.0.0.1:40123",
		"KAFKA_NUM_PARTITIONS":            "3",
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE": "true",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
}

func TestReserveNames(t *testing.T) {
	r := &Rig{names: make(map[string]bool), counts: make(map[string]int)}
	reserve := func(center, kind, name string) string {
		t.Helper()
		got, err := r.reserve(serviceSpec{kind: kind, center: center, name: name})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := reserve(CenterA, "redis", ""); got != "redis1" {
		t.Errorf("first default name = %q, want redis1", got)
	}
	if got := reserve(CenterA, "redis", "redis2"); got != "redis2" {
		t.Errorf("explicit name = %q, want redis2", got)
	}
	if got := reserve(CenterA, "redis", ""); got != "redis3" {
		t.Errorf("default name after an explicit redis2 = %q, want redis3", got)
	}
	if got := reserve(CenterB, "redis", ""); got != "redis1" {
		t.Errorf("first default name in the other center = %q, want redis1", got)
	}
	if got := reserve(CenterA, "kafka", ""); got != "kafka1" {
		t.Errorf("first default kafka name = %q, want kafka1", got)
	}
	if _, err := r.reserve(serviceSpec{kind: "redis", center: CenterA, name: "redis1"}); err == nil {
		t.Error("a taken name was reserved again")
	}
	r.release(CenterA, "redis1")
	if got := reserve(CenterA, "redis", "redis1"); got != "redis1" {
		t.Errorf("released name = %q, want redis1", got)
	}
	r.closed = true
	if _, err := r.reserve(serviceSpec{kind: "redis", center: CenterA}); err == nil {
		t.Error("a closed rig reserved a name")
	}
}

func TestStartRejectsBadArguments(t *testing.T) {
	r := &Rig{names: make(map[string]bool), counts: make(map[string]int)}
	ctx := context.Background()
	if _, err := r.StartRedis(ctx, "center-c", RedisOptions{}); err == nil || !strings.Contains(err.Error(), `"center-c"`) {
		t.Errorf("unknown center: err = %v", err)
	}
	if _, err := r.StartRedis(ctx, CenterA, RedisOptions{Name: "Redis_1"}); err == nil || !strings.Contains(err.Error(), `"Redis_1"`) {
		t.Errorf("bad name: err = %v", err)
	}
	if _, err := r.StartKafka(ctx, CenterA, KafkaOptions{Partitions: -1}); err == nil || !strings.Contains(err.Error(), "Partitions") {
		t.Errorf("negative partitions: err = %v", err)
	}
	key, err := NewSSHKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.StartSSHD(ctx, CenterA, SSHDOptions{AuthorizedKeys: key.AuthorizedKey}); err == nil || !strings.Contains(err.Error(), "HostKey") {
		t.Errorf("no host key: err = %v", err)
	}
	if _, err := r.StartSSHD(ctx, CenterA, SSHDOptions{HostKey: key.PEM}); err == nil || !strings.Contains(err.Error(), "AuthorizedKeys") {
		t.Errorf("no authorized key: err = %v", err)
	}
	if _, err := r.StartSSHD(ctx, CenterA, SSHDOptions{HostKey: key.PEM, AuthorizedKeys: []byte("ssh-ed25519 garbage\n")}); err == nil || !strings.Contains(err.Error(), "AuthorizedKeys") {
		t.Errorf("bad authorized key: err = %v", err)
	}
	if _, err := NewRig(ctx, Config{StartTimeout: -time.Second}); err == nil || !strings.Contains(err.Error(), "StartTimeout") {
		t.Errorf("negative StartTimeout: err = %v", err)
	}
}

func TestInCI(t *testing.T) {
	for v, want := range map[string]bool{"": false, "true": true, "1": true, "false": false, "yes": false} {
		t.Setenv("CI", v)
		if got := inCI(); got != want {
			t.Errorf("CI=%q: inCI() = %v, want %v", v, got, want)
		}
	}
}
