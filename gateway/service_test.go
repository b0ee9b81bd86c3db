package gateway_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/gateway"
	"github.com/shuanghuo/shuanghuo/lb"
)

// A Service applies the balancer and the gateway together: a config either runs whole or
// changes nothing, so that the gateway never names a group its balancer lacks and a gateway
// refusal never leaves a new balancer running beside the old gateway.
func TestServiceAllOrNothing(t *testing.T) {
	ctx := context.Background()
	upA := httptest.NewServer(echo("a"))
	defer upA.Close()
	upB := httptest.NewServer(echo("b"))
	defer upB.Close()
	port := freePort(t)
	server := func(u *httptest.Server) lb.Server {
		return lb.Server{Address: "127.0.0.1", Port: u.Listener.Addr().(*net.TCPAddr).Port, Weight: 1}
	}
	cfg := func(group string, up *httptest.Server) gateway.ServiceConfig {
		return gateway.ServiceConfig{
			Balancer: lb.BalancerConfig{Name: "gw", Address: "127.0.0.1",
				Listeners: []lb.Listener{{Name: "api", Port: port, Protocol: lb.ProtocolHTTP}},
				Groups:    []lb.ServerGroup{{Name: group, Servers: []lb.Server{server(up)}}}},
			Gateway: gateway.Config{APIs: []gateway.API{{Name: "ping", Path: "/ping", Public: true, Upstream: gateway.Upstream{Group: group}}}},
		}
	}
	svc, err := gateway.NewService(gateway.Options{}, lb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close(ctx)
	if svc.Balancer() != nil {
		t.Fatal("a balancer before the first Apply")
	}
	ping := func() string {
		t.Helper()
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/ping")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	// A link broken across the two configs is refused before anything runs.
	bad := cfg("a", upA)
	bad.Gateway.APIs[0].Upstream.Group = "nope"
	var verr *gateway.ValidationError
	if err := svc.Apply(ctx, bad); !errors.As(err, &verr) || verr.Fields()["apis[0].upstream.group"] == "" {
		t.Fatalf("Apply(no such group) = %v, want a field error on apis[0].upstream.group", err)
	}
	if svc.Balancer() != nil {
		t.Fatal("a refused first Apply left a balancer")
	}
	if err := svc.Apply(ctx, cfg("a", upA)); err != nil {
		t.Fatal(err)
	}
	if got := ping(); !strings.Contains(got, `"upstream":"a"`) {
		t.Fatalf("answered %s, want upstream a", got)
	}

	// The balancer takes the new group, the gateway refuses its config: the balancer is
	// rolled back, and both run as before.
	refused := cfg("b", upB)
	refused.Gateway.APIs = append(refused.Gateway.APIs, gateway.API{Name: "ping", Path: "/other", Public: true, Upstream: gateway.Upstream{Group: "b"}})
	if err := refused.Validate(); err == nil {
		t.Fatal("two APIs named alike passed Validate")
	}
	if err := svc.Apply(ctx, refused); err == nil {
		t.Fatal("a refused gateway config was applied")
	}
	if got := ping(); !strings.Contains(got, `"upstream":"a"`) {
		t.Fatalf("after a refused Apply answered %s, want upstream a", got)
	}
	running, _ := svc.Balancer().Config()
	if running.Groups[0].Name != "a" {
		t.Fatalf("the balancer runs group %s after a refused Apply", running.Groups[0].Name)
	}

	if err := svc.Apply(ctx, cfg("b", upB)); err != nil {
		t.Fatal(err)
	}
	if got := ping(); !strings.Contains(got, `"upstream":"b"`) {
		t.Fatalf("answered %s, want upstream b", got)
	}
}
