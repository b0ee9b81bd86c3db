package dnsctl_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"

	"github.com/miekg/dns"
	"github.com/shuanghuo/shuanghuo/dnsctl"
)

// A record set with a target per center, switched from center a to center b.
func Example() {
	ctx := context.Background()
	srv, err := dnsctl.New(dnsctl.Config{
		UDPAddr: "127.0.0.1:0", // a free port; Addr reports it
		Logger:  slog.New(slog.DiscardHandler),
		Zones: []dnsctl.Zone{{
			Origin: "ybj.internal.",
			RecordSets: []dnsctl.RecordSet{{
				Name: "settlement", Type: "A",
				Centers: map[string][]string{"a": {"10.1.0.10"}, "b": {"10.2.0.10"}},
				Active:  "a",
			}},
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer srv.Close(ctx)

	ask := func() string {
		m := new(dns.Msg)
		m.SetQuestion("settlement.ybj.internal.", dns.TypeA)
		resp, err := dns.Exchange(m, srv.Addr())
		if err != nil {
			log.Fatal(err)
		}
		return resp.Answer[0].(*dns.A).A.String()
	}
	fmt.Println("before:", ask())
	n, err := srv.Switch(ctx, dnsctl.Scope{Zone: "ybj.internal."}, "b")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("switched record sets:", n)
	fmt.Println("after:", ask())
	// Output:
	// before: 10.1.0.10
	// switched record sets: 1
	// after: 10.2.0.10
}
