//go:build integration

package ssh

import (
	"context"
	"time"

	"github.com/shuanghuo/shuanghuo/deploy"
)

// Run runs cmd on the node and returns its stdout.
func (d *Driver) Run(ctx context.Context, cmd string) ([]byte, error) { return d.run(ctx, cmd, nil) }

// HashTool is the node's sha256 command, as the driver probed it.
func (d *Driver) HashTool(ctx context.Context) (string, error) { return d.hashTool(ctx) }

// Root is the driver's directory on the node.
func (d *Driver) Root() string { return d.root }

// LaunchAndStopCommand launches the instance's supervisor as Start does
// and stops it at once, in one command: the stop comes before the
// supervisor has run a line.
func (d *Driver) LaunchAndStopCommand(id string, grace time.Duration) string {
	dir := d.instDir(id)
	return "( " + d.launchCommand(dir, deploy.RestartPolicy{}.Resolved()) + " ); " + d.stopCommand(dir, grace)
}
