package mwtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// RedisOptions configures one Redis instance. The zero value is ready to use.
type RedisOptions struct {
	// Name is the instance's name in its center, unique there: lower-case
	// letters, digits and inner dashes. Default: "redis1", "redis2", … in
	// the order the center's instances start.
	Name string

	// Password, when set, is required of clients (requirepass) and offered
	// to a master this instance replicates (masterauth), so instances that
	// share a password can replicate each other. Default: none.
	Password string

	// Config holds redis.conf directives, one per element, such as
	// "maxmemory 64mb". They follow the defaults, and so override them:
	//
	//	bind * -::*
	//	protected-mode no
	//	save ""                     (nothing on disk: a restarted instance is empty)
	//	appendonly no
	//	repl-diskless-sync-delay 0  (else a replica's first sync waits 5 s)
	//	repl-ping-replica-period 1
	//	repl-timeout 5              (a replica sees a cut link in 5 s, not 60 s)
	Config []string
}

// redisPort is the port Redis listens on in its container.
const redisPort = 6379

// redisConfPath is where StartRedis puts the configuration in the container:
// the official image's documented place, which an empty root can hold too.
const redisConfPath = "/usr/local/etc/redis/redis.conf"

// StartRedis starts a Redis instance in center and waits until it answers
// PING from the host (Config.StartTimeout at most). The instance is a master
// until told otherwise: to replicate across the link, send a replica
//
//	REPLICAOF <host of master.LinkAddr> <port of master.LinkAddr>
//
// at its HostAddr.
func (r *Rig) StartRedis(ctx context.Context, center string, opts RedisOptions) (*Service, error) {
	conf, err := redisConf(opts)
	if err != nil {
		return nil, fmt.Errorf("mwtest: start redis in %s: %w", center, err)
	}
	return r.start(ctx, serviceSpec{
		kind:   "redis",
		center: center,
		name:   opts.Name,
		image:  r.cfg.RedisImage,
		configure: func(req *testcontainers.ContainerRequest, _ int) int {
			req.Cmd = []string{"redis-server", redisConfPath}
			req.Files = []testcontainers.ContainerFile{{
				Reader:            strings.NewReader(conf),
				ContainerFilePath: redisConfPath,
				FileMode:          0o644,
			}}
			return redisPort
		},
		probe: func(ctx context.Context, hostAddr string) error {
			return redisPing(ctx, hostAddr, opts.Password)
		},
		inNetwork: true,
	})
}

// redisPing sends AUTH, if there is a password, and PING over one
// connection, and wants +OK and +PONG back. It speaks RESP itself because
// a client library would retry, and log, each refused dial of a probe that
// is meant to fail until the server is up.
func redisPing(ctx context.Context, addr, password string) error {
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	rd := bufio.NewReader(conn)
	call := func(want string, args ...string) error {
		req := fmt.Sprintf("*%d\r\n", len(args))
		for _, a := range args {
			req += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := conn.Write([]byte(req)); err != nil {
			return err
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		if line = strings.TrimRight(line, "\r\n"); line != want {
			return fmt.Errorf("%s: redis answered %q", args[0], line)
		}
		return nil
	}
	if password != "" {
		if err := call("+OK", "AUTH", password); err != nil {
			return err
		}
	}
	return call("+PONG", "PING")
}

// redisConf returns the configuration file for opts.
func redisConf(opts RedisOptions) (string, error) {
	var b strings.Builder
	b.WriteString(`# Written by internal/mwtest for a test instance.
bind * -::*
protected-mode no
port 6379
save ""
appendonly no
repl-diskless-sync-delay 0
repl-ping-replica-period 1
repl-timeout 5
`)
	if opts.Password != "" {
		fmt.Fprintf(&b, "requirepass %s\nmasterauth %s\n", redisQuote(opts.Password), redisQuote(opts.Password))
	}
	for _, line := range opts.Config {
		if strings.ContainsAny(line, "\r\n") {
			return "", fmt.Errorf("RedisOptions.Config directive %q holds a line break; give one directive per element", line)
		}
		b.WriteString(line + "\n")
	}
	return b.String(), nil
}

// redisQuote quotes s as redis.conf reads a double-quoted argument: printable
// ASCII as is, but for quote and backslash, and every other byte as \xHH.
func redisQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
