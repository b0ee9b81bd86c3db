package mwtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"golang.org/x/crypto/ssh"
)

// SSHDOptions configures one SSH node. HostKey and AuthorizedKeys are
// required; NewSSHKey makes keys for both.
type SSHDOptions struct {
	// Name is the node's name in its center, unique there: lower-case
	// letters, digits and inner dashes. Default: "sshd1", "sshd2", … in the
	// order the center's nodes start.
	Name string

	// HostKey is the server's private host key, PEM-encoded as ssh-keygen
	// writes it (SSHKey.PEM). Required.
	HostKey []byte

	// AuthorizedKeys holds the public keys that may log in as root, in
	// authorized_keys format (SSHKey.AuthorizedKey, one per line). Required.
	AuthorizedKeys []byte
}

// Where StartSSHD puts the keys in the container; the image's sshd_config
// (scripts/images) names these paths.
const (
	sshdPort               = 22
	sshdHostKeyPath        = "/etc/ssh/ssh_host_key"
	sshdAuthorizedKeysPath = "/etc/ssh/authorized_keys"
)

// StartSSHD starts an OpenSSH server in center, as an SSH node that deploy's
// ssh driver can use, and waits until it sends its banner to the host
// (Config.StartTimeout at most). root logs in with a key of
// opts.AuthorizedKeys, to a busybox shell with the usual utilities.
//
// The test host reaches the node in two ways: HostAddr, a published
// loopback port, and the container's address on its center's network
// (Service.IP) at port 22, where the ports of what runs on the node (an
// app that deploy installed, say) are reachable too, unpublished.
//
// The default image, shuanghuo/sshd:debian, is built by scripts/images from
// Debian's openssh-server and busybox; there is no official fallback.
func (r *Rig) StartSSHD(ctx context.Context, center string, opts SSHDOptions) (*Service, error) {
	if _, err := ssh.ParseRawPrivateKey(opts.HostKey); err != nil {
		return nil, fmt.Errorf("mwtest: start sshd in %s: SSHDOptions.HostKey: want a PEM private key: %w", center, err)
	}
	if len(bytes.TrimSpace(opts.AuthorizedKeys)) == 0 {
		return nil, fmt.Errorf("mwtest: start sshd in %s: SSHDOptions.AuthorizedKeys is empty; want at least one public key", center)
	}
	for rest := opts.AuthorizedKeys; len(bytes.TrimSpace(rest)) > 0; {
		var err error
		if _, _, _, rest, err = ssh.ParseAuthorizedKey(rest); err != nil {
			return nil, fmt.Errorf("mwtest: start sshd in %s: SSHDOptions.AuthorizedKeys: %w", center, err)
		}
	}
	// The image has no registry to come from: say how to build it rather
	// than let Docker fail to pull it.
	if _, err := r.docker.ImageInspect(ctx, r.cfg.SSHDImage); err != nil {
		return nil, fmt.Errorf("mwtest: start sshd in %s: image %s: %w (scripts/images builds it)", center, r.cfg.SSHDImage, err)
	}
	return r.start(ctx, serviceSpec{
		kind:   "sshd",
		center: center,
		name:   opts.Name,
		image:  r.cfg.SSHDImage,
		configure: func(req *testcontainers.ContainerRequest, _ int) int {
			req.Files = []testcontainers.ContainerFile{
				{Reader: bytes.NewReader(opts.HostKey), ContainerFilePath: sshdHostKeyPath, FileMode: 0o600},
				{Reader: bytes.NewReader(opts.AuthorizedKeys), ContainerFilePath: sshdAuthorizedKeysPath, FileMode: 0o600},
			}
			return sshdPort
		},
		probe:     sshBanner,
		inNetwork: true,
	})
}

// sshBanner wants an SSH identification line from addr. Reading it, rather
// than connecting only, tells a listening sshd from Docker's port proxy,
// which accepts connections before the container listens.
func sshBanner(ctx context.Context, addr string) error {
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("not an SSH banner: %q", line)
	}
	return nil
}

// IP returns the container's address on its center's network. On Linux the
// test host reaches it directly through the network's bridge, on every port
// the container listens on, published or not. It can change across Stop and
// Start.
func (s *Service) IP(ctx context.Context) (netip.Addr, error) {
	inspect, err := s.Container.Inspect(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("mwtest: inspect %v: %w", s, err)
	}
	if inspect.NetworkSettings != nil {
		if ep := inspect.NetworkSettings.Networks[s.rig.nets[s.Center]]; ep != nil && ep.IPAddress.IsValid() {
			return ep.IPAddress, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("mwtest: %v has no address on network %s (is it running?)", s, s.rig.nets[s.Center])
}

// SSHKey is a fresh ed25519 key pair in the forms SSH clients and servers
// take.
type SSHKey struct {
	// Signer authenticates with the key in golang.org/x/crypto/ssh.
	Signer ssh.Signer
	// PEM is the private key in OpenSSH's format, as ssh-keygen writes it:
	// for a key file (ssh -i) or SSHDOptions.HostKey.
	PEM []byte
	// AuthorizedKey is the public key as one authorized_keys line.
	AuthorizedKey []byte
}

// NewSSHKey generates an ed25519 key pair.
func NewSSHKey() (*SSHKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mwtest: generate an ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "mwtest")
	if err != nil {
		return nil, fmt.Errorf("mwtest: encode an ed25519 key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("mwtest: ed25519 signer: %w", err)
	}
	return &SSHKey{Signer: signer, PEM: pem.EncodeToMemory(block), AuthorizedKey: ssh.MarshalAuthorizedKey(signer.PublicKey())}, nil
}
