package center

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shuanghuo/shuanghuo/dnsctl"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/planes"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// planeTable builds the center's planes, in this order, each from the center and what the
// planes before it left in env. They close in the reverse order: sync tasks first (they upload
// and deploy), then deploy (its deployments may still drain servers), DR (its runs may still
// switch DNS or traffic), DNS, gateways and balancers. A new plane is one entry here.
var planeTable = []func(*env) (plane, error){
	grantsPlane, balancersPlane, gatewaysPlane, dnsPlane, drPlane, deployPlane, appSyncPlane,
}

// plane is what one entry of planeTable adds to the center.
type plane struct {
	capabilities []api.Capability
	settings     []api.Setting
	routes       []api.Route
	// off are paths this center serves no plane at, with what turns it on (api.Options.Off).
	off map[string]string
	// closer stops the plane when the center stops.
	closer closer
	// resume, when set, runs in its own goroutine once the stored resources are pushed again
	// after a (re)start.
	resume func(context.Context)
}

// env is what the planes are built from: the center's parts, and what earlier planes leave
// for later ones.
type env struct {
	ctx context.Context
	cfg config.Config
	log *slog.Logger
	reg prometheus.Registerer
	st  *store.SQLite
	api *lateAPI

	balancers *planes.Balancers // for deploy (draining servers) and DR (switch-traffic)
	zones     *planes.Zones     // for DR (switch-dns); nil without a DNS server
	dnsAddr   string            // for DR's verify steps; "" without a DNS server
	deploy    *planes.Deploy    // for appsync
}

// lateAPI is the API for a plane built before it: the API is built from every plane's
// capabilities, appsync's among them, while appsync's tasks apply what they receive through
// the API. Open sets Server as soon as api.New returns, before anything is served or
// restored, which is when tasks first run.
type lateAPI struct{ *api.Server }

func grantsPlane(*env) (plane, error) {
	return plane{settings: []api.Setting{planes.GrantsSetting()}}, nil
}

func balancersPlane(e *env) (plane, error) {
	e.balancers = planes.NewBalancers(e.log, e.reg, e.st, e.cfg.Zones)
	return plane{capabilities: []api.Capability{e.balancers.Capability()}, routes: e.balancers.Routes(), closer: e.balancers}, nil
}

func gatewaysPlane(e *env) (plane, error) {
	g, err := planes.NewGateways(planes.GatewayOptions{Store: e.st, Logger: e.log, Registerer: e.reg, Sealer: e.st.Sealer()})
	if err != nil {
		return plane{}, err
	}
	return plane{capabilities: []api.Capability{g.Capability()}, routes: g.Routes(), closer: g}, nil
}

// dnsPlane starts this center's dnsctl server, when configured: a primary for the zones pushed
// to it, or a secondary of the other center's.
func dnsPlane(e *env) (plane, error) {
	if e.cfg.DNS.Listen == "" {
		why := "DNS is off in this center: set dns.listen in the configuration (flag -dns-listen) to the address it serves DNS on"
		return plane{off: map[string]string{"zones": why, "dns/views": why}}, nil
	}
	dc := dnsctl.Config{
		UDPAddr:    e.cfg.DNS.Listen,
		Center:     e.cfg.Center.Name,
		Forwarders: e.cfg.DNS.Forwarders,
		Logger:     e.log.With("component", "dns"),
		Registerer: e.reg,
	}
	for _, addr := range e.cfg.DNS.Secondaries {
		dc.Secondaries = append(dc.Secondaries, dnsctl.Secondary{Addr: addr})
	}
	if e.cfg.DNS.Primary != "" {
		dc.Primary = &dnsctl.Primary{Addr: e.cfg.DNS.Primary, Zones: e.cfg.DNS.PrimaryZones}
	}
	srv, err := dnsctl.New(dc)
	if err != nil {
		return plane{}, fmt.Errorf("dns: %w", err)
	}
	if err := srv.Start(e.ctx); err != nil {
		return plane{}, fmt.Errorf("dns: start on %s: %w", e.cfg.DNS.Listen, err)
	}
	e.zones, e.dnsAddr = planes.NewZones(srv, e.st), srv.Addr()
	return plane{capabilities: []api.Capability{e.zones.Capability()}, settings: []api.Setting{e.zones.ViewsSetting()}, closer: srv}, nil
}

func drPlane(e *env) (plane, error) {
	o := planes.DROptions{Store: e.st, Logger: e.log, Registerer: e.reg}
	// Set only when there is one: a nil *Zones or *Balancers in the interface would not read
	// as "none".
	if e.zones != nil {
		o.DNS, o.Resolver = e.zones, e.dnsAddr
	}
	if len(e.cfg.Zones) > 0 {
		o.Traffic = e.balancers
	}
	d, err := planes.NewDR(e.ctx, o)
	if err != nil {
		return plane{}, err
	}
	return plane{capabilities: []api.Capability{d.Groups(), d.Plans()}, routes: d.Routes(), closer: d}, nil
}

func deployPlane(e *env) (plane, error) {
	var err error
	e.deploy, err = planes.NewDeploy(planes.DeployOptions{Store: e.st, Sealer: e.st.Sealer(), Dir: filepath.Join(e.cfg.DataDir, "deploy"),
		NodesDir: e.cfg.NodesDir(), FirstUID: e.cfg.LocalNodes.FirstUID,
		UploadMinBytes: e.cfg.UploadMinRate.Bytes, UploadRateWindow: e.cfg.UploadMinRate.Window,
		MaxArtifactSize: e.cfg.MaxArtifactBytes, Balancers: e.balancers, Logger: e.log, Registerer: e.reg})
	if err != nil {
		return plane{}, err
	}
	// Instances that ran before the restart run again once their apps, nodes and balancers
	// are back (a local node's processes ended with the server).
	return plane{capabilities: []api.Capability{e.deploy.Apps(), e.deploy.Nodes()}, settings: []api.Setting{e.deploy.Variables()},
		routes: e.deploy.Routes(), closer: e.deploy, resume: e.deploy.Resume}, nil
}

func appSyncPlane(e *env) (plane, error) {
	key, err := planes.ParseSyncKey(cmp.Or(os.Getenv(planes.SyncKeyEnv), e.cfg.SyncKey))
	if err != nil {
		return plane{}, fmt.Errorf("appsync: %w", err)
	}
	peers := map[string]string{}
	for _, p := range e.cfg.Peers {
		peers[p.Name] = p.URL
	}
	s, err := planes.NewAppSync(planes.AppSyncOptions{Store: e.st, Deploy: e.deploy, API: e.api, Key: key, Peers: peers, Logger: e.log, Registerer: e.reg})
	if err != nil {
		return plane{}, err
	}
	return plane{capabilities: []api.Capability{s.Bindings(), s.Tasks()}, routes: s.Routes(), closer: s}, nil
}
