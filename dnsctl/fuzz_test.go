package dnsctl

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzImportZoneFile: any input is rejected with an error or yields a zone that
// builds, serves and exports to a file that imports again.
func FuzzImportZoneFile(f *testing.F) {
	f.Add("$TTL 60\n@ IN SOA ns1 hostmaster 7 60 10 600 30\nwww IN A 10.0.0.1\n")
	f.Fuzz(func(t *testing.T, data string) {
		z, err := ParseZoneFile("fuzz.internal.", strings.NewReader(data))
		if err != nil {
			return
		}
		s, err := New(Config{Logger: quietLogger(), Zones: []Zone{z}})
		if err != nil {
			t.Fatalf("a parsed zone does not build: %v", err)
		}
		var buf bytes.Buffer
		if err := s.ExportZoneFile("fuzz.internal.", &buf); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseZoneFile("fuzz.internal.", &buf); err != nil {
			t.Fatalf("export does not import again: %v\n%s", err, buf.String())
		}
	})
}

// FuzzServeMessage: any message the DNS library can unpack gets an answer that
// unpacks, and nothing panics.
func FuzzServeMessage(f *testing.F) {
	s, err := New(Config{Logger: quietLogger(), Center: "a", Views: testViews(), Zones: []Zone{testZone(), hospZone(), reverseZone()},
		TSIGKeys: []TSIGKey{xfrKey}, Secondaries: []Secondary{{Addr: "127.0.0.1:53"}}})
	require.NoError(f, err)
	h := handler{s}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"api.ybj.internal.", dns.TypeA}, {"www.ybj.internal.", dns.TypeANY}, {"ybj.internal.", dns.TypeAXFR}, {"example.org.", dns.TypeA}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, false)
		b, err := m.Pack()
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := new(dns.Msg)
		if err := r.Unpack(data); err != nil {
			return
		}
		w := &recorder{}
		h.ServeDNS(w, r)
		for _, out := range w.written {
			if err := new(dns.Msg).Unpack(out); err != nil {
				t.Fatalf("answer does not unpack: %v", err)
			}
		}
	})
}

// recorder is a dns.ResponseWriter that keeps what is written.
type recorder struct{ written [][]byte }

func (r *recorder) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353} }
func (r *recorder) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = r.Write(b)
	return err
}
func (r *recorder) Write(b []byte) (int, error) {
	r.written = append(r.written, bytes.Clone(b))
	return len(b), nil
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return errors.New("no TSIG in the recorder") }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// TestMalformedPackets sends garbage over UDP and TCP; the server must keep
// answering.
func TestMalformedPackets(t *testing.T) {
	s := startServer(t, Config{Zones: []Zone{testZone()}})
	valid := new(dns.Msg)
	valid.SetQuestion("api.ybj.internal.", dns.TypeA)
	vb, err := valid.Pack()
	require.NoError(t, err)

	packets := [][]byte{
		{},
		{0},
		vb[:12],        // header only, claims a question
		vb[:len(vb)-3], // question cut short
		append(bytes.Clone(vb[:12]), 0xc0, 12, 0, 1, 0, 1),                          // compression pointer to itself
		append(bytes.Clone(vb), 0xff, 0xff, 0xff),                                   // trailing junk
		func() []byte { b := bytes.Clone(vb); b[2] |= 0x80; return b }(),            // a response
		func() []byte { b := bytes.Clone(vb); b[2] = 5 << 3; return b }(),           // opcode UPDATE
		func() []byte { b := bytes.Clone(vb); b[5] = 0; return b }(),                // no question
		func() []byte { b := bytes.Clone(vb); b[4], b[5] = 0xff, 0xff; return b }(), // 65535 questions
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		b := make([]byte, rng.IntN(600))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		if len(b) > 12 && rng.IntN(2) == 0 {
			copy(b, vb[:12]) // a plausible header in front of garbage
		}
		packets = append(packets, b)
	}

	udp, err := net.Dial("udp", s.Addr())
	require.NoError(t, err)
	defer udp.Close()
	for _, p := range packets {
		_, _ = udp.Write(p)
	}
	for _, p := range packets[:40] {
		tcp, err := net.Dial("tcp", s.Addr())
		require.NoError(t, err)
		frame := append([]byte{byte(len(p) >> 8), byte(len(p))}, p...)
		_, _ = tcp.Write(frame)
		_ = tcp.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, _ = tcp.Read(make([]byte, 512))
		tcp.Close()
	}
	// A TCP frame announcing more than it sends.
	tcp, err := net.Dial("tcp", s.Addr())
	require.NoError(t, err)
	_, _ = tcp.Write([]byte{0xff, 0xff, 1, 2, 3})
	tcp.Close()

	a := newAsker(t, s.Addr(), "")
	assert.Equal(t, []string{"10.1.0.10", "10.1.0.11"}, addrs(a.ask("api.ybj.internal.", dns.TypeA)))
	m := new(dns.Msg)
	m.SetQuestion("api.ybj.internal.", dns.TypeA)
	assert.Len(t, a.exchange(m, true).Answer, 2, "TCP still answers")
}
