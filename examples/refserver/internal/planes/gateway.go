package planes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/gateway"
	"github.com/shuanghuo/shuanghuo/lb"
)

// GatewaySpec is a gateway resource's spec: one gateway instance (服务网关), which is an
// lb.Balancer with a gateway.Gateway as its hook. It is flat so that its lists can be edited
// one item at a time: the balancer's part (name, address, listeners, groups — the server
// groups of the APIs' upstreams) and the gateway's (consumers, apis, grants, policies, auth).
type GatewaySpec struct {
	// Name names the gateway and its balancer.
	Name string `json:"name"`
	// Address is the service address (VIP) the listeners bind to; empty binds every interface.
	Address string `json:"address,omitempty"`
	// Listeners are the balancer's; at least one http or https listener.
	Listeners []lb.Listener `json:"listeners"`
	// Groups are the server groups APIs name as their upstream.
	Groups []lb.ServerGroup `json:"groups"`
	// Consumers are the calling parties. Their secrets are not part of the spec: the server
	// generates them (POST /api/v1/gateways/{id}/consumers/{consumer}/secret).
	Consumers []ConsumerSpec `json:"consumers"`
	// APIs, Policies and Auth are the gateway's own (gateway.Config).
	APIs []gateway.API `json:"apis"`
	// Grants say, per API, which consumers may call it.
	Grants   []GrantSpec      `json:"grants"`
	Policies []gateway.Policy `json:"policies"`
	Auth     gateway.Auth     `json:"auth"`
}

// GrantSpec lets consumers call one API: the gateway's grants, one item per API so that an
// API's grants are edited at /api/v1/gateways/{id}/grants/{api}.
type GrantSpec struct {
	// API is the API's name.
	API string `json:"api"`
	// Consumers are the IDs of the consumers that may call it.
	Consumers []string `json:"consumers"`
}

// ConsumerSpec is a gateway.Consumer without its secrets.
type ConsumerSpec struct {
	ID      string               `json:"id"`
	Name    string               `json:"name"`
	Kind    gateway.ConsumerKind `json:"kind"`
	OrgCode string               `json:"org_code,omitempty"`
	Enabled bool                 `json:"enabled"`
	AppKey  string               `json:"app_key"`
}

// split returns the balancer's config and the gateway's, each consumer with the secrets
// given (by consumer ID).
func (s GatewaySpec) split(secrets map[string][]string) gateway.ServiceConfig {
	b := lb.BalancerConfig{Name: s.Name, Address: s.Address, Listeners: s.Listeners, Groups: s.Groups}
	g := gateway.Config{APIs: s.APIs, Policies: s.Policies, Auth: s.Auth}
	for _, gr := range s.Grants {
		for _, c := range gr.Consumers {
			g.Grants = append(g.Grants, gateway.Grant{Consumer: c, API: gr.API})
		}
	}
	for _, c := range s.Consumers {
		g.Consumers = append(g.Consumers, gateway.Consumer{ID: c.ID, Name: c.Name, Kind: c.Kind, OrgCode: c.OrgCode,
			Enabled: c.Enabled, AppKey: c.AppKey, Secrets: secrets[c.ID]})
	}
	return gateway.ServiceConfig{Balancer: b, Gateway: g}
}

// GatewayOptions are what the gateway plane needs from the rest of the center.
type GatewayOptions struct {
	Store      store.Store
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Sealer seals the consumer secrets: the store's, with the server's secrets key.
	Sealer *store.Sealer
	// SaveEvery is how often each gateway's statistics are saved to the store (they are
	// also saved when the plane closes). Default 1 minute.
	SaveEvery time.Duration
}

// Gateways runs one gateway — an lb.Balancer with a gateway.Gateway as its hook — per pushed
// gateway resource, keeps their consumers' secrets sealed in the store, and saves their call
// statistics so that they survive a restart.
type Gateways struct {
	st        store.Store
	log       *slog.Logger
	reg       prometheus.Registerer
	seal      *store.Sealer
	saveEvery time.Duration

	// credMu serializes pushes and secret changes, so that a push never applies secrets older
	// than what a concurrent rotation stored. It is never held by Remove, which runs inside
	// a store transaction: store writes happen under credMu only.
	credMu sync.Mutex
	// mu guards running.
	mu      sync.Mutex
	running map[string]*gatewayInstance
}

// gatewayInstance is one running gateway.
type gatewayInstance struct {
	id   string
	team string
	svc  *gateway.Service
	stop chan struct{}
	done chan struct{}

	saveMu    sync.Mutex
	lastSaved []byte
}

// NewGateways returns an empty gateway plane.
func NewGateways(o GatewayOptions) (*Gateways, error) {
	if o.Sealer == nil {
		return nil, errors.New("planes: gateways: no sealer for the consumer secrets")
	}
	if o.SaveEvery <= 0 {
		o.SaveEvery = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Gateways{st: o.Store, log: o.Logger, reg: o.Registerer, seal: o.Sealer, saveEvery: o.SaveEvery,
		running: map[string]*gatewayInstance{}}, nil
}

// Capability mounts gateways under /api/v1/gateways, with their listeners, server groups,
// consumers, APIs, grants (per API, with the list of consumers) and policies editable one by
// one.
func (p *Gateways) Capability() api.Capability {
	return api.Capability{
		Kind: "gateway", Path: "gateways", IDPrefix: "gw", Check: checkGateway, Plane: p, Admit: admitGateway,
		Secrets: []string{tlsKeys},
		Parts: []api.Part{
			{Name: "listeners", Key: "name", Children: []string{"rules"}},
			{Name: "groups", Key: "name", Children: []string{"servers"}},
			{Name: "consumers", Key: "id"},
			{Name: "apis", Key: "name"},
			{Name: "grants", Key: "api", Children: []string{"consumers"}},
			{Name: "policies", Key: "name"},
		},
	}
}

// admitGateway holds a gateway's balancer, and its APIs' upstream URLs, to its team's grants.
func admitGateway(ctx context.Context, tx store.Reader, _ store.Token, res store.Resource) error {
	s, err := decodeGateway(res.Spec)
	if err != nil {
		return err
	}
	upstreams := map[string]string{}
	for i, a := range s.APIs {
		if a.Upstream.URL != "" {
			upstreams[fmt.Sprintf("apis[%d].upstream.url", i)] = a.Upstream.URL
		}
	}
	return admitBalancer(ctx, tx, res, s.split(nil).Balancer, upstreams)
}

// placeholderSecret stands in for secrets when a spec is checked before any exist.
var placeholderSecret = []string{strings.Repeat("0", 32)}

// decodeGateway reads a spec strictly; a consumer that carries secrets is told where they go.
func decodeGateway(spec json.RawMessage) (GatewaySpec, error) {
	var loose struct {
		Consumers []map[string]json.RawMessage `json:"consumers"`
	}
	if json.Unmarshal(spec, &loose) == nil {
		inv := api.InvalidSpec{}
		for i, c := range loose.Consumers {
			for _, f := range []string{"secrets", "secret", "app_secret"} {
				if _, ok := c[f]; ok {
					inv[fmt.Sprintf("consumers[%d].%s", i, f)] = "secrets are not part of the spec: the server makes them (POST /api/v1/gateways/{id}/consumers/{consumer}/secret)"
				}
			}
		}
		if len(inv) > 0 {
			return GatewaySpec{}, inv
		}
	}
	var s GatewaySpec
	err := decodeStrict(spec, &s)
	return s, err
}

// checkGateway validates a spec with lb's and gateway's rules, and that the two agree.
func checkGateway(spec json.RawMessage) (string, error) {
	s, err := decodeGateway(spec)
	if err != nil {
		return "", err
	}
	secrets := map[string][]string{}
	for _, c := range s.Consumers {
		secrets[c.ID] = placeholderSecret
	}
	if err := checkGrants(s); err != nil {
		return "", err
	}
	if err := s.split(secrets).Validate(); err != nil {
		return "", err
	}
	return s.Name, nil
}

// checkGrants checks the grants by their own paths in the spec (the gateway's would name
// the flattened list): known APIs and consumers, each API and each of its consumers once.
func checkGrants(s GatewaySpec) error {
	inv := api.InvalidSpec{}
	apis, consumers := map[string]bool{}, map[string]bool{}
	for _, a := range s.APIs {
		apis[a.Name] = true
	}
	for _, c := range s.Consumers {
		consumers[c.ID] = true
	}
	seen := map[string]int{}
	for i, gr := range s.Grants {
		p := fmt.Sprintf("grants[%d]", i)
		switch j, dup := seen[gr.API]; {
		case gr.API == "":
			inv[p+".api"] = "is required"
		case !apis[gr.API]:
			inv[p+".api"] = fmt.Sprintf("no API %q", gr.API)
		case dup:
			inv[p+".api"] = fmt.Sprintf("duplicate of grants[%d]: one item per API", j)
		}
		seen[gr.API] = i
		ids := map[string]bool{}
		for j, c := range gr.Consumers {
			q := fmt.Sprintf("%s.consumers[%d]", p, j)
			switch {
			case !consumers[c]:
				inv[q] = fmt.Sprintf("no consumer %q", c)
			case ids[c]:
				inv[q] = fmt.Sprintf("consumer %q is listed twice", c)
			}
			ids[c] = true
		}
	}
	if len(inv) > 0 {
		return inv
	}
	return nil
}

// Push implements api.Plane. The gateway's config is checked whole (with the consumers'
// stored secrets) before anything changes. The first push starts the gateway with the
// statistics saved by an earlier run, applies its config, then opens the balancer's
// listeners; later pushes apply the balancer (new groups first) then the gateway, and roll
// the balancer back if the gateway refuses, so a refused push changes nothing.
func (p *Gateways) Push(ctx context.Context, r store.Resource) error {
	spec, err := decodeGateway(r.Spec)
	if err != nil {
		return err
	}
	p.credMu.Lock()
	defer p.credMu.Unlock()
	secrets, err := p.secrets(ctx, r.ID)
	if err != nil {
		return err
	}
	inv := api.InvalidSpec{}
	for i, c := range spec.Consumers {
		if len(secrets[c.ID]) == 0 {
			inv[fmt.Sprintf("consumers[%d]", i)] = fmt.Sprintf("consumer %q has no secret yet: POST /api/v1/gateways/%s/consumers/%s/secret makes one", c.ID, r.ID, c.ID)
		}
	}
	if len(inv) > 0 {
		return inv
	}
	if err := checkGrants(spec); err != nil {
		return err
	}
	cfg := spec.split(secrets)
	if err := cfg.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	inst, ok := p.running[r.ID]
	p.mu.Unlock()
	if ok {
		return listenError(inst.svc.Apply(ctx, cfg))
	}
	inst, err = p.start(ctx, r, cfg)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.running[r.ID] = inst
	p.mu.Unlock()
	go p.saveLoop(inst)
	return nil
}

// start makes a gateway and its balancer for a first push, the gateway holding the
// statistics of an earlier run.
func (p *Gateways) start(ctx context.Context, r store.Resource, cfg gateway.ServiceConfig) (*gatewayInstance, error) {
	var reg prometheus.Registerer
	if p.reg != nil {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"resource": r.ID}, p.reg)
	}
	// The gateway names itself (Name) in its lines; the balancer's need the name added.
	svc, err := gateway.NewService(gateway.Options{Name: r.ID, Logger: p.log, Registerer: p.reg},
		lb.Options{Logger: p.log.With("gateway", r.ID), Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("planes: start gateway %s: %w", r.ID, err)
	}
	inst := &gatewayInstance{id: r.ID, team: r.TeamID, svc: svc, stop: make(chan struct{}), done: make(chan struct{})}
	if err := p.restoreStats(ctx, inst); err != nil {
		return nil, errors.Join(err, svc.Close(ctx))
	}
	if err := svc.Apply(ctx, cfg); err != nil {
		return nil, errors.Join(listenError(err), svc.Close(ctx))
	}
	return inst, nil
}

// Remove implements api.Plane. It runs inside the store's transaction, so it does not write
// to the store: the statistics since the last save are lost with the gateway.
func (p *Gateways) Remove(ctx context.Context, r store.Resource) error {
	p.mu.Lock()
	inst, ok := p.running[r.ID]
	delete(p.running, r.ID)
	p.mu.Unlock()
	if !ok {
		return nil
	}
	close(inst.stop)
	<-inst.done
	return inst.svc.Close(ctx)
}

// GatewayStatus is what GET /api/v1/gateways/{id}/status answers.
type GatewayStatus struct {
	Balancer lb.Status         `json:"balancer"`
	Gateway  GatewayConfigView `json:"gateway"`
}

// GatewayConfigView is the running gateway's config version and size.
type GatewayConfigView struct {
	Version   uint64 `json:"version"`
	Consumers int    `json:"consumers"`
	APIs      int    `json:"apis"`
	Grants    int    `json:"grants"`
	Policies  int    `json:"policies"`
}

// Status implements api.Plane.
func (p *Gateways) Status(_ context.Context, r store.Resource) (any, error) {
	inst, ok := p.instance(r.ID)
	if !ok {
		return nil, fmt.Errorf("gateway %s (not pushed yet): %w", r.ID, store.ErrNotFound)
	}
	cfg, ver := inst.svc.Gateway().Config()
	return GatewayStatus{Balancer: inst.svc.Balancer().Status(), Gateway: GatewayConfigView{Version: ver,
		Consumers: len(cfg.Consumers), APIs: len(cfg.APIs), Grants: len(cfg.Grants), Policies: len(cfg.Policies)}}, nil
}

func (p *Gateways) instance(id string) (*gatewayInstance, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	inst, ok := p.running[id]
	return inst, ok
}

// Close stops every gateway, letting in-flight requests finish until ctx ends, and saves
// their statistics.
func (p *Gateways) Close(ctx context.Context) error {
	p.mu.Lock()
	running := p.running
	p.running = map[string]*gatewayInstance{}
	p.mu.Unlock()
	var errs []error
	for _, inst := range running {
		close(inst.stop)
		<-inst.done
		// The statistics are saved once the balancer has let its last requests finish.
		errs = append(errs, inst.svc.Close(ctx))
		errs = append(errs, p.saveStats(ctx, inst))
	}
	return errors.Join(errs...)
}

// Routes are the consumers' secrets and the statistics:
//
//	POST   /api/v1/gateways/{id}/consumers/{consumer}/secret           make (or import) a secret, shown once
//	GET    /api/v1/gateways/{id}/consumers/{consumer}/secret           how many secrets are active, since when
//	DELETE /api/v1/gateways/{id}/consumers/{consumer}/secret/previous  end a rotation: keep only the newest
//	GET    /api/v1/gateways/{id}/stats                                 call statistics
func (p *Gateways) Routes() []api.Route {
	return []api.Route{
		{Pattern: "POST /api/v1/gateways/{id}/consumers/{consumer}/secret", Handle: p.newSecret},
		{Pattern: "GET /api/v1/gateways/{id}/consumers/{consumer}/secret", Handle: p.secretInfo},
		{Pattern: "DELETE /api/v1/gateways/{id}/consumers/{consumer}/secret/previous", Handle: p.dropPrevious},
		{Pattern: "GET /api/v1/gateways/{id}/stats", Handle: p.stats},
	}
}

// SecretRequest is the optional body of POST .../consumers/{consumer}/secret.
type SecretRequest struct {
	// Replace drops the consumer's other secrets (a leaked secret); by default the newest
	// one stays active beside the new one, for a rotation without refused requests.
	Replace bool `json:"replace"`
	// Secret, when set, is stored instead of a generated one: the secret the other center
	// generated for the same consumer, so that a party signs alike for both centers.
	Secret string `json:"secret" validate:"omitempty,min=32,max=256"`
}

// SecretAnswer is the one answer that holds a secret.
type SecretAnswer struct {
	Consumer string `json:"consumer"`
	AppKey   string `json:"app_key"`
	// Secret is shown this once; the server keeps it sealed and never shows it again.
	Secret        string `json:"secret"`
	ActiveSecrets int    `json:"active_secrets"`
	// Applied says the running gateway took the secret at once; otherwise it takes it with
	// the next push.
	Applied bool `json:"applied"`
}

// SecretInfo describes a consumer's secrets without them.
type SecretInfo struct {
	Consumer      string      `json:"consumer"`
	ActiveSecrets int         `json:"active_secrets"`
	CreatedAt     []time.Time `json:"created_at"`
}

// consumer finds a consumer of the gateway, in the spec saved or the one pushed.
func (p *Gateways) consumer(c *api.Call) (store.Resource, ConsumerSpec, error) {
	res, err := c.Resource("gateway", c.R.PathValue("id"))
	if err != nil {
		return res, ConsumerSpec{}, err
	}
	id := c.R.PathValue("consumer")
	for _, raw := range []json.RawMessage{res.Spec, res.PushedSpec} {
		var s GatewaySpec
		if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
			continue
		}
		for _, cs := range s.Consumers {
			if cs.ID == id {
				return res, cs, nil
			}
		}
	}
	return res, ConsumerSpec{}, fmt.Errorf("consumer %q of gateway %s: %w", id, res.ID, store.ErrNotFound)
}

func (p *Gateways) newSecret(c *api.Call) error {
	var in SecretRequest
	if c.R.ContentLength != 0 {
		if err := c.Decode(&in); err != nil {
			return err
		}
	}
	res, cs, err := p.consumer(c)
	if err != nil {
		return err
	}
	secret := in.Secret
	if secret == "" {
		secret = gateway.GenerateSecret()
	}
	ctx := c.R.Context()
	p.credMu.Lock()
	defer p.credMu.Unlock()
	d, err := p.secretDoc(ctx, res.ID, cs.ID)
	if err != nil {
		return err
	}
	for _, s := range d.Secrets {
		if old, err := p.openSecret(res.ID, cs.ID, s.Sealed); err == nil && old == secret {
			return api.Invalid(map[string]string{"secret": "is already one of the consumer's secrets"})
		}
	}
	sealed, err := p.sealSecret(res.ID, cs.ID, secret)
	if err != nil {
		return err
	}
	if in.Replace {
		d.Secrets = nil
	}
	d.Secrets = append(d.Secrets, sealedSecret{Sealed: sealed, CreatedAt: time.Now().UTC()})
	if len(d.Secrets) > maxSecrets {
		d.Secrets = d.Secrets[len(d.Secrets)-maxSecrets:]
	}
	if err := p.putSecretDoc(ctx, d); err != nil {
		return err
	}
	applied, err := p.applySecrets(ctx, res.ID, cs.ID)
	if err != nil {
		return err
	}
	// The audit log says who made a secret, never the secret.
	if err := c.Audit("secret", "gateway", res.ID, res.TeamID, map[string]any{
		"consumer": cs.ID, "active_secrets": len(d.Secrets), "replace": in.Replace, "imported": in.Secret != "", "applied": applied,
	}); err != nil {
		return err
	}
	c.JSON(http.StatusCreated, SecretAnswer{Consumer: cs.ID, AppKey: cs.AppKey, Secret: secret, ActiveSecrets: len(d.Secrets), Applied: applied})
	return nil
}

func (p *Gateways) secretInfo(c *api.Call) error {
	res, cs, err := p.consumer(c)
	if err != nil {
		return err
	}
	d, err := p.secretDoc(c.R.Context(), res.ID, cs.ID)
	if err != nil {
		return err
	}
	info := SecretInfo{Consumer: cs.ID, ActiveSecrets: len(d.Secrets), CreatedAt: []time.Time{}}
	for _, s := range d.Secrets {
		info.CreatedAt = append(info.CreatedAt, s.CreatedAt)
	}
	c.JSON(http.StatusOK, info)
	return nil
}

func (p *Gateways) dropPrevious(c *api.Call) error {
	res, cs, err := p.consumer(c)
	if err != nil {
		return err
	}
	ctx := c.R.Context()
	p.credMu.Lock()
	defer p.credMu.Unlock()
	d, err := p.secretDoc(ctx, res.ID, cs.ID)
	if err != nil {
		return err
	}
	if len(d.Secrets) < 2 {
		return api.Conflict(fmt.Sprintf("consumer %q has %d secret(s): no previous one to drop", cs.ID, len(d.Secrets)))
	}
	d.Secrets = d.Secrets[len(d.Secrets)-1:]
	if err := p.putSecretDoc(ctx, d); err != nil {
		return err
	}
	applied, err := p.applySecrets(ctx, res.ID, cs.ID)
	if err != nil {
		return err
	}
	if err := c.Audit("drop-previous-secret", "gateway", res.ID, res.TeamID, map[string]any{"consumer": cs.ID, "active_secrets": 1, "applied": applied}); err != nil {
		return err
	}
	c.JSON(http.StatusOK, SecretInfo{Consumer: cs.ID, ActiveSecrets: 1, CreatedAt: []time.Time{d.Secrets[0].CreatedAt}})
	return nil
}

// applySecrets gives the running gateway, if it runs the consumer, the consumer's stored
// secrets at once: a credential change needs no push. The caller holds credMu.
func (p *Gateways) applySecrets(ctx context.Context, gatewayID, consumer string) (bool, error) {
	inst, ok := p.instance(gatewayID)
	if !ok {
		return false, nil
	}
	cfg, _ := inst.svc.Gateway().Config()
	i := slices.IndexFunc(cfg.Consumers, func(c gateway.Consumer) bool { return c.ID == consumer })
	if i < 0 {
		return false, nil
	}
	all, err := p.secrets(ctx, gatewayID)
	if err != nil {
		return false, err
	}
	cfg.Consumers[i].Secrets = all[consumer]
	if _, err := inst.svc.Gateway().Apply(ctx, cfg); err != nil {
		return false, fmt.Errorf("planes: gateway %s: apply the new secret: %w", gatewayID, err)
	}
	return true, nil
}

// StatsAnswer is what GET /api/v1/gateways/{id}/stats answers.
type StatsAnswer struct {
	From        time.Time           `json:"from"`
	To          time.Time           `json:"to"`
	Granularity gateway.Granularity `json:"granularity"`
	GroupBy     string              `json:"group_by,omitempty"`
	Items       []gateway.StatsRow  `json:"items"`
}

// stats answers GET /api/v1/gateways/{id}/stats, to the gateway's team (and the admin):
//
//	from, to      RFC 3339 times or dates (2026-01-02); default the hour before now, and for
//	              granularity=day the last seven days, today's included
//	granularity   minute (default), day or total
//	api           one API by name
//	consumer      one consumer by ID
//	group_by      api or consumer: sum over the other
//	limit         at most this many rows: granularity=total&group_by=consumer&limit=10 is the top ten
func (p *Gateways) stats(c *api.Call) error {
	res, err := c.Resource("gateway", c.R.PathValue("id"))
	if err != nil {
		return err
	}
	q, limit, err := parseStatsQuery(c.R.URL.Query(), time.Now())
	if err != nil {
		return err
	}
	inst, ok := p.instance(res.ID)
	if !ok {
		return api.Conflict("the gateway is not pushed yet: it has no statistics")
	}
	rows, err := inst.svc.Gateway().Stats(q)
	if err != nil {
		return api.Invalid(map[string]string{"query": strings.TrimPrefix(err.Error(), gateway.ErrBadStatsQuery.Error()+": ")})
	}
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	if rows == nil {
		rows = []gateway.StatsRow{}
	}
	c.JSON(http.StatusOK, StatsAnswer{From: q.From, To: q.To, Granularity: q.Granularity, GroupBy: q.GroupBy, Items: rows})
	return nil
}

// parseStatsQuery reads the stats query string, with a field error for every bad value.
func parseStatsQuery(v map[string][]string, now time.Time) (gateway.StatsQuery, int, error) {
	get := func(k string) string {
		if len(v[k]) == 0 {
			return ""
		}
		return v[k][0]
	}
	bad := map[string]string{}
	for k := range v {
		switch k {
		case "from", "to", "granularity", "api", "consumer", "group_by", "limit":
		default:
			bad[k] = "unknown parameter: want from, to, granularity, api, consumer, group_by or limit"
		}
	}
	q := gateway.StatsQuery{API: get("api"), Consumer: get("consumer"), GroupBy: get("group_by"),
		Granularity: gateway.Granularity(get("granularity"))}
	parseTime := func(k string) time.Time {
		s := get(k)
		if s == "" {
			return time.Time{}
		}
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t
		}
		if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
			return t
		}
		bad[k] = "must be an RFC 3339 time (2026-01-02T15:04:05+08:00) or a date (2026-01-02)"
		return time.Time{}
	}
	q.From, q.To = parseTime("from"), parseTime("to")
	if q.To.IsZero() {
		q.To = now
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-time.Hour)
		if q.Granularity == gateway.Day {
			// Days are buckets that start at midnight: the last seven, today's included.
			y, m, d := q.To.In(time.Local).Date()
			q.From = time.Date(y, m, d-6, 0, 0, 0, 0, time.Local)
		}
	}
	if _, fromBad := bad["from"]; !fromBad && bad["to"] == "" && !q.From.Before(q.To) {
		bad["from"] = "must be before to"
	}
	switch q.Granularity {
	case "":
		q.Granularity = gateway.Minute
	case gateway.Minute, gateway.Day, gateway.Total:
	default:
		bad["granularity"] = "must be minute, day or total"
	}
	switch q.GroupBy {
	case "", "api", "consumer":
	default:
		bad["group_by"] = "must be api or consumer"
	}
	limit := 0
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100000 {
			bad["limit"] = "must be a whole number from 1 to 100000"
		}
		limit = n
	}
	if len(bad) > 0 {
		return q, 0, api.Invalid(bad)
	}
	return q, limit, nil
}

// statsDocKind is the store doc kind of a gateway's saved statistics, one doc per gateway.
const statsDocKind = "gateway-stats"

// savedStats is every minute and day bucket of a gateway, per API × consumer.
type savedStats struct {
	SavedAt time.Time          `json:"saved_at"`
	Minutes []gateway.StatsRow `json:"minutes"`
	Days    []gateway.StatsRow `json:"days"`
}

// saveStats writes the gateway's statistics to the store, unless they did not change since
// the last save.
func (p *Gateways) saveStats(ctx context.Context, inst *gatewayInstance) error {
	inst.saveMu.Lock()
	defer inst.saveMu.Unlock()
	now := time.Now()
	var s savedStats
	var err error
	// Every bucket the gateway keeps: minutes within 48h, days within 400 days by default.
	if s.Minutes, err = inst.svc.Gateway().Stats(gateway.StatsQuery{From: time.Unix(0, 0), To: now.Add(time.Hour), Granularity: gateway.Minute}); err != nil {
		return err
	}
	if s.Days, err = inst.svc.Gateway().Stats(gateway.StatsQuery{From: time.Unix(0, 0), To: now.Add(48 * time.Hour), Granularity: gateway.Day}); err != nil {
		return err
	}
	rows, err := json.Marshal([2][]gateway.StatsRow{s.Minutes, s.Days})
	if err != nil {
		return fmt.Errorf("planes: encode gateway %s statistics: %w", inst.id, err)
	}
	if bytes.Equal(rows, inst.lastSaved) {
		return nil
	}
	s.SavedAt = now.UTC()
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("planes: encode gateway %s statistics: %w", inst.id, err)
	}
	if err := p.st.PutDoc(ctx, statsDocKind, inst.id, raw); err != nil {
		return fmt.Errorf("planes: save gateway %s statistics: %w", inst.id, err)
	}
	inst.lastSaved = rows
	return nil
}

// restoreStats loads the statistics saved by an earlier run into a new gateway.
func (p *Gateways) restoreStats(ctx context.Context, inst *gatewayInstance) error {
	raw, err := p.st.Doc(ctx, statsDocKind, inst.id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var s savedStats
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("planes: gateway %s: saved statistics: %w", inst.id, err)
	}
	if err := inst.svc.Gateway().RestoreStats(gateway.Minute, s.Minutes); err != nil {
		return fmt.Errorf("planes: gateway %s: restore statistics: %w", inst.id, err)
	}
	if err := inst.svc.Gateway().RestoreStats(gateway.Day, s.Days); err != nil {
		return fmt.Errorf("planes: gateway %s: restore statistics: %w", inst.id, err)
	}
	inst.lastSaved, _ = json.Marshal([2][]gateway.StatsRow{s.Minutes, s.Days})
	return nil
}

// saveLoop saves the gateway's statistics every saveEvery until the gateway stops.
func (p *Gateways) saveLoop(inst *gatewayInstance) {
	defer close(inst.done)
	t := time.NewTicker(p.saveEvery)
	defer t.Stop()
	for {
		select {
		case <-inst.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := p.saveStats(ctx, inst); err != nil {
				p.log.Warn("gateway: save statistics", "gateway", inst.id, "err", err)
			}
			cancel()
		}
	}
}

var _ api.Plane = (*Gateways)(nil)
