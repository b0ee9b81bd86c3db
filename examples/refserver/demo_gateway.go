package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
)

// demoGateway is the gateway the demo puts in front of the outpatient API of one center.
type demoGateway struct {
	id  string
	url string // a settlement endpoint through the gateway
	// secrets are the consumers' AppSecrets by consumer ID, as center A made them (the demo
	// prints one; an operator gets each once, in the answer that makes it).
	secrets map[string]string
}

// demoConsumers are the seed's parties: two hospitals and a pharmacy (定点医药机构).
var demoConsumers = []map[string]any{
	{"id": "hosp-1", "name": "省人民医院", "kind": "hospital", "org_code": "H32010000001", "enabled": true, "app_key": "ak-hosp-320100-0001"},
	{"id": "hosp-2", "name": "市第一人民医院", "kind": "hospital", "org_code": "H32010000002", "enabled": true, "app_key": "ak-hosp-320100-0002"},
	{"id": "pharm-1", "name": "老百姓大药房", "kind": "pharmacy", "org_code": "P32010000001", "enabled": true, "app_key": "ak-pharm-320100-0001"},
}

const demoSettlementBody = `{"psn_no":"1001","insuplc":"320100","amount":"35.50"}`

// seedGateway creates, through the API, the center's gateway (服务网关) in front of the
// outpatient app: API 门诊结算 on /pms/biz/outpatient/*, the three parties as consumers,
// all granted it, the pharmacy held to 10 calls a second; each consumer's secret made (on
// A) or imported (on B, from A's, so that a party signs alike for both centers); then pushed.
func seedGateway(ctx context.Context, dc *demoCenter, backends []string, port int, fromA map[string]string) error {
	admin := apiClient{base: dc.url, token: dc.adminToken}
	host, _, _ := net.SplitHostPort(dc.cfg.Listen)
	var servers []any
	for i, b := range backends {
		h, p, _ := net.SplitHostPort(b)
		n, _ := strconv.Atoi(p)
		role := "working"
		if i == len(backends)-1 {
			role = "standby"
		}
		servers = append(servers, map[string]any{"name": fmt.Sprintf("app%d", i+1), "address": h, "port": n, "weight": 1, "role": role})
	}
	var ids []string
	for _, c := range demoConsumers {
		ids = append(ids, c["id"].(string))
	}
	spec := map[string]any{
		"name": "ybj-gateway", "address": host,
		"listeners": []any{map[string]any{"name": "api", "port": port, "protocol": "http"}},
		"groups": []any{map[string]any{"name": "outpatient", "servers": servers,
			"health_check": map[string]any{"type": "http", "path": "/healthz", "interval": "1s", "fall": 2, "rise": 2}}},
		"consumers": demoConsumers,
		"apis": []any{map[string]any{"name": "门诊结算", "method": "POST", "path": "/pms/biz/outpatient/*",
			"upstream": map[string]any{"group": "outpatient"}, "timeout": "5s"}},
		"grants":   []any{map[string]any{"api": "门诊结算", "consumers": ids}},
		"policies": []any{map[string]any{"name": "pharmacy-rate", "consumer": "pharm-1", "rate_limit": map[string]any{"rate": 10, "burst": 20}}},
	}
	var gw struct{ ID string }
	if err := admin.call(ctx, "POST", "/api/v1/gateways", map[string]any{"team_id": dc.teamID, "spec": spec}, &gw); err != nil {
		return err
	}
	dc.gateway = demoGateway{id: gw.ID, secrets: map[string]string{}}
	for _, id := range ids {
		var in any
		if fromA != nil {
			in = map[string]string{"secret": fromA[id]}
		}
		var s struct{ Secret string }
		if err := admin.call(ctx, "POST", "/api/v1/gateways/"+gw.ID+"/consumers/"+id+"/secret", in, &s); err != nil {
			return err
		}
		dc.gateway.secrets[id] = s.Secret
	}
	if err := admin.call(ctx, "POST", "/api/v1/gateways/"+gw.ID+"/push", nil, nil); err != nil {
		return err
	}
	dc.gateway.url = fmt.Sprintf("http://%s/pms/biz/outpatient/bizc2201", net.JoinHostPort(host, strconv.Itoa(port)))
	return nil
}

// printGateway shows how to call center A's gateway as 省人民医院 and where its statistics are.
func printGateway(w io.Writer, dc *demoCenter) {
	c := demoConsumers[0]
	fmt.Fprintf(w, `
gateway (服务网关: API 门诊结算 for 省人民医院, 市第一人民医院 and 老百姓大药房; the same consumers in both centers):
  %[1]s (%[2]s) AppKey %[3]s AppSecret %[4]s
  go run ./examples/refserver sign -key %[3]s -secret %[4]s \
       -d '%[5]s' %[6]s
  curl -X POST %[6]s   # unsigned: refused, signature_invalid
  curl -H 'Authorization: Bearer %[7]s' '%[8]s/api/v1/gateways/%[9]s/stats?granularity=total&group_by=consumer'
`, c["name"], c["id"], c["app_key"], dc.gateway.secrets[c["id"].(string)], demoSettlementBody, dc.gateway.url,
		dc.teamToken, dc.url, url.PathEscape(dc.gateway.id))
}
