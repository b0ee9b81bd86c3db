package lb_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/shuanghuo/shuanghuo/lb"
)

// A working and a standby server behind one listener: the standby takes
// over when the working server fails.
func Example() {
	working := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "working")
	}))
	standby := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "standby")
	}))
	defer standby.Close()

	b, err := lb.New(lb.Options{})
	if err != nil {
		panic(err)
	}
	defer b.Close(context.Background())

	cfg := lb.BalancerConfig{
		Name:    "outpatient",
		Address: "127.0.0.1",
		Listeners: []lb.Listener{{
			// Port 0: any free port; Addr says which.
			Name: "web", Port: 0, Protocol: lb.ProtocolHTTP,
			Rules: []lb.Rule{{PathPrefix: "/pms/biz/outpatient", Group: "outpatient"}},
		}},
		Groups: []lb.ServerGroup{{
			Name: "outpatient",
			Servers: []lb.Server{
				{Name: "a1", Address: "127.0.0.1", Port: portOf(working), Weight: 1, Zone: "zone-a"},
				{Name: "b1", Address: "127.0.0.1", Port: portOf(standby), Weight: 1, Zone: "zone-b", Role: lb.Standby},
			},
			// One failed request takes a server down; checks bring it back.
			PassiveFall: 1,
			HealthCheck: &lb.HealthCheck{Type: lb.CheckTCP, Interval: lb.Duration(time.Second)},
		}},
	}
	version, err := b.Apply(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	fmt.Println("applied version", version)

	addr, _ := b.Addr("web")
	u := "http://" + addr.String() + "/pms/biz/outpatient/bizc2201"
	fmt.Println(fetch(u))
	working.Close()
	fmt.Println(fetch(u)) // retried on the standby: no error
	for _, s := range b.Status().Groups[0].Servers {
		if s.Name == "a1" {
			fmt.Println("a1 is", s.State)
		}
	}

	// A config with an error is rejected as a whole, naming each field.
	cfg.Listeners[0].Port = 70000
	_, err = b.Apply(context.Background(), cfg)
	fmt.Println(err)
	// Output:
	// applied version 1
	// working
	// standby
	// a1 is down
	// lb: invalid config: listeners[0].port: must be at most 65535
}

func fetch(u string) string {
	resp, err := http.Get(u)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func portOf(s *httptest.Server) int { return s.Listener.Addr().(*net.TCPAddr).Port }
