package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/shuanghuo/shuanghuo/gateway"
	"github.com/shuanghuo/shuanghuo/lb"
)

// A hospital calls the outpatient settlement API through a gateway that
// runs as the Hook of a balancer; the upstream learns who called.
func Example() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "settled for %s", r.Header.Get("X-Consumer-Id"))
	}))
	defer upstream.Close()

	gw, _ := gateway.New(gateway.Options{})
	secret := gateway.GenerateSecret()
	_, err := gw.Apply(context.Background(), gateway.Config{
		Consumers: []gateway.Consumer{{ID: "h1", Name: "省人民医院", Kind: gateway.KindHospital,
			Enabled: true, AppKey: "hosp-0001", Secrets: []string{secret}}},
		APIs: []gateway.API{{Name: "门诊结算", Method: "POST", Path: "/api/outpatient/settle",
			Upstream: gateway.Upstream{URL: upstream.URL}, Timeout: gateway.Duration(5 * time.Second)}},
		Grants: []gateway.Grant{{Consumer: "h1", API: "门诊结算"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// The gateway sees every request of the balancer's listeners.
	bal, _ := lb.New(lb.Options{Hook: gw})
	ln, _ := net.Listen("tcp", "127.0.0.1:0") // find a free port
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, err = bal.Apply(context.Background(), lb.BalancerConfig{
		Name: "gateway", Address: "127.0.0.1",
		Listeners: []lb.Listener{{Name: "api", Port: port, Protocol: lb.ProtocolHTTP}},
		Groups:    []lb.ServerGroup{{Name: "unused", Servers: []lb.Server{{Address: "127.0.0.1", Port: 9, Weight: 1}}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bal.Close(context.Background())

	// The hospital's client signs every request.
	signer := &gateway.Signer{AppKey: "hosp-0001", Secret: secret}
	client := &http.Client{Transport: signer.Transport(nil)}
	url := fmt.Sprintf("http://127.0.0.1:%d/api/outpatient/settle?psn_no=1001", port)
	resp, err := client.Post(url, "application/json", strings.NewReader(`{"amount":"35.50"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	// Unsigned, the same call is refused.
	resp, _ = http.Post(url, "application/json", strings.NewReader(`{}`))
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.Contains(string(body), `"code":"signature_invalid"`))

	// A call is counted once its answer has gone out: wait for the second.
	var rows []gateway.StatsRow
	for range 200 {
		rows, _ = gw.Stats(gateway.StatsQuery{Granularity: gateway.Total, API: "门诊结算", GroupBy: "api"})
		if len(rows) > 0 && rows[0].Calls == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println(rows[0].Calls, rows[0].Successes, rows[0].Errors)
	// Output:
	// 200 settled for h1
	// 401 true
	// 2 1 map[signature_invalid:1]
}
