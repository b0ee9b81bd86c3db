package deploy

import (
	"time"

	"github.com/shuanghuo/shuanghuo/internal/jsontime"
)

// Kind is how an app's artifact runs.
type Kind string

// The kinds of app.
const (
	// KindJar is a Java jar (a Spring Boot jar, typically), run as
	// java <jvm_options> -jar <artifact> <args>.
	KindJar Kind = "jar"
	// KindExecutable is a program, run as <artifact> <args>.
	KindExecutable Kind = "executable"
	// KindTarball is a .tar.gz unpacked into the version's directory and run
	// with the app's Command.
	KindTarball Kind = "tarball"
)

// AppConfig is an app (应用) of a project: what it is and how it runs. It is
// what a control plane stores; Manager.PutApp validates it. Changes apply to
// instances when they next start (a deployment, a restart).
type AppConfig struct {
	// Project is the project (项目) the app belongs to. A name: lower-case
	// letters, digits, '-' and '_', starting with a letter or digit.
	Project string `json:"project" validate:"required,max=63"`
	// Name identifies the app in its project, with the same rules as
	// Project.
	Name string `json:"name" validate:"required,max=63"`
	// Label is a display name (Chinese is fine). Default: Name.
	Label string `json:"label,omitempty" validate:"max=128,label"`
	// Kind selects how the artifact runs: jar, executable or tarball.
	Kind Kind `json:"kind" validate:"required,oneof=jar executable tarball"`
	// Command is the start command of a tarball, as arguments, the first
	// one relative to the unpacked directory ("bin/server") or absolute.
	// Required for tarball, not allowed for the other kinds. Templates as in
	// Args.
	Command []string `json:"command,omitempty" validate:"max=64"`
	// Java is the java command for a jar. Default: "java" from PATH.
	Java string `json:"java,omitempty" validate:"max=4096"`
	// JVMOptions go before -jar, such as "-Xmx512m". Only for jar.
	// Templates as in Args.
	JVMOptions []string `json:"jvm_options,omitempty" validate:"max=256"`
	// Args go after the artifact (or Command). Each is a text/template with
	// the fields of TemplateData, such as "--server.port={{.Port}}".
	Args []string `json:"args,omitempty" validate:"max=256"`
	// Env is added to the instance's environment, each value a template.
	// The instance also gets PORT (the first port), PORT_<NAME> for each
	// port, APP_VERSION and INSTANCE_ID.
	Env map[string]string `json:"env,omitempty" validate:"max=256"`
	// ConfigFiles are rendered from templates into each instance's
	// directory before it starts.
	ConfigFiles []ConfigFile `json:"config_files,omitempty" validate:"max=64,dive"`
	// Ports the app listens on. A port of 0 lets the node's driver choose a
	// free one when the instance is created; the instance keeps it.
	Ports []Port `json:"ports,omitempty" validate:"max=16,dive"`
	// Health is the health check that gates deployments and restarts.
	// Default: none, so an instance counts as healthy once its process runs.
	Health HealthCheck `json:"health"`
	// StopGrace is how long an instance has to exit after SIGTERM before it
	// gets SIGKILL. Default: 10s. From 1ms to 1h.
	StopGrace Duration `json:"stop_grace,omitempty" validate:"omitempty,duration=1ms:1h"`
	// Restart tunes how a node's supervisor restarts an instance that exits.
	Restart RestartPolicy `json:"restart"`
}

// ConfigFile is a file rendered into each instance's directory.
type ConfigFile struct {
	// Path is relative to the instance's directory, such as
	// "config/application.yml"; it may not leave it.
	Path string `json:"path" validate:"required,max=255"`
	// Template is a text/template with the fields of TemplateData.
	Template string `json:"template" validate:"max=1048576"`
	// Mode is the file's permission bits. Default: 0644.
	Mode uint32 `json:"mode,omitempty" validate:"max=511"`
}

// Port is a named port an app listens on.
type Port struct {
	// Name such as "http", used by the health check and in PORT_<NAME>.
	Name string `json:"name" validate:"required,max=32"`
	// Port number; 0 lets the driver choose a free port per instance.
	Port int `json:"port" validate:"min=0,max=65535"`
}

// HealthCheck says how to tell whether an instance serves.
type HealthCheck struct {
	// Type is http (a GET of Path answered 2xx or 3xx), tcp (a connection
	// accepted) or empty for none.
	Type string `json:"type,omitempty" validate:"omitempty,oneof=http tcp"`
	// Port names the port checked. Default: the first of the app's ports.
	Port string `json:"port,omitempty" validate:"max=32"`
	// Path is the HTTP path, such as "/actuator/health". Default: "/".
	Path string `json:"path,omitempty" validate:"max=1024"`
	// Interval between checks. Default: 1s. From 10ms to 1h.
	Interval Duration `json:"interval,omitempty" validate:"omitempty,duration=10ms:1h"`
	// Timeout of one check. Default: 2s. From 1ms to 1m.
	Timeout Duration `json:"timeout,omitempty" validate:"omitempty,duration=1ms:1m"`
	// StartTimeout bounds how long a starting instance may take to pass its
	// first check; after it, the instance failed its health gate.
	// Default: 60s. From 10ms to 24h.
	StartTimeout Duration `json:"start_timeout,omitempty" validate:"omitempty,duration=10ms:24h"`
	// Successes is how many checks in a row must pass. Default: 1.
	Successes int `json:"successes,omitempty" validate:"min=0,max=100"`
}

// RestartPolicy is how a node's supervisor restarts an instance that exits on
// its own, and when it gives up (a crash loop).
type RestartPolicy struct {
	// BackoffMin is the wait before the first restart; it doubles with each
	// restart in a row up to BackoffMax. Default: 500ms. From 1ms to 1h.
	BackoffMin Duration `json:"backoff_min,omitempty" validate:"omitempty,duration=1ms:1h"`
	// BackoffMax caps the wait. Default: 30s. From 1ms to 24h.
	BackoffMax Duration `json:"backoff_max,omitempty" validate:"omitempty,duration=1ms:24h"`
	// MaxRestarts within Window make a crash loop: the supervisor stops
	// restarting and reports StateCrashLoop. Default: 5.
	MaxRestarts int `json:"max_restarts,omitempty" validate:"min=0,max=1000"`
	// Window is the period MaxRestarts counts in; an instance that ran
	// this long resets its backoff. Default: 1m. From 1s to 24h.
	Window Duration `json:"window,omitempty" validate:"omitempty,duration=1s:24h"`
}

// Resolved returns the policy with its defaults filled in.
func (p RestartPolicy) Resolved() RestartPolicy {
	if p.BackoffMin == 0 {
		p.BackoffMin = Duration(500 * time.Millisecond)
	}
	if p.BackoffMax == 0 {
		p.BackoffMax = Duration(30 * time.Second)
	}
	if p.BackoffMax < p.BackoffMin {
		p.BackoffMax = p.BackoffMin
	}
	if p.MaxRestarts == 0 {
		p.MaxRestarts = 5
	}
	if p.Window == 0 {
		p.Window = Duration(time.Minute)
	}
	return p
}

// NodeConfig is a node (节点): a place where instances run, reached through a
// driver. Manager.PutNode validates it and opens its driver.
type NodeConfig struct {
	// Name identifies the node, with the same rules as an app's name.
	Name string `json:"name" validate:"required,max=63"`
	// Driver selects the node driver, such as "local" or "ssh"; the Manager
	// must have it in Options.Drivers.
	Driver string `json:"driver" validate:"required,max=32"`
	// Host is where instances on the node are reached, for health checks
	// and the load balancer. Default: 127.0.0.1 for local, the SSH host for
	// ssh.
	Host string `json:"host,omitempty" validate:"omitempty,max=255"`
	// Dir is the driver's root directory on the node: versions and
	// instances live under it. Required for local; default for ssh:
	// "shuanghuo" under the login's home directory.
	Dir string `json:"dir,omitempty" validate:"max=4096"`
	// SSH is the connection of an ssh node. Required for ssh.
	SSH *SSHConfig `json:"ssh,omitempty"`
	// Labels are free-form, such as {"center": "a", "zone": "a1"}.
	Labels map[string]string `json:"labels,omitempty" validate:"max=32"`
}

// SSHConfig is how the ssh driver reaches a node.
type SSHConfig struct {
	// Addr is host:port of the SSH server.
	Addr string `json:"addr" validate:"required,hostname_port"`
	// User to log in as.
	User string `json:"user" validate:"required,max=64"`
	// KeyFile holds the PEM private key. Set KeyFile or Password.
	KeyFile string `json:"key_file,omitempty" validate:"max=4096"`
	// Password logs in with a password instead.
	Password string `json:"password,omitempty" validate:"max=1024"`
	// KnownHosts is the known_hosts file that verifies the host's key.
	// Required: a host key is never accepted unverified.
	KnownHosts string `json:"known_hosts" validate:"required,max=4096"`
	// Timeout bounds connecting and logging in. Default: 10s. From 1ms to 1m.
	Timeout Duration `json:"timeout,omitempty" validate:"omitempty,duration=1ms:1m"`
}

// Strategy is how a deployment replaces instances.
type Strategy struct {
	// Type is all-at-once (every instance in one batch) or rolling.
	// Default: rolling.
	Type string `json:"type,omitempty" validate:"omitempty,oneof=all-at-once rolling"`
	// BatchSize is how many instances a rolling deployment replaces at a
	// time. Default: 1.
	BatchSize int `json:"batch_size,omitempty" validate:"min=0,max=1000"`
	// Pause between batches, after a batch passed its health gate.
	// Default: none. From 1ms to 24h.
	Pause Duration `json:"pause,omitempty" validate:"omitempty,duration=1ms:24h"`
	// Rollback, when a batch fails its health gate or the deployment is
	// aborted, puts the instances already replaced back on the version they
	// ran (and removes instances the deployment created). Default: off, so
	// the deployment stops where it failed.
	Rollback bool `json:"rollback,omitempty"`
}

// Strategy types.
const (
	AllAtOnce = "all-at-once"
	Rolling   = "rolling"
)

// Duration is a time.Duration written in JSON as a Go duration string ("1.5s"); a bare
// number is refused. It is the one Duration of every shuanghuo package (internal/jsontime);
// Or(def) gives the default for zero.
type Duration = jsontime.Duration
