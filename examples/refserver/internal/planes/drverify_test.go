package planes

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMayProbe(t *testing.T) {
	g := Grants{Listen: []string{"10.1.0.0/24", "fd00::/64"}, Ports: []PortRange{{From: 443, To: 443}, {From: 8080, To: 8081}}}
	zones := []string{"ybj.internal."}
	for raw, want := range map[string]string{
		"https://10.1.0.10/healthz":       "",
		"http://10.1.0.10:8081/":          "",
		"http://[fd00::5]:8080/":          "",
		"https://yb.YBJ.internal./":       "",
		"https://ybj.internal/":           "",
		"http://10.1.0.10/":               "port 80 is not one its grants let it listen on",
		"http://10.1.1.10:8080/":          "10.1.1.10 is not an address its grants let it listen on",
		"http://[::ffff:127.0.0.1]:8080/": "::ffff:127.0.0.1 is not an address",
		"https://yb.other.internal/":      "yb.other.internal is not inside one of its pushed zones",
		"https://xybj.internal/":          "is not inside one of its pushed zones",
		"https://localhost/":              "is not inside one of its pushed zones",
		"https://10.1.0.010/":             "must be an IP address in the usual form or a DNS name",
		"https://0x0a.1/":                 "must be an IP address in the usual form or a DNS name",
		"https://u:p@10.1.0.10/":          "must not hold a user name or password",
		"ftp://10.1.0.10/":                "must be an http or https URL",
		"/healthz":                        "must be an http or https URL",
		"http://10.1.0.10:0/":             "must have a port from 1 to 65535",
		"http://10.1.0.10:70000/":         "must have a port from 1 to 65535",
	} {
		got := g.mayProbe(zones, raw)
		if want == "" {
			require.Empty(t, got, raw)
			continue
		}
		require.Contains(t, got, want, raw)
	}
}
