package mwtest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// The two centers of a Rig, as their logical names.
const (
	CenterA = "center-a"
	CenterB = "center-b"
)

// link is the key of the inter-center network in Rig.nets.
const link = "link"

// Images used when neither Config nor the environment names one.
const (
	localRedisImage    = "shuanghuo/redis:7-debian"
	localKafkaImage    = "shuanghuo/kfake:latest"
	localSSHDImage     = "shuanghuo/sshd:debian"
	officialRedisImage = "redis:7"
	officialKafkaImage = "apache/kafka:3.9.0"
)

// rigLabel marks every container and network a Rig creates, with the rig's
// ID as value, so that leftovers of a killed test binary can be found.
const rigLabel = "shuanghuo.mwtest.rig"

// Config configures a Rig. The zero value is ready to use.
type Config struct {
	// RedisImage is the image StartRedis runs. Default: the
	// SHUANGHUO_REDIS_IMAGE environment variable; if that is empty,
	// shuanghuo/redis:7-debian when that image exists locally
	// (scripts/images builds it), else redis:7.
	RedisImage string

	// KafkaImage is the image StartKafka runs. Default: the
	// SHUANGHUO_KAFKA_IMAGE environment variable; if that is empty,
	// shuanghuo/kfake:latest when that image exists locally (scripts/images
	// builds it), else apache/kafka:3.9.0.
	KafkaImage string

	// SSHDImage is the image StartSSHD runs. Default: the
	// SHUANGHUO_SSHD_IMAGE environment variable; if that is empty,
	// shuanghuo/sshd:debian, which scripts/images builds (there is no
	// official image to fall back on).
	SSHDImage string

	// StartTimeout bounds how long a service may take to answer once its
	// container has started, in StartRedis, StartKafka, StartSSHD and
	// Service.Start.
	// Default: 60s.
	StartTimeout time.Duration
}

// Rig is a pair of data centers made of Docker networks: one network per
// center, and a link network that joins them. Services started in a center
// reach each other over their center's network and the other center over the
// link, which CutLink and RestoreLink take down and bring back.
//
// A Rig is safe for concurrent use. Close removes everything it created.
type Rig struct {
	id     string
	cfg    Config // defaults applied, images resolved
	docker *testcontainers.DockerClient
	nets   map[string]string // CenterA, CenterB, link → Docker network name
	// images holds each image's description label, for reports.
	images map[string]string

	// linkMu is held for reading while a service starts and for writing
	// while the link is cut or restored and while the rig closes, so that no
	// service joins the link halfway through a cut.
	linkMu  sync.RWMutex
	linkCut bool // guarded by linkMu

	mu       sync.Mutex
	services []*Service      // guarded by mu
	names    map[string]bool // "center/name" in use; guarded by mu
	counts   map[string]int  // "center/kind" → services started; guarded by mu
	closed   bool            // guarded by mu
}

// NewRig creates the networks of a two-center rig. It starts no service.
//
// Unless TESTCONTAINERS_RYUK_DISABLED is set, NewRig sets it to true:
// testcontainers' reaper is an image that cannot be pulled where no registry
// is reachable, and a Rig removes what it created itself in Close.
func NewRig(ctx context.Context, cfg Config) (*Rig, error) {
	if cfg.StartTimeout < 0 {
		return nil, fmt.Errorf("mwtest: Config.StartTimeout is %v; want zero (for 60s) or more", cfg.StartTimeout)
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	docker, err := dockerClient(ctx)
	if err != nil {
		return nil, err
	}
	cfg.RedisImage = resolveImage(ctx, docker, cfg.RedisImage, "SHUANGHUO_REDIS_IMAGE", localRedisImage, officialRedisImage)
	cfg.KafkaImage = resolveImage(ctx, docker, cfg.KafkaImage, "SHUANGHUO_KAFKA_IMAGE", localKafkaImage, officialKafkaImage)
	cfg.SSHDImage = cmp.Or(cfg.SSHDImage, os.Getenv("SHUANGHUO_SSHD_IMAGE"), localSSHDImage)

	r := &Rig{
		id:     newID(),
		cfg:    cfg,
		docker: docker,
		nets:   make(map[string]string),
		images: make(map[string]string),
		names:  make(map[string]bool),
		counts: make(map[string]int),
	}
	for _, image := range []string{cfg.RedisImage, cfg.KafkaImage, cfg.SSHDImage} {
		if inspect, err := docker.ImageInspect(ctx, image); err == nil && inspect.Config != nil {
			r.images[image] = inspect.Config.Labels["org.opencontainers.image.description"]
		}
	}
	for _, key := range []string{CenterA, CenterB, link} {
		name := "shuanghuo-" + r.id + "-" + key
		_, err := docker.NetworkCreate(ctx, name, client.NetworkCreateOptions{
			Driver: "bridge",
			// Docker publishes a container's ports through the network that
			// gives it its default gateway. An internal network never does,
			// so cutting the link cannot move or drop the host ports.
			Internal: key == link,
			Labels:   r.labels(),
		})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("mwtest: create network %s: %w", name, err), r.Close(ctx))
		}
		r.nets[key] = name
	}
	return r, nil
}

// ID returns the random identifier that makes the rig's Docker names unique,
// so that several test binaries can run rigs at once.
func (r *Rig) ID() string { return r.id }

// Network returns the name of the Docker network of center (CenterA or
// CenterB), or "" for another name.
func (r *Rig) Network(center string) string {
	if center == link {
		return ""
	}
	return r.nets[center]
}

// LinkNetwork returns the name of the Docker network that joins the centers.
func (r *Rig) LinkNetwork() string { return r.nets[link] }

// CutLink disconnects every service from the link network, so that neither
// center reaches the other; a service started while the link is cut joins
// only its center. Host ports keep working. Peers notice a cut as they notice
// a dead network: when their own timeouts expire (for Redis replicas the
// default config makes that 5 s).
func (r *Rig) CutLink(ctx context.Context) error {
	r.linkMu.Lock()
	defer r.linkMu.Unlock()
	r.linkCut = true
	var errs []error
	for _, s := range r.snapshot() {
		if !s.onLink {
			continue
		}
		_, err := r.docker.NetworkDisconnect(ctx, r.nets[link], client.NetworkDisconnectOptions{Container: s.Container.GetContainerID()})
		if err != nil {
			errs = append(errs, fmt.Errorf("mwtest: cut the link of %v: %w", s, err))
			continue
		}
		s.onLink = false
	}
	return errors.Join(errs...)
}

// RestoreLink reconnects every service to the link network under its link
// alias. A service's address on the link may change; its name does not, and
// Redis and Kafka clients resolve names again when they reconnect. It
// returns once the running services answer on their host ports again.
func (r *Rig) RestoreLink(ctx context.Context) error {
	r.linkMu.Lock()
	defer r.linkMu.Unlock()
	r.linkCut = false
	var errs []error
	for _, s := range r.snapshot() {
		if s.onLink {
			continue
		}
		_, err := r.docker.NetworkConnect(ctx, r.nets[link], client.NetworkConnectOptions{
			Container:      s.Container.GetContainerID(),
			EndpointConfig: &network.EndpointSettings{Aliases: []string{s.linkAlias}},
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("mwtest: restore the link of %v: %w", s, err))
			continue
		}
		s.onLink = true
		// Connecting a network to a running container can refuse its
		// published port for a moment: return once it answers again.
		if st, err := s.Container.State(ctx); err == nil && st.Running {
			if err := s.waitReady(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Close removes the rig's containers, without stopping them gracefully, and
// its networks. It is safe to call more than once; later calls do nothing.
func (r *Rig) Close(ctx context.Context) error {
	r.linkMu.Lock()
	defer r.linkMu.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	services := r.services
	r.mu.Unlock()

	var errs []error
	for _, s := range services {
		_, err := r.docker.ContainerRemove(ctx, s.Container.GetContainerID(), client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("mwtest: remove %v: %w", s, err))
		}
	}
	for _, key := range []string{CenterA, CenterB, link} {
		name, ok := r.nets[key]
		if !ok {
			continue
		}
		if _, err := r.docker.NetworkRemove(ctx, name, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("mwtest: remove network %s: %w", name, err))
		}
	}
	return errors.Join(append(errs, r.docker.Close())...)
}

// describe says which images the rig runs, for test logs: the Kafka-protocol
// broker is by default kfake, which is not Apache Kafka, and results must say
// so.
func (r *Rig) describe() string {
	line := func(kind, image string) string {
		if d := r.images[image]; d != "" {
			return fmt.Sprintf("mwtest: %s image %s: %s", kind, image, d)
		}
		return fmt.Sprintf("mwtest: %s image %s", kind, image)
	}
	return line("redis", r.cfg.RedisImage) + "\n" + line("kafka", r.cfg.KafkaImage) + "\n" + line("sshd", r.cfg.SSHDImage)
}

func (r *Rig) snapshot() []*Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Service(nil), r.services...)
}

func (r *Rig) labels() map[string]string {
	labels := testcontainers.GenericLabels()
	labels[rigLabel] = r.id
	return labels
}

// serviceSpec is what StartRedis, StartKafka and StartSSHD tell start.
type serviceSpec struct {
	kind   string // "redis", "kafka" or "sshd"
	center string
	name   string // "" for the next default name
	image  string
	// configure completes req for a container published on hostPort
	// (Cmd, Env, Files) and returns the container port to publish. It runs
	// once per attempt, so readers in req must be new each time.
	configure func(req *testcontainers.ContainerRequest, hostPort int) (containerPort int)
	// probe reports whether the service answers on hostAddr.
	probe func(ctx context.Context, hostAddr string) error
	// inNetwork says whether other containers can use the service at its
	// aliases; a broker that advertises its host address cannot.
	inNetwork bool
}

var validName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// portAttempts is how often start picks another host port when Docker finds
// the one it picked taken: between our probe for a free port and Docker's
// bind, another process may take it.
const portAttempts = 3

func (r *Rig) start(ctx context.Context, spec serviceSpec) (*Service, error) {
	if spec.center != CenterA && spec.center != CenterB {
		return nil, fmt.Errorf("mwtest: start %s in center %q: want %q or %q", spec.kind, spec.center, CenterA, CenterB)
	}
	if spec.name != "" && !validName.MatchString(spec.name) {
		return nil, fmt.Errorf("mwtest: start %s named %q: want lower-case letters, digits and inner dashes", spec.kind, spec.name)
	}

	r.linkMu.RLock()
	defer r.linkMu.RUnlock()
	name, err := r.reserve(spec)
	if err != nil {
		return nil, err
	}
	s := &Service{
		Kind:      spec.kind,
		Center:    spec.center,
		Name:      name,
		rig:       r,
		linkAlias: spec.center + "-" + name,
		onLink:    !r.linkCut,
		probe:     spec.probe,
	}
	containerName := "shuanghuo-" + r.id + "-" + spec.center + "-" + name

	for attempt := 1; ; attempt++ {
		hostPort, err := freePort()
		if err != nil {
			r.release(spec.center, name)
			return nil, fmt.Errorf("mwtest: start %v: %w", s, err)
		}
		req := testcontainers.ContainerRequest{
			Image:          spec.image,
			Name:           containerName,
			Labels:         r.labels(),
			Networks:       []string{r.nets[spec.center]},
			NetworkAliases: map[string][]string{r.nets[spec.center]: {name}},
		}
		if s.onLink {
			req.Networks = append(req.Networks, r.nets[link])
			req.NetworkAliases[r.nets[link]] = []string{s.linkAlias}
		}
		containerPort := spec.configure(&req, hostPort)
		port, ok := network.PortFrom(uint16(containerPort), network.TCP)
		if !ok {
			r.release(spec.center, name)
			return nil, fmt.Errorf("mwtest: start %v: invalid container port %d", s, containerPort)
		}
		req.ExposedPorts = []string{port.String()}
		// A fixed host port, rather than one Docker picks, survives Stop and
		// Start, so a service keeps its HostAddr for the whole test.
		req.HostConfigModifier = func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(hostPort)}}}
		}

		c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
		if err != nil {
			if c != nil {
				_, rmErr := r.docker.ContainerRemove(context.WithoutCancel(ctx), c.GetContainerID(), client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
				if rmErr != nil && !cerrdefs.IsNotFound(rmErr) {
					err = errors.Join(err, fmt.Errorf("remove the failed container: %w", rmErr))
				}
			}
			if portTaken(err) && attempt < portAttempts {
				continue
			}
			r.release(spec.center, name)
			return nil, fmt.Errorf("mwtest: start %v from image %s: %w", s, spec.image, err)
		}
		s.Container = c.(*testcontainers.DockerContainer)
		s.Image = spec.image
		s.HostAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(hostPort))
		if spec.inNetwork {
			s.CenterAddr = net.JoinHostPort(name, strconv.Itoa(containerPort))
			s.LinkAddr = net.JoinHostPort(s.linkAlias, strconv.Itoa(containerPort))
		}
		break
	}

	// Registered before it answers, so that Close removes it even if it never does.
	r.mu.Lock()
	r.services = append(r.services, s)
	r.mu.Unlock()
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// reserve claims spec's name, or the next default name, in spec's center.
func (r *Rig) reserve(spec serviceSpec) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return "", fmt.Errorf("mwtest: start %s in %s: the rig is closed", spec.kind, spec.center)
	}
	name := spec.name
	for name == "" || r.names[spec.center+"/"+name] {
		if spec.name != "" {
			return "", fmt.Errorf("mwtest: start %s in %s: name %q is taken", spec.kind, spec.center, spec.name)
		}
		r.counts[spec.center+"/"+spec.kind]++
		name = spec.kind + strconv.Itoa(r.counts[spec.center+"/"+spec.kind])
		if r.names[spec.center+"/"+name] {
			name = ""
		}
	}
	r.names[spec.center+"/"+name] = true
	return name, nil
}

func (r *Rig) release(center, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.names, center+"/"+name)
}

// resolveImage picks an image: the configured one, else the one named by the
// environment variable env, else local when it exists, else official.
func resolveImage(ctx context.Context, docker *testcontainers.DockerClient, configured, env, local, official string) string {
	if configured != "" {
		return configured
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	if _, err := docker.ImageInspect(ctx, local); err == nil {
		return local
	}
	return official
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free host port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portTaken reports whether Docker failed to publish a port because
// something else holds it.
func portTaken(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "port is already allocated") || strings.Contains(msg, "address already in use")
}

func newID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
