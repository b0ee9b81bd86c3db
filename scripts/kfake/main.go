// Command kfake serves franz-go's kfake, an in-memory Kafka-protocol broker,
// so that integration tests can run a Kafka-protocol peer in a container
// built from nothing but Go modules. It is not Apache Kafka: it keeps
// everything in memory and loses it on exit.
//
// It reads the subset of the apache/kafka image's environment that a
// single in-memory broker can honour, so the test harness configures both
// images the same way:
//
//	KAFKA_LISTENERS                  the PLAINTEXT listener to bind; default PLAINTEXT://:9092
//	KAFKA_ADVERTISED_LISTENERS       the PLAINTEXT address to tell clients; default the bound one
//	KAFKA_NUM_PARTITIONS             partitions of auto-created topics; default 1
//	KAFKA_AUTO_CREATE_TOPICS_ENABLE  create topics on first use; default true
//
// Other KAFKA_* variables are ignored.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
}

func run() error {
	bind, err := plaintext("KAFKA_LISTENERS", "PLAINTEXT://:9092")
	if err != nil {
		return err
	}
	advertise, err := plaintext("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://"+bind)
	if err != nil {
		return err
	}
	partitions, err := strconv.Atoi(env("KAFKA_NUM_PARTITIONS", "1"))
	if err != nil || partitions < 1 {
		return fmt.Errorf("KAFKA_NUM_PARTITIONS %q: want a positive integer", os.Getenv("KAFKA_NUM_PARTITIONS"))
	}

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(partitions),
		kfake.WithLogger(kfake.BasicLogger(os.Stderr, kfake.LogLevelWarn)),
		// kfake always asks for 127.0.0.1, which no other container and no
		// published port can reach; bind where we were told instead, and
		// report the advertised address, because kfake advertises whatever
		// its listener's Addr says.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, bind)
			if err != nil {
				return nil, err
			}
			return advertisedListener{ln, advertise}, nil
		}),
	}
	if env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true") != "false" {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}

	// As PID 1 in a container we get no default SIGTERM handling, so without
	// this `docker stop` would wait out its timeout and then kill us.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start cluster on %s: %w", bind, err)
	}
	defer c.Close()
	fmt.Fprintf(os.Stderr, "kfake: in-memory Kafka-protocol broker (not Apache Kafka) listening on %s, advertising %s\n", bind, advertise)
	<-ctx.Done()
	return nil
}

// plaintext returns host:port of the PLAINTEXT listener in the
// comma-separated listener list held by the environment variable name.
func plaintext(name, def string) (string, error) {
	list := env(name, def)
	for l := range strings.SplitSeq(list, ",") {
		addr, ok := strings.CutPrefix(strings.TrimSpace(l), "PLAINTEXT://")
		if !ok {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", fmt.Errorf("%s %q: %w", name, list, err)
		}
		return addr, nil
	}
	return "", fmt.Errorf("%s %q: no PLAINTEXT:// listener", name, list)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// advertisedListener is a listener whose Addr is the address clients are to
// use rather than the one it is bound to.
type advertisedListener struct {
	net.Listener
	addr string
}

func (l advertisedListener) Addr() net.Addr { return hostPort(l.addr) }

// hostPort is a net.Addr that may hold a host name, which net.TCPAddr cannot.
type hostPort string

func (hostPort) Network() string  { return "tcp" }
func (a hostPort) String() string { return string(a) }
