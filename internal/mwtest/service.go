package mwtest

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Service is one middleware container of a Rig, started by StartRedis,
// StartKafka or StartSSHD. Its fields are set once and only read afterwards;
// its methods may be called from several goroutines, but stopping and
// starting the same service at once has no defined outcome.
type Service struct {
	// Kind is "redis", "kafka" or "sshd".
	Kind string
	// Center is the center the service runs in: CenterA or CenterB.
	Center string
	// Name is the service's name in its center, such as "redis1".
	Name string
	// Image is the image the container runs.
	Image string

	// HostAddr is where the test process reaches the service:
	// 127.0.0.1:port. It stays the same across Stop and Start.
	HostAddr string
	// CenterAddr is where containers in the same center reach the service,
	// such as "redis1:6379". Empty for Kafka; see StartKafka.
	CenterAddr string
	// LinkAddr is where containers in the other center reach the service
	// over the link while it is up, such as "center-a-redis1:6379". Empty
	// for Kafka; see StartKafka.
	LinkAddr string

	// Container is the testcontainers handle, for what the helpers here do
	// not cover (Exec, Logs, Inspect).
	Container *testcontainers.DockerContainer

	rig       *Rig
	linkAlias string
	onLink    bool // guarded by rig.linkMu
	probe     func(ctx context.Context, hostAddr string) error
}

// String names the service and its container, as errors do.
func (s *Service) String() string {
	return fmt.Sprintf("%s %s/%s (container shuanghuo-%s-%s-%s)", s.Kind, s.Center, s.Name, s.rig.id, s.Center, s.Name)
}

// Stop kills the service's container at once, as losing its machine would:
// no shutdown work, and what the service kept in memory is gone. Its peers see
// its connections close.
func (s *Service) Stop(ctx context.Context) error {
	var now time.Duration
	if err := s.Container.Stop(ctx, &now); err != nil {
		return fmt.Errorf("mwtest: stop %v: %w", s, err)
	}
	return nil
}

// Start starts a stopped service again, on the same host port and names, and
// waits until it answers (Config.StartTimeout at most). It comes back empty:
// the default configurations keep nothing on disk.
func (s *Service) Start(ctx context.Context) error {
	if err := s.Container.Start(ctx); err != nil {
		return fmt.Errorf("mwtest: start %v: %w", s, err)
	}
	return s.waitReady(ctx)
}

// Pause freezes the service's processes: its connections stay open but
// nothing answers, as with a hung machine or a network that drops packets.
func (s *Service) Pause(ctx context.Context) error {
	if _, err := s.rig.docker.ContainerPause(ctx, s.Container.GetContainerID(), client.ContainerPauseOptions{}); err != nil {
		return fmt.Errorf("mwtest: pause %v: %w", s, err)
	}
	return nil
}

// Unpause lets a paused service run on.
func (s *Service) Unpause(ctx context.Context) error {
	if _, err := s.rig.docker.ContainerUnpause(ctx, s.Container.GetContainerID(), client.ContainerUnpauseOptions{}); err != nil {
		return fmt.Errorf("mwtest: unpause %v: %w", s, err)
	}
	return nil
}

// probeInterval is how long waitReady sleeps between probes.
const probeInterval = 100 * time.Millisecond

// waitReady probes the service until it answers, its container exits, or
// Config.StartTimeout passes. Its errors carry the container's last log lines.
func (s *Service) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.rig.cfg.StartTimeout)
	defer cancel()
	for {
		err := s.probe(ctx, s.HostAddr)
		if err == nil {
			return nil
		}
		// A container that exited will never answer; say so now rather than
		// after the timeout.
		if st, stErr := s.Container.State(ctx); stErr == nil && !st.Running {
			return fmt.Errorf("mwtest: %v exited with code %d before it answered on %s: %w%s", s, st.ExitCode, s.HostAddr, err, s.logTail())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mwtest: %v did not answer on %s within %v: %w%s", s, s.HostAddr, s.rig.cfg.StartTimeout, err, s.logTail())
		case <-time.After(probeInterval):
		}
	}
}

// logLines is how many of a container's last log lines errors and failed
// tests show.
const logLines = 30

// logTail returns the container's last log lines, each indented, after a
// heading; or "" if there are none to read.
func (s *Service) logTail() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc, err := s.Container.Logs(ctx)
	if err != nil {
		return ""
	}
	defer rc.Close()
	var lines []string
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		lines = append(lines, "\t"+sc.Text())
		if len(lines) > logLines {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return fmt.Sprintf("\nlast log lines of %v:\n%s", s, strings.Join(lines, "\n"))
}
