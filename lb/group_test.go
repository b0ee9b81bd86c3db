package lb

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func testGroup(algo Algorithm, weights map[string]int, standby ...string) *group {
	g := newGroup(&ServerGroup{Name: "g", Algorithm: algo})
	b, err := New(Options{})
	if err != nil {
		panic(err)
	}
	names := make([]string, 0, len(weights))
	for n := range weights {
		names = append(names, n)
	}
	// Config order matters to round robin ties: keep a, b, c ...
	for i := 0; i < len(names); i++ {
		for j := i + 1; j < len(names); j++ {
			if names[j] < names[i] {
				names[i], names[j] = names[j], names[i]
			}
		}
	}
	for _, n := range names {
		m := &member{srv: newServer(b, "g", n, n+":80"), weight: weights[n]}
		for _, s := range standby {
			m.standby = m.standby || s == n
		}
		g.members = append(g.members, m)
	}
	if algo == Hash {
		g.ring = buildRing(g.members)
	}
	return g
}

func sequence(g *group, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		m := g.pick([]byte(fmt.Sprint(i)), &tried{})
		if m == nil {
			b.WriteString("-")
			continue
		}
		b.WriteString(m.srv.id)
	}
	return b.String()
}

func TestSmoothWeightedRoundRobinIsNginxs(t *testing.T) {
	tests := []struct {
		weights map[string]int
		want    string
	}{
		// The sequence from nginx's ngx_http_upstream_round_robin.c comment.
		{map[string]int{"a": 5, "b": 1, "c": 1}, "aabacaa" + "aabacaa"},
		{map[string]int{"a": 1, "b": 1}, "abababab"},
		{map[string]int{"a": 3, "b": 2}, "ababa" + "ababa"},
	}
	for _, tt := range tests {
		g := testGroup(RoundRobin, tt.weights)
		if got := sequence(g, len(tt.want)); got != tt.want {
			t.Errorf("weights %v: got %s, want %s", tt.weights, got, tt.want)
		}
	}
}

func TestStandbyServesOnlyWhileNoWorkingServerIsUp(t *testing.T) {
	for _, algo := range []Algorithm{RoundRobin, LeastConn, Hash} {
		t.Run(string(algo), func(t *testing.T) {
			g := testGroup(algo, map[string]int{"a": 1, "b": 1, "s": 1}, "s")
			g.hashKey = HashKey{Source: HashClientIP}
			a, b, s := g.members[0].srv, g.members[1].srv, g.members[2].srv
			if got := sequence(g, 20); strings.Contains(got, "s") {
				t.Fatalf("standby served while working servers were up: %s", got)
			}
			a.markDown("test", false, 0)
			if got := sequence(g, 20); strings.Contains(got, "s") || strings.Contains(got, "a") {
				t.Fatalf("with a down: %s", got)
			}
			b.markDown("test", false, 0)
			if got := sequence(g, 6); got != "ssssss" {
				t.Fatalf("with every working server down: %s, want only s", got)
			}
			b.markUp("test")
			if got := sequence(g, 6); got != "bbbbbb" {
				t.Fatalf("after b came back: %s, want only b", got)
			}
			s.markDown("test", false, 0)
			b.markDown("test", false, 0)
			if got := sequence(g, 3); got != "---" {
				t.Fatalf("with everything down: %s, want no pick", got)
			}
		})
	}
}

func TestPickSkipsTriedServers(t *testing.T) {
	g := testGroup(RoundRobin, map[string]int{"a": 1, "s": 1}, "s")
	var tr tried
	first := g.pick(nil, &tr)
	tr.add(first.srv)
	second := g.pick(nil, &tr)
	if first.srv.id != "a" || second == nil || second.srv.id != "s" {
		t.Fatalf("retry after the working server failed went to %v, want the standby", second)
	}
}

func TestLeastConn(t *testing.T) {
	g := testGroup(LeastConn, map[string]int{"a": 1, "b": 1, "c": 2})
	a, b, c := g.members[0].srv, g.members[1].srv, g.members[2].srv
	a.active.Store(3)
	b.active.Store(1)
	c.active.Store(4) // 4/2 = 2 per weight
	if m := g.pick(nil, &tried{}); m.srv != b {
		t.Fatalf("picked %s, want b (fewest active)", m.srv.id)
	}
	b.active.Store(5)
	if m := g.pick(nil, &tried{}); m.srv != c {
		t.Fatalf("picked %s, want c (fewest active per weight)", m.srv.id)
	}
	// Equal load: ties rotate instead of always taking the first.
	a.active.Store(0)
	b.active.Store(0)
	c.active.Store(0)
	counts := map[string]int{}
	for i := 0; i < 300; i++ {
		counts[g.pick(nil, &tried{}).srv.id]++
	}
	for _, id := range []string{"a", "b", "c"} {
		if counts[id] < 50 {
			t.Errorf("idle servers not shared: %v", counts)
		}
	}
}

func TestHashIsStableAndSpreads(t *testing.T) {
	g := testGroup(Hash, map[string]int{"a": 1, "b": 1, "c": 1, "d": 1})
	owner := map[string]string{}
	counts := map[string]int{}
	for i := 0; i < 4000; i++ {
		key := fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		id := g.pick([]byte(key), &tried{}).srv.id
		owner[key] = id
		counts[id]++
	}
	for id, n := range counts {
		if n < 600 || n > 1400 {
			t.Errorf("server %s got %d of 4000 keys: %v", id, n, counts)
		}
	}
	// Take c down: only c's keys move, and they all move.
	g.members[2].srv.markDown("test", false, 0)
	for key, was := range owner {
		now := g.pick([]byte(key), &tried{}).srv.id
		if was != "c" && now != was {
			t.Fatalf("key %s moved from %s to %s though %s is up", key, was, now, was)
		}
		if now == "c" {
			t.Fatalf("key %s still on the down server", key)
		}
	}
}

func TestCookieAndHeaderKeys(t *testing.T) {
	v, ok := cookieValue([]byte("a=1; session=xyz; b=2"), "session")
	if !ok || string(v) != "xyz" {
		t.Errorf("cookieValue = %q, %v", v, ok)
	}
	if _, ok := cookieValue([]byte("sessionx=1"), "session"); ok {
		t.Error("matched a cookie whose name only starts with the wanted one")
	}
}

func TestSlowStartRampsWeight(t *testing.T) {
	g := testGroup(RoundRobin, map[string]int{"a": 1, "b": 1})
	g.slowStart = time.Hour
	a := g.members[0].srv
	a.markDown("test", false, 0)
	a.markUp("test") // up just now: a small share for an hour
	counts := map[string]int{}
	for i := 0; i < 1000; i++ {
		counts[g.pick(nil, &tried{}).srv.id]++
	}
	if counts["a"] > 20 {
		t.Errorf("a server in slow start got %d of 1000 requests", counts["a"])
	}
	a.upSince.Store(time.Now().Add(-time.Hour).UnixNano())
	counts = map[string]int{}
	for i := 0; i < 1000; i++ {
		counts[g.pick(nil, &tried{}).srv.id]++
	}
	if counts["a"] != 500 {
		t.Errorf("after slow start a got %d of 1000, want 500", counts["a"])
	}
}
