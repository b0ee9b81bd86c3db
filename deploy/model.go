package deploy

import (
	"time"
)

// App is an app as stored: its configuration and what it runs.
type App struct {
	AppConfig
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Released lists the versions released to all of the app's instances
	// by successful deployments, oldest first, each at most once: the last
	// is the current version, the one before it the previous good version
	// that Rollback returns to.
	Released []string `json:"released,omitempty"`
}

// Current returns the app's current version, "" before its first release.
func (a *App) Current() string {
	if len(a.Released) == 0 {
		return ""
	}
	return a.Released[len(a.Released)-1]
}

// Previous returns the previous good version, "" when there is none.
func (a *App) Previous() string {
	if len(a.Released) < 2 {
		return ""
	}
	return a.Released[len(a.Released)-2]
}

// VersionConfig describes a new version (版本) of an app.
type VersionConfig struct {
	// Name identifies the version in its app, such as "1.4.2"; letters,
	// digits, '.', '-', '_' and '+'. Never reused.
	Name string `json:"name" validate:"required,max=64"`
	// Notes are free text, such as a change log.
	Notes string `json:"notes,omitempty" validate:"max=65536"`
	// Digest, when set, is the sha256 the uploader expects ("sha256:<hex>"
	// or "<hex>"); an upload with other content is refused.
	Digest string `json:"digest,omitempty" validate:"max=71"`
}

// Version is an immutable version of an app: its artifact, stored
// content-addressed.
type Version struct {
	Project string    `json:"project"`
	App     string    `json:"app"`
	Name    string    `json:"name"`
	Notes   string    `json:"notes,omitempty"`
	Digest  Digest    `json:"digest"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// Node is a node as stored.
type Node struct {
	NodeConfig
	Created time.Time `json:"created"`
}

// InstanceState is what an instance is doing, as its driver reports it.
type InstanceState string

// Instance states.
const (
	// StateStarting: the process runs but has not passed its health check.
	StateStarting InstanceState = "starting"
	// StateRunning: the process runs (and passed its health check, where
	// the Manager checked it).
	StateRunning InstanceState = "running"
	// StateBackoff: the process exited and the supervisor waits to restart
	// it.
	StateBackoff InstanceState = "backoff"
	// StateCrashLoop: the process exited too often; the supervisor gave up.
	StateCrashLoop InstanceState = "crash-loop"
	// StateStopped: stopped on purpose.
	StateStopped InstanceState = "stopped"
	// StateUnknown: the driver could not tell, such as an unreachable host.
	StateUnknown InstanceState = "unknown"
)

// Instance is one app's instance (实例) on one node, as stored by the Manager.
// An app has at most one instance per node.
type Instance struct {
	// ID is "<project>.<app>.<node>".
	ID      string `json:"id"`
	Project string `json:"project"`
	App     string `json:"app"`
	Node    string `json:"node"`
	// Version the instance runs (or last ran).
	Version string `json:"version"`
	// Ports the instance listens on, by name, as chosen when it was created.
	Ports map[string]int `json:"ports,omitempty"`
	// Addr is host:port of the instance's health-checked port, for the load
	// balancer; "" without ports.
	Addr string `json:"addr,omitempty"`
	// Stopped is true when the instance was stopped on purpose and should
	// stay so.
	Stopped bool      `json:"stopped,omitempty"`
	Updated time.Time `json:"updated"`
}

// InstanceID returns the ID of the app's instance on node.
func InstanceID(project, app, node string) string {
	return project + "." + app + "." + node
}

// DeploymentType says why a deployment ran.
type DeploymentType string

// Deployment types.
const (
	// TypeDeploy puts a version on nodes: the first deployment, an upgrade,
	// or a downgrade asked for by name.
	TypeDeploy DeploymentType = "deploy"
	// TypeRollback returns to the previous good version.
	TypeRollback DeploymentType = "rollback"
	// TypeScale adds instances on new nodes (they run the current version)
	// and removes instances from nodes no longer wanted.
	TypeScale DeploymentType = "scale"
)

// DeploymentState is where a deployment is.
type DeploymentState string

// Deployment states. Running is the only one that changes.
const (
	DeploymentRunning     DeploymentState = "running"
	DeploymentSucceeded   DeploymentState = "succeeded"
	DeploymentFailed      DeploymentState = "failed"
	DeploymentRolledBack  DeploymentState = "rolled-back"
	DeploymentInterrupted DeploymentState = "interrupted"
)

// Deployment is the record of one deployment: a version onto a set of nodes.
// It is saved to the Store at each step, so its history is complete.
type Deployment struct {
	// ID is random, such as "d_k3x9m2..."; deployments are ordered by Started.
	ID       string          `json:"id"`
	Project  string          `json:"project"`
	App      string          `json:"app"`
	Type     DeploymentType  `json:"type"`
	Version  string          `json:"version"`
	Strategy Strategy        `json:"strategy"`
	Nodes    []string        `json:"nodes"`
	State    DeploymentState `json:"state"`
	// Error says why the deployment failed, was rolled back or interrupted.
	Error string `json:"error,omitempty"`
	// Batches lists the nodes of each batch, in order.
	Batches [][]string `json:"batches"`
	// Steps are the instance operations in the order they ended.
	Steps   []Step    `json:"steps,omitempty"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	// Aborted is set when Manager.Abort asked the deployment to stop.
	Aborted bool `json:"aborted,omitempty"`
}

// Done reports whether the deployment has ended.
func (d *Deployment) Done() bool { return d.State != DeploymentRunning }

// Step is one operation of a deployment on one instance.
type Step struct {
	Node string `json:"node"`
	// Action is replace, create, remove, or rollback (putting the version it
	// ran back on an instance).
	Action string `json:"action"`
	// From and To are the versions before and after; "" for none.
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Batch   int       `json:"batch"`
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
}

// Event is one entry of the release feed: version Version of app App in
// project Project was released to Nodes. Seq orders the feed and is the
// cursor to read on from.
type Event struct {
	Seq        int64          `json:"seq"`
	Time       time.Time      `json:"time"`
	Project    string         `json:"project"`
	App        string         `json:"app"`
	Version    string         `json:"version"`
	Digest     Digest         `json:"digest"`
	Nodes      []string       `json:"nodes"`
	Deployment string         `json:"deployment"`
	Type       DeploymentType `json:"type"`
}
